"""Distillation as the task loss: a student learns to give the frozen teacher's embeddings.

``al.distill(teacher)`` returns a :class:`Distiller`, a loss the user adds to the penalty in
their own loop; nothing else changes:

    distill = al.distill(teacher, loss="cosine", hidden=1.0)
    for ids, mask in batches:
        loss = distill(student, ids, mask) + learner.penalty()
        optimizer.zero_grad(); loss.backward(); optimizer.step(); learner.step()

The embedding of a sentence is the mean of the last hidden states over its real tokens (the
padding masked out), as sentence-transformers pools all-MiniLM-L6-v2. Terms:

* **embedding** (always): ``1 - cos(student, teacher)`` per sentence (``loss="cosine"``) or the
  mean squared error of the two embeddings (``loss="mse"``), averaged over the batch;
* **similarity** (weight ``similarity``, default 0): the mean squared error between the
  student's and the teacher's in-batch cosine-similarity matrices (each sentence against every
  other of its batch): relational distillation (Park et al., CVPR 2019) that keeps which
  sentences are near which, what neighbour search on the embeddings reads;
* **hidden** (weight ``hidden``, default 0): CoFi's layer-wise distillation (Xia et al., ACL
  2022), the mean squared error between hidden states of the student and the teacher over the
  real tokens, for each mapped pair of layers. While gated, the student's hidden states keep
  the full width (a hidden dimension gated off is zero there, ``structure/stream.py``), so the
  states compare directly, without CoFi's learned linear map. The pairs are ``layers``
  (student layer -> teacher layer, 1-based outputs of the blocks;
  0 is the embedding output), by default layer ``i`` of a ``k``-layer student against layer
  ``round(i * n / k)`` of an ``n``-layer teacher: layer by layer when the depths agree, evenly
  spread when the student is shallower.

A model is any callable taking ``(input_ids, attention_mask=..., output_hidden_states=...)``
and returning either the last hidden states ``[batch, tokens, dim]`` or an object with
``last_hidden_state`` and ``hidden_states`` (Hugging Face's ``BaseModelOutput``).

>>> import torch
>>> from torch import nn
>>> class Encoder(nn.Module):  # a toy "model": embeddings and one Linear
...     def __init__(self):
...         super().__init__()
...         self.emb, self.lin = nn.Embedding(10, 4), nn.Linear(4, 4)
...     def forward(self, ids, attention_mask=None, output_hidden_states=False):
...         return self.lin(self.emb(ids))
>>> torch.manual_seed(0); teacher, student = Encoder(), Encoder()  # doctest: +ELLIPSIS
<...>
>>> loss = distill(teacher)
>>> ids, mask = torch.tensor([[1, 2, 0]]), torch.tensor([[1, 1, 0]])
>>> bool(loss(student, ids, mask) > 0), loss(teacher, ids, mask).item()
(True, 0.0)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from archlearn.errors import ArchlearnError

__all__ = ["Distiller", "distill", "embed", "mean_pool", "similarity_loss"]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``hidden`` ``[batch, tokens, dim]`` over the tokens where the mask is 1.

    >>> mean_pool(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[1, 1, 0]]))
    tensor([[2.]])
    """
    if attention_mask is None:
        return hidden.mean(dim=1)
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)


def _outputs(model, input_ids, attention_mask, hidden_states: bool):
    out = model(input_ids, attention_mask=attention_mask, output_hidden_states=hidden_states)
    if isinstance(out, torch.Tensor):
        if hidden_states:
            raise ArchlearnError("layer-wise distillation needs a model that returns "
                                 "hidden_states (Hugging Face's output_hidden_states=True)")
        return out, None
    last = getattr(out, "last_hidden_state", None)
    if last is None:
        raise ArchlearnError(f"the model returned {type(out).__name__} without "
                             "last_hidden_state; return the last hidden states as a tensor")
    return last, getattr(out, "hidden_states", None) if hidden_states else None


def embed(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
          normalize: bool = False) -> torch.Tensor:
    """The mean-pooled sentence embeddings of a batch (L2-normalised with ``normalize``).

    Runs ``model`` as it is (train or eval mode, with gradients where enabled).
    """
    last, _ = _outputs(model, input_ids, attention_mask, hidden_states=False)
    e = mean_pool(last, attention_mask)
    return F.normalize(e, dim=-1) if normalize else e


class Distiller:
    """The distillation loss against a frozen teacher (see the module docstring).

    Build it with :func:`distill`. Calling it runs the teacher without gradients, in eval
    mode, and the student as it is, and returns the scalar loss; :attr:`last` holds the terms
    of the latest call (floats, for logging).
    """

    def __init__(self, teacher: nn.Module, loss: Literal["cosine", "mse"] = "cosine",
                 hidden: float = 0.0, layers: dict[int, int] | None = None,
                 similarity: float = 0.0) -> None:
        if loss not in ("cosine", "mse"):
            raise ArchlearnError(f"distill loss must be 'cosine' or 'mse', got {loss!r}")
        for name, weight in (("hidden", hidden), ("similarity", similarity)):
            if not weight >= 0:
                raise ArchlearnError(f"distill {name} weight must be >= 0, got {weight!r}")
        self.teacher, self.loss, self.hidden, self.layers = teacher, loss, float(hidden), layers
        self.similarity = float(similarity)
        self.last: dict[str, float] = {}

    def pairs(self, student_layers: int, teacher_layers: int) -> dict[int, int]:
        """Student hidden-state index -> teacher hidden-state index (0: embeddings output).

        >>> Distiller(nn.Identity()).pairs(3, 6)
        {1: 2, 2: 4, 3: 6}
        """
        if self.layers is not None:
            bad = {s: t for s, t in self.layers.items()
                   if not (0 <= s <= student_layers and 0 <= t <= teacher_layers)}
            if bad:
                raise ArchlearnError(f"distill layers {bad} are out of range (student has "
                                     f"{student_layers} layers, teacher {teacher_layers})")
            return dict(self.layers)
        return {i: round(i * teacher_layers / student_layers)
                for i in range(1, student_layers + 1)}

    def embedding_loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The embedding term for pooled embeddings ``[batch, dim]``."""
        if self.loss == "cosine":
            return (1 - F.cosine_similarity(student, teacher.to(student.dtype), dim=-1)).mean()
        return F.mse_loss(student, teacher.to(student.dtype))

    def teacher_outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        """The teacher's last hidden states and hidden states (``None`` unless needed)."""
        module = self.teacher if isinstance(self.teacher, nn.Module) else None
        was = module.training if module is not None else False
        if module is not None:
            module.eval()
        try:
            with torch.no_grad():
                return _outputs(self.teacher, input_ids, attention_mask, self.hidden > 0)
        finally:
            if module is not None:
                module.train(was)

    def __call__(self, student, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None,
                 teacher_outputs: tuple | None = None) -> torch.Tensor:
        """The loss of ``student`` on a batch; ``teacher_outputs`` (from
        :meth:`teacher_outputs` on the same batch) skips the teacher's forward pass, for a
        teacher cached across several students."""
        if teacher_outputs is None:
            teacher_outputs = self.teacher_outputs(input_ids, attention_mask)
        t_last, t_states = teacher_outputs
        s_last, s_states = _outputs(student, input_ids, attention_mask, self.hidden > 0)
        # the loss in float32 whatever the models compute in (bfloat16 autocast, half caches)
        s_emb = mean_pool(s_last.float(), attention_mask)
        t_emb = mean_pool(t_last.float(), attention_mask)
        loss = self.embedding_loss(s_emb, t_emb)
        self.last = {"embedding": float(loss.detach())}
        if self.similarity > 0:
            term = similarity_loss(s_emb, t_emb)
            self.last["similarity"] = float(term.detach())
            loss = loss + self.similarity * term
        if self.hidden > 0:
            term = self.hidden_loss(s_states, t_states, attention_mask)
            self.last["hidden"] = float(term.detach())
            loss = loss + self.hidden * term
        return loss

    def hidden_loss(self, student_states, teacher_states, attention_mask) -> torch.Tensor:
        """Mean over the layer pairs of the per-token MSE of the hidden states."""
        if student_states is None or teacher_states is None:
            raise ArchlearnError("layer-wise distillation needs hidden_states from both models")
        pairs = self.pairs(len(student_states) - 1, len(teacher_states) - 1)
        m = None if attention_mask is None else attention_mask.to(torch.bool)
        total = student_states[-1].new_zeros((), dtype=torch.float32)
        for s, t in pairs.items():
            a, b = student_states[s].float(), teacher_states[t].float()
            if m is not None:
                a, b = a[m], b[m]
            total = total + F.mse_loss(a, b)
        return total / len(pairs)


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the in-batch cosine-similarity matrices of two ``[batch, dim]``
    embeddings (zero for a rotated or rescaled copy: only the angles between sentences count).

    >>> e = torch.randn(4, 3)
    >>> round(similarity_loss(2 * e, e).item(), 6), bool(similarity_loss(torch.randn(4, 3), e) > 0)
    (0.0, True)
    """
    s, t = F.normalize(student, dim=-1), F.normalize(teacher.to(student.dtype), dim=-1)
    return F.mse_loss(s @ s.T, t @ t.T)


def distill(teacher: nn.Module, *, loss: Literal["cosine", "mse"] = "cosine",
            hidden: float = 0.0, layers: dict[int, int] | None = None,
            similarity: float = 0.0) -> Distiller:
    """A distillation loss against the frozen ``teacher`` (see :class:`Distiller`).

    ``loss``: the embedding term (``"cosine"`` or ``"mse"``); ``hidden``: the weight of the
    layer-wise hidden-state term (0: off); ``layers``: which student layer learns which teacher
    layer (default: evenly spread); ``similarity``: the weight of the in-batch similarity-matrix
    term (0: off).
    """
    if not isinstance(teacher, nn.Module) and not callable(teacher):
        raise ArchlearnError(f"teacher must be a model, got {type(teacher).__name__}")
    return Distiller(teacher, loss=loss, hidden=hidden, layers=layers, similarity=similarity)
