"""The training-free recipe of ``research/ANCHORS.md``, re-implemented plainly, as a baseline.

ANCHORS.md measured, outside the repository, a plain float64 re-implementation of MiniLM's
forward pass compressed without training: K-prune's label-free scores, a global greedy
allocation, and ridge least squares of the attention-output and FFN-output layers, bottom-up
(0.953 cosine / 0.533 top-10 on its own sentences). Its figure was set as the floor
``al.compress`` must beat; this module runs the same recipe on the benchmark's split, so the two
are compared on the same sentences, the same calibration draw and the same MACs:

1. **scores**, on the original model: for every head and FFN neuron, the sum over calibration
   tokens of activation^2 x squared norm of the column of the output projection that reads it
   (a head: summed over its dimensions);
2. **allocation**: every unit's score divided by its layer's total of that kind (heads or FFN)
   and by its MACs (one ``tokens``-token sentence, the attention products counted), taken
   greedily, best first, while the MACs stay within the budget;
3. **re-fit**, layer after layer from the bottom, on the compressed model's own inputs: the
   attention output projection, then the FFN output layer, each solved by ridge least squares
   (``ridge`` x the mean diagonal of X^T X, toward zero) to the original's pre-LayerNorm sum
   minus the compressed model's residual.

Nothing of archlearn's compression is used (only :func:`archlearn.models.bert.keeping` builds the
smaller ``BertModel`` from the kept indices). Weights are BERT's (``transformers`` ``BertModel``).

>>> from benchmarks.compress import transformers_ready
>>> transformers_ready()  # transformers' model classes beside the dev extra's torchvision
>>> from transformers import BertConfig, BertModel
>>> import torch
>>> _ = torch.manual_seed(0)
>>> bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
...                             num_attention_heads=2, intermediate_size=32)).eval()
>>> batch = {"input_ids": torch.randint(0, 50, (8, 6)),
...          "attention_mask": torch.ones(8, 6, dtype=torch.long)}
>>> small, info = ridge_recipe(bert, [batch], 0.5, tokens=6)
>>> info["macs"] <= 0.5 * info["full_macs"]
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["RIDGE", "encoder_macs", "ridge_recipe"]

#: ANCHORS.md's ridge: 1e-3 x the mean diagonal of X^T X, toward zero
RIDGE = 1e-3
_DT = torch.float64


def _layer_weights(layer: Any) -> dict[str, Any]:
    a, out = layer.attention, layer.output

    def w(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(_DT).clone()

    return dict(
        Wq=w(a.self.query.weight), bq=w(a.self.query.bias), Wk=w(a.self.key.weight),
        bk=w(a.self.key.bias), Wv=w(a.self.value.weight), bv=w(a.self.value.bias),
        Wo=w(a.output.dense.weight), bo=w(a.output.dense.bias),
        g1=w(a.output.LayerNorm.weight), b1=w(a.output.LayerNorm.bias),
        eps1=a.output.LayerNorm.eps, Wi=w(layer.intermediate.dense.weight),
        bi=w(layer.intermediate.dense.bias), Wf=w(out.dense.weight), bf=w(out.dense.bias),
        g2=w(out.LayerNorm.weight), b2=w(out.LayerNorm.bias), eps2=out.LayerNorm.eps,
        heads=int(a.self.num_attention_heads), dh=int(a.self.attention_head_size))


def _context(p: dict[str, Any], h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The heads' concatenated attention outputs, before the output projection."""
    b, s, _ = h.shape
    nh, dh = p["heads"], p["dh"]

    def split(w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return (h @ w.T + bias).view(b, s, nh, dh).transpose(1, 2)

    q, k, v = split(p["Wq"], p["bq"]), split(p["Wk"], p["bk"]), split(p["Wv"], p["bv"])
    pad = (1.0 - mask[:, None, None, :].to(_DT)) * torch.finfo(_DT).min
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + pad, -1)
    return (weights @ v).transpose(1, 2).reshape(b, s, nh * dh)


def _forward(p: dict[str, Any], h: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """One BERT layer, keeping what the scores and the re-fit read."""
    width = h.shape[-1]
    c = _context(p, h, mask)
    pre1 = c @ p["Wo"].T + p["bo"] + h
    a = F.layer_norm(pre1, (width,), p["g1"], p["b1"], p["eps1"])
    u = F.gelu(a @ p["Wi"].T + p["bi"])
    pre2 = u @ p["Wf"].T + p["bf"] + a
    out = F.layer_norm(pre2, (width,), p["g2"], p["b2"], p["eps2"])
    return {"c": c, "pre1": pre1, "a": a, "u": u, "pre2": pre2, "out": out}


def _tokens(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The rows of real (not padding) tokens."""
    return x.reshape(-1, x.shape[-1])[mask.reshape(-1).bool()]


def _ridge(x: torch.Tensor, y: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``W, b`` minimising ||x W^T + b - y||^2 + ridge * mean(diag(x^T x)) * ||W||^2."""
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=_DT)], 1)
    gram = xb.T @ xb
    n = x.shape[1]
    reg = torch.zeros(n + 1, dtype=_DT)
    reg[:n] = ridge * gram.diagonal()[:n].mean().clamp_min(1e-12)
    sol = torch.linalg.solve(gram + torch.diag(reg), xb.T @ y)
    return sol[:n].T, sol[n]


def _allocate(head_s: torch.Tensor, ffn_s: torch.Tensor, head_cost: float, ffn_cost: float,
              target: float) -> tuple[list[list[int]], list[list[int]]]:
    """Greedy by score / layer total / MACs while the MACs stay within ``target``."""
    items = []
    for layer in range(len(head_s)):
        for kind, s, cost in (("h", head_s[layer], head_cost), ("f", ffn_s[layer], ffn_cost)):
            total = float(s.sum()) or 1.0
            items += [(float(v) / total / cost, cost, layer, kind, j) for j, v in enumerate(s)]
    items.sort(key=lambda item: -item[0])
    used = 0.0
    heads: list[list[int]] = [[] for _ in head_s]
    ffn: list[list[int]] = [[] for _ in ffn_s]
    for _, cost, layer, kind, j in items:
        if used + cost <= target:
            used += cost
            (heads if kind == "h" else ffn)[layer].append(j)
    return [sorted(h) for h in heads], [sorted(f) for f in ffn]


def _unit_costs(teacher: Any, tokens: int) -> tuple[int, int, int]:
    """MACs of one head and of one FFN neuron for one ``tokens``-token sentence, and of the
    whole encoder (the linear layers and the attention products)."""
    config = teacher.config
    width, nh, layers = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    dh = width // nh
    head = 4 * width * dh * tokens + 2 * tokens * tokens * dh
    ffn = 2 * width * tokens
    return head, ffn, layers * (nh * head + config.intermediate_size * ffn)


def encoder_macs(teacher: Any, tokens: int = 128) -> int:
    """The MACs the recipe's budget is a fraction of: the encoder's, for one sentence.

    >>> from benchmarks.compress import transformers_ready
    >>> transformers_ready()
    >>> from transformers import BertConfig, BertModel
    >>> encoder_macs(BertModel(BertConfig(hidden_size=16, num_hidden_layers=2,
    ...                                   num_attention_heads=2, intermediate_size=32)), 4)
    17408
    """
    return _unit_costs(teacher, tokens)[2]


def ridge_recipe(teacher: Any, batches: Sequence[dict[str, torch.Tensor]], budget: float, *,
                 tokens: int = 128, ridge: float = RIDGE) -> tuple[Any, dict[str, Any]]:
    """``teacher`` compressed to ``budget`` of its encoder's MACs by the ANCHORS.md recipe.

    ``batches``: dicts with ``input_ids`` and ``attention_mask`` (padded). Returns the smaller
    ``BertModel`` and the decision (kept heads and FFN neurons per layer, MACs as counted by the
    recipe's own cost model for one ``tokens``-token sentence).
    """
    from archlearn.models.bert import keeping

    layers = [_layer_weights(layer) for layer in teacher.encoder.layer]
    with torch.no_grad():
        cal = [(b["attention_mask"], teacher.embeddings(input_ids=b["input_ids"]).to(_DT))
               for b in batches]
    nh, dh = layers[0]["heads"], layers[0]["dh"]
    inner = layers[0]["Wi"].shape[0]
    head_s = torch.zeros(len(layers), nh, dtype=_DT)
    ffn_s = torch.zeros(len(layers), inner, dtype=_DT)
    hidden = [h for _, h in cal]
    for i, p in enumerate(layers):  # scores, on the original model
        col_o, col_f = (p["Wo"] ** 2).sum(0), (p["Wf"] ** 2).sum(0)
        nxt = []
        for (mask, _), h in zip(cal, hidden):
            r = _forward(p, h, mask)
            head_s[i] += ((_tokens(r["c"], mask) ** 2).sum(0) * col_o).view(nh, dh).sum(1)
            ffn_s[i] += (_tokens(r["u"], mask) ** 2).sum(0) * col_f
            nxt.append(r["out"])
        hidden = nxt
    head_cost, ffn_cost, full = _unit_costs(teacher, tokens)
    heads, ffn = _allocate(head_s, ffn_s, head_cost, ffn_cost, budget * full)

    h_orig = [h for _, h in cal]
    h_small = [h for _, h in cal]
    fitted = []
    for i, p in enumerate(layers):
        cols = torch.tensor([j * dh + d for j in heads[i] for d in range(dh)], dtype=torch.long)
        keep_f = torch.tensor(ffn[i], dtype=torch.long)
        q = dict(p, Wq=p["Wq"][cols], bq=p["bq"][cols], Wk=p["Wk"][cols], bk=p["bk"][cols],
                 Wv=p["Wv"][cols], bv=p["bv"][cols], Wo=p["Wo"][:, cols], heads=len(heads[i]),
                 Wi=p["Wi"][keep_f], bi=p["bi"][keep_f], Wf=p["Wf"][:, keep_f])
        # the original's layer again (the scoring pass ran it too): keeping every layer's
        # float64 activations of all calibration tokens would take gigabytes
        runs = [_forward(p, h, mask) for (mask, _), h in zip(cal, h_orig)]
        x = torch.cat([_tokens(_context(q, h, mask), mask) for (mask, _), h in zip(cal, h_small)])
        y = torch.cat([_tokens(r["pre1"] - h, mask)
                       for (mask, _), h, r in zip(cal, h_small, runs)])
        q["Wo"], q["bo"] = _ridge(x, y, ridge)
        mine = [_forward(q, h, mask) for (mask, _), h in zip(cal, h_small)]
        x = torch.cat([_tokens(m["u"], mask) for (mask, _), m in zip(cal, mine)])
        y = torch.cat([_tokens(r["pre2"] - m["a"], mask)
                       for (mask, _), m, r in zip(cal, mine, runs)])
        q["Wf"], q["bf"] = _ridge(x, y, ridge)
        fitted.append(q)
        h_orig = [r["out"] for r in runs]
        h_small = [_forward(q, h, mask)["out"] for (mask, _), h in zip(cal, h_small)]

    example = torch.full((1, tokens), 1 % int(teacher.config.vocab_size))
    small = keeping(teacher, heads, ffn, example)
    with torch.no_grad():
        for layer, q in zip(small.encoder.layer, fitted):
            for module, w, b in ((layer.attention.output.dense, q["Wo"], q["bo"]),
                                 (layer.output.dense, q["Wf"], q["bf"])):
                module.weight.copy_(w.to(module.weight))
                module.bias.copy_(b.to(module.bias))
    macs = sum(len(h) * head_cost + len(f) * ffn_cost for h, f in zip(heads, ffn))
    return small, {"heads": heads, "ffn": ffn, "macs": macs, "full_macs": full,
                   "ridge": ridge, "weights": fitted}
