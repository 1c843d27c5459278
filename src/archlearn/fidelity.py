"""How faithfully a student's sentence embeddings reproduce the teacher's.

* **cosine**: the mean over sentences of ``cos(student_i, teacher_i)``;
* **top-k agreement**: for each sentence, its ``k`` nearest neighbours among the *other*
  sentences of the set (cosine similarity) by the student's embeddings and by the teacher's;
  the share they have in common, averaged over the sentences. 1 means every sentence's
  neighbourhood is kept, which is what a search index built on the student needs.

>>> import torch
>>> t = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
>>> embedding_fidelity(t, t, k=5)
{'cosine': 1.0, 'topk_agreement': 1.0, 'k': 5, 'n': 50}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from archlearn.errors import ArchlearnError

__all__ = ["embedding_fidelity", "nearest"]


def nearest(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[n, k]`` of each row's ``k`` most cosine-similar other rows."""
    e = F.normalize(embeddings.double(), dim=-1)
    sim = e @ e.T
    sim.fill_diagonal_(float("-inf"))
    return sim.topk(k, dim=1).indices


def embedding_fidelity(student: torch.Tensor, teacher: torch.Tensor, k: int = 10) -> dict:
    """``{"cosine", "topk_agreement", "k", "n"}`` for embeddings ``[n, dim]`` of the same rows."""
    if student.shape[0] != teacher.shape[0] or student.dim() != 2 or teacher.dim() != 2:
        raise ArchlearnError(f"student and teacher embeddings must be [n, dim] of the same n, "
                             f"got {tuple(student.shape)} and {tuple(teacher.shape)}")
    n = student.shape[0]
    if not 0 < k < n:
        raise ArchlearnError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    cos = F.cosine_similarity(student.double(), teacher.double(), dim=-1).mean()
    a, b = nearest(student, k), nearest(teacher, k)
    # per row: how many of b's indices appear in a's (k x k comparison, no Python loop)
    common = (a.unsqueeze(2) == b.unsqueeze(1)).any(dim=2).sum(dim=1)
    return {"cosine": float(cos), "topk_agreement": float(common.double().mean() / k),
            "k": k, "n": n}
