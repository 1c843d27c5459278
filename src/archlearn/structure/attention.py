"""Attention heads as units: finding them, gating them, removing them.

A head is one unit: removing head ``h`` removes its rows of the query, key and value projections
and its columns of the output projection, and the module's head count drops by one. The gate of
a head multiplies the head's slice of the attention context where the output projection reads it
(the tri-state ReLU's ``w * act(x)`` with the head as the unit), so a gated-off head contributes
nothing and its removal is exact: softmax is taken per head, and no other head reads its rows.

Two families are recognised (everything else is left to the channel groups, which refuse the
attention's batched products, see ``ops.py``):

* ``nn.MultiheadAttention``. Its output projection is applied inside
  ``F.multi_head_attention_forward`` (no hook fires there), so the gate scales the value rows
  instead (a head's output is linear in its values: ``softmax(.) (v s) = s softmax(.) v``), via a
  forward that :func:`attention_forward` computes. With fewer heads, ``embed_dim != heads *
  head_dim``, which ``nn.MultiheadAttention`` cannot express: it is replaced by
  :class:`PrunedMultiheadAttention` (same parameter names, so ``state_dict`` keys stay).
* Transformer blocks written with separate projections (``query/key/value`` as in BERT/ViT,
  ``q_proj/k_proj/v_proj``, ``q_lin/k_lin/v_lin``) or one fused projection (``c_attn``, GPT-2;
  ``qkv``, timm's ViT), reshaped into heads of ``head_dim`` channels. The output projection is
  the layer that reads the attention module's output (BERT's ``attention.output.dense``) or its
  own child (``o_proj``, ``out_proj``, ``c_proj``, ``proj``...). Head-count attributes are
  updated on removal.

The detected layout is checked by shrinking a copy with a random head pattern at ``attach``
(``verify.py``): a model whose attention does not follow these conventions is refused, never
shrunk wrongly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from archlearn.structure.handlers import Layer, handler_for, is_hf_conv1d, out_pruner

SPLIT_NAMES = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"),
               ("q_lin", "k_lin", "v_lin"), ("q", "k", "v"))
FUSED_NAMES = ("c_attn", "qkv")  # GPT-2's Conv1D, timm's Linear: q, k, v side by side
HEADS_ATTRS = ("num_attention_heads", "num_heads", "n_heads", "n_head")
HEAD_DIM_ATTRS = ("attention_head_size", "head_dim", "key_value_proj_dim", "dim_per_head")
INNER_ATTRS = ("all_head_size", "inner_dim", "split_size", "attn_dim")
KV_HEADS_ATTRS = ("num_key_value_heads", "num_kv_heads")
OUTPUT_CHILD_NAMES = ("o_proj", "out_proj", "out_lin", "o", "c_proj", "proj")
# children that act on all heads' outputs together (timm's scale_norm and gated attention)
ACROSS_HEADS_NAMES = ("norm", "gate")


@dataclass
class HeadLayout:
    """Where the heads of one attention module live (also the recipe step's content)."""

    module: str
    heads: int
    head_dim: int
    style: str  # "mha" | "split" | "fused"
    projections: list[tuple[str, int]] = field(default_factory=list)  # (layer, channel offset)
    output: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)  # attribute -> "heads" | "inner"

    def step(self, heads_off: list[int]) -> dict:
        return {"op": "prune_heads", "module": self.module, "heads": heads_off,
                "head_dim": self.head_dim, "style": self.style,
                "projections": [list(p) for p in self.projections], "output": self.output,
                "attrs": dict(self.attrs)}


def _first_attr(module: nn.Module, names) -> tuple[str, int] | None:
    for n in names:
        v = getattr(module, n, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return n, v
    return None


def _children(module: nn.Module) -> dict[str, Layer]:
    return dict(module.named_children())


def find_heads(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], run
) -> tuple[list[HeadLayout], list[tuple[str, str]]]:
    """Attention modules whose heads can be units, and ``(name, reason)`` for those refused.

    ``run(model, inputs)`` performs one forward pass (used to find which layer reads an
    attention module's output).
    """
    layouts: list[HeadLayout] = []
    refused: list[tuple[str, str]] = []
    candidates: list[tuple[str, nn.Module, str]] = []
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            reason = _mha_problem(m)
            if reason:
                refused.append((name, reason))
            else:
                layouts.append(HeadLayout(name, m.num_heads, m.head_dim, "mha"))
            continue
        kids = _children(m)
        fused = next((n for n in FUSED_NAMES if n in kids and _is_projection(kids[n])), None)
        if fused or any(all(n in kids for n in trio) for trio in SPLIT_NAMES):
            candidates.append((name, m, "fused" if fused else "split"))
    if not candidates:
        return layouts, refused
    readers = _output_readers(model, inputs, [c[0] for c in candidates], run)
    for name, m, style in candidates:
        layout_or_reason = _layout(name, m, style, readers.get(name))
        if isinstance(layout_or_reason, str):
            refused.append((name, layout_or_reason))
        else:
            layouts.append(layout_or_reason)
    return layouts, refused


def _mha_problem(m: nn.MultiheadAttention) -> str | None:
    if m.bias_k is not None or m.add_zero_attn:
        return "nn.MultiheadAttention with add_bias_kv or add_zero_attn is not gated by head"
    if m.num_heads < 2:
        return "attention with a single head"
    return None


def _layout(name: str, m: nn.Module, style: str, reader: str | None) -> HeadLayout | str:
    heads = _first_attr(m, HEADS_ATTRS)
    if heads is None:
        return "attention module without a head-count attribute (num_heads, ...)"
    kv = _first_attr(m, KV_HEADS_ATTRS)
    if kv is not None and kv[1] != heads[1]:
        return "grouped-query attention (fewer key/value heads) is not gated by head"
    if getattr(m, "is_cross_attention", False) or "q_attn" in _children(m):
        return "cross-attention with a separate query projection is not gated by head"
    kids = _children(m)
    across = [n for n in ACROSS_HEADS_NAMES if n in kids and not isinstance(kids[n], nn.Identity)]
    if across:
        return (f"attention whose {across[0]} acts on all heads' outputs together (a scale "
                "norm or gate) is not gated by head")
    if style == "fused":
        fused = next(n for n in FUSED_NAMES if n in kids and _is_projection(kids[n]))
        proj = kids[fused]
        total = handler_for(proj).out_channels(proj)  # type: ignore[union-attr]  (a projection)
        if total % 3:
            return "fused attention projection whose width is not three equal parts"
        inner = total // 3
        # timm reshapes qkv to (batch, tokens, 3, heads, head_dim), GPT-2 splits in three
        # then into heads: channel s * inner + h * head_dim + j either way (the trial checks)
        projections = [(f"{name}.{fused}", 0), (f"{name}.{fused}", inner),
                       (f"{name}.{fused}", 2 * inner)]
    else:
        trio = next(t for t in SPLIT_NAMES if all(n in kids for n in t))
        layers = [kids[n] for n in trio]
        handlers = [handler_for(layer) for layer in layers]
        if any(h is None for h in handlers):
            return "attention projections that are not Linear layers"
        widths = {h.out_channels(layer) for h, layer in zip(handlers, layers) if h is not None}
        if len(widths) != 1:
            return "query, key and value projections of different widths"
        inner = widths.pop()
        projections = [(f"{name}.{n}", 0) for n in trio]
    dim = _first_attr(m, HEAD_DIM_ATTRS)
    head_dim = dim[1] if dim else inner // heads[1]
    if head_dim * heads[1] != inner:
        return f"{heads[1]} heads of {head_dim} channels do not fill the projections ({inner})"
    output = next((f"{name}.{n}" for n in OUTPUT_CHILD_NAMES
                   if n in kids and handler_for(kids[n]) is not None), reader)
    if output is None:
        return "no layer reads the attention's output directly (output projection not found)"
    attrs = {heads[0]: "heads"}
    for a in INNER_ATTRS:
        if getattr(m, a, None) == inner:
            attrs[a] = "inner"
    return HeadLayout(name, heads[1], head_dim, style, projections, output, attrs)


def _is_projection(module: nn.Module) -> bool:
    """A fused query/key/value projection: transformers' Conv1D or an nn.Linear."""
    return is_hf_conv1d(module) or type(module) is nn.Linear


def _output_readers(model: nn.Module, inputs, names: list[str], run) -> dict[str, str]:
    """For each attention module, the layer whose input is that module's output (or its [0])."""
    produced: dict[int, str] = {}
    readers: dict[str, str] = {}
    keep: list[torch.Tensor] = []

    def on_attention(name):
        def hook(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.Tensor):
                keep.append(out)
                produced[id(out)] = name
        return hook

    def on_layer(name):
        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor) and id(args[0]) in produced:
                readers.setdefault(produced[id(args[0])], name)
        return hook

    handles = [model.get_submodule(n).register_forward_hook(on_attention(n)) for n in names]
    handles += [m.register_forward_pre_hook(on_layer(n)) for n, m in model.named_modules()
                if handler_for(m) is not None]
    try:
        run(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return readers


# --- removing heads -----------------------------------------------------------------------------

def prune_heads(model: nn.Module, step: dict) -> None:
    """Apply a ``prune_heads`` recipe step in place."""
    from archlearn.structure.graph import layer, set_module

    module = layer(model, step["module"])
    off = sorted(int(h) for h in step["heads"])
    hd = int(step["head_dim"])
    if step["style"] == "mha":
        set_module(model, step["module"], PrunedMultiheadAttention.keeping(module, off))
        return
    channels = [h * hd + j for h in off for j in range(hd)]
    by_layer: dict[str, list[int]] = {}
    for name, offset in step["projections"]:
        by_layer.setdefault(name, []).extend(offset + c for c in channels)
    for name, idxs in by_layer.items():
        target = model.get_submodule(name)
        out_pruner(target).prune_out_channels(target, idxs)
    reader = model.get_submodule(step["output"])
    out_pruner(reader).prune_in_channels(reader, channels)
    heads = None
    for attr, what in step["attrs"].items():
        if what == "heads":
            heads = getattr(module, attr) - len(off)
            setattr(module, attr, heads)
    for attr, what in step["attrs"].items():
        if what == "inner" and heads is not None:
            setattr(module, attr, heads * hd)


# --- nn.MultiheadAttention with any number of heads ---------------------------------------------

def _mha_weights(mha: nn.MultiheadAttention):
    inner = mha.num_heads * mha.head_dim
    if mha.in_proj_weight is not None:
        wq, wk, wv = mha.in_proj_weight.split(inner)
    else:
        wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    if mha.in_proj_bias is not None:
        bq, bk, bv = mha.in_proj_bias.split(inner)
    else:
        bq = bk = bv = None
    return (wq, wk, wv), (bq, bk, bv)


def _additive_mask(attn_mask, key_padding_mask, batch: int, heads: int,
                   dtype) -> torch.Tensor | None:
    def additive(mask):
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
                mask, float("-inf"))
        return mask.to(dtype)

    out = None
    if attn_mask is not None:
        m = additive(attn_mask)
        out = m.view(batch, heads, *m.shape[-2:]) if m.dim() == 3 else m
    if key_padding_mask is not None:
        k = additive(key_padding_mask).view(batch, 1, 1, -1)
        out = k if out is None else out + k
    return out


def attention_forward(mha: nn.MultiheadAttention, query, key, value, key_padding_mask=None,
                      need_weights=True, attn_mask=None, average_attn_weights=True,
                      is_causal=False, head_scale: torch.Tensor | None = None):
    """What ``nn.MultiheadAttention.forward`` computes, for any ``num_heads * head_dim``.

    ``head_scale`` (one value per head) multiplies each head's values: the head gate.
    """
    batched = query.dim() == 3
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    if not mha.batch_first or not batched:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    (wq, wk, wv), (bq, bk, bv) = _mha_weights(mha)
    h, hd = mha.num_heads, mha.head_dim
    if head_scale is not None:
        s = head_scale.to(wv.dtype).repeat_interleave(hd)
        wv = wv * s[:, None]
        bv = None if bv is None else bv * s
    b, t, s_len = query.shape[0], query.shape[1], key.shape[1]
    q = F.linear(query, wq, bq).view(b, t, h, hd).transpose(1, 2)
    k = F.linear(key, wk, bk).view(b, s_len, h, hd).transpose(1, 2)
    v = F.linear(value, wv, bv).view(b, s_len, h, hd).transpose(1, 2)
    mask = _additive_mask(attn_mask, key_padding_mask, b, h, q.dtype)
    p = mha.dropout if mha.training else 0.0
    causal = is_causal and mask is None
    weights = None
    if need_weights:
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
        if causal:
            scores = scores.masked_fill(
                torch.ones(t, s_len, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        out = F.dropout(weights, p, mha.training) @ v
        if average_attn_weights:
            weights = weights.mean(dim=1)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                             is_causal=causal)
    out = mha.out_proj(out.transpose(1, 2).reshape(b, t, h * hd))
    if not mha.batch_first or not batched:
        out = out.transpose(0, 1)
    if not batched:
        out = out.squeeze(1)
        weights = None if weights is None else weights.squeeze(0)
    return out, weights


class PrunedMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` with ``num_heads * head_dim`` smaller than ``embed_dim``.

    Parameter names are those of ``nn.MultiheadAttention`` (``in_proj_weight``, ``in_proj_bias``,
    ``out_proj.*`` or the separate ``q/k/v_proj_weight``), so a saved state loads by name.

    >>> mha = nn.MultiheadAttention(8, 4, batch_first=True)
    >>> small = PrunedMultiheadAttention.keeping(mha, [1, 3])
    >>> small.num_heads, small.out_proj.in_features
    (2, 4)
    """

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, kdim: int | None = None,
                 vdim: int | None = None, separate: bool = False) -> None:
        nn.Module.__init__(self)
        self.embed_dim, self.kdim, self.vdim = embed_dim, kdim or embed_dim, vdim or embed_dim
        # torch's fused fast paths (MHA, TransformerEncoderLayer) assume heads * head_dim ==
        # embed_dim; declaring the projections separate keeps them away from this module
        self._qkv_same_embed_dim = False
        self.num_heads, self.head_dim = num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        inner = num_heads * head_dim
        if separate:
            self.q_proj_weight = nn.Parameter(torch.empty(inner, embed_dim))
            self.k_proj_weight = nn.Parameter(torch.empty(inner, self.kdim))
            self.v_proj_weight = nn.Parameter(torch.empty(inner, self.vdim))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * inner))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.modules.linear.NonDynamicallyQuantizableLinear(inner, embed_dim,
                                                                           bias=bias)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False

    @classmethod
    def keeping(cls, mha: nn.MultiheadAttention, heads_off: list[int]):
        """A copy of ``mha`` without the heads ``heads_off``."""
        hd, h = mha.head_dim, mha.num_heads
        keep_heads = [i for i in range(h) if i not in set(heads_off)]
        rows = torch.tensor([i * hd + j for i in keep_heads for j in range(hd)], dtype=torch.long)
        (wq, wk, wv), (bq, bk, bv) = _mha_weights(mha)
        new = cls(mha.embed_dim, len(keep_heads), hd, bias=mha.in_proj_bias is not None,
                  batch_first=mha.batch_first, dropout=mha.dropout, kdim=mha.kdim, vdim=mha.vdim,
                  separate=mha.in_proj_weight is None)
        new = new.to(device=wq.device, dtype=wq.dtype)
        with torch.no_grad():
            parts = [w.index_select(0, rows.to(w.device)) for w in (wq, wk, wv)]
            if new.in_proj_weight is not None:
                new.in_proj_weight.copy_(torch.cat(parts))
            else:
                new.q_proj_weight.copy_(parts[0])
                new.k_proj_weight.copy_(parts[1])
                new.v_proj_weight.copy_(parts[2])
            if new.in_proj_bias is not None:
                new.in_proj_bias.copy_(torch.cat([b.index_select(0, rows.to(b.device))
                                                  for b in (bq, bk, bv) if b is not None]))
            new.out_proj.weight.copy_(mha.out_proj.weight.index_select(1, rows.to(wq.device)))
            if new.out_proj.bias is not None:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        new.train(mha.training)
        return new

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        return attention_forward(self, query, key, value, key_padding_mask, need_weights,
                                 attn_mask, average_attn_weights, is_causal)


def fold_mha(mha: nn.MultiheadAttention, scale: torch.Tensor) -> None:
    """Multiply each head's value rows (weights and bias) by its scale, in place."""
    (_, _, wv), (_, _, bv) = _mha_weights(mha)
    s = scale.to(wv).repeat_interleave(mha.head_dim)
    with torch.no_grad():
        wv.mul_(s[:, None])
        if bv is not None:
            bv.mul_(s)
