"""Hidden dimensions behind LayerNorm: one gate group for a whole residual stream.

The residual stream of a transformer (BERT, MiniLM, GPT-2) is written by the embedding tables
and by every sublayer's output projection, normalised by LayerNorms, and read by every sublayer's
input projections. Removing hidden dimension ``j`` removes column ``j`` of every embedding table,
entry ``j`` of every LayerNorm's weight and bias, the rows writing ``j`` and the columns reading
``j`` (CoFi's hidden-dimension mask; Torch-Pruning prunes a ViT's embedding dimension the same
way). Torch-Pruning's group rooted at any writer holds all of them.

A LayerNorm over fewer dimensions is a different function, so while the gates are attached each
LayerNorm of the stream is *masked* (:func:`masked_layer_norm`): its mean and variance are taken
over the dimensions whose gate is not zero, and the dimensions gated off are zero in its output,
exactly what the shrunk LayerNorm computes on the dimensions it keeps. The gate itself multiplies
the stream where layers read it (as for every other group, ``groups.py``), so its scales fold
into the readers' columns. A dimension gated off may still carry values in the un-normalised
stream (a residual sum), but only masked LayerNorms and gated readers ever see them.

ConvNeXt keeps its channels first (NCHW) and normalises them with timm's ``LayerNorm2d``
(``F.layer_norm`` over dimension 1, by permuting to channels-last and back); its blocks scale
their output by a layer-scale vector ``gamma`` (a free parameter, one entry per channel) before
the residual add, and each stage, ended by a LayerNorm2d and a strided convolution, is a stream
of its own. Such a LayerNorm is masked over dimension 1 (:func:`norm_dim`), the permutes and the
layer norm inside its forward belong to it (:func:`inside_norm`), and a one-dimensional free
parameter of the stream loses the entries of the removed dimensions with it.

Larger ConvNeXts (timm's convnext_tiny) leave the NCHW stream in every block for a
channels-last LayerNorm and Linear MLP and come back (:func:`channels_last_detour`): that
LayerNorm is masked over its own last dimension, the stream's channels; so is a LayerNorm of
the stream pooled to ``(N, C)`` (:func:`pooled_to_channels`).

A ViT's stream starts at its patch embedding, a convolution whose output is flattened and
transposed into tokens (:func:`patch_embedding`), then joined by a class token (a free
parameter expanded over the batch and concatenated along the tokens) and a position embedding
added to it: both free parameters whose last dimension is the stream's, sliced with it.

A LayerNorm whose output the model returns (BERT's ``last_hidden_state``, a sentence embedding)
keeps the model's output width: in the shrunk model it becomes a :class:`PaddedLayerNorm`, which
normalises the kept dimensions and writes them into a zero tensor of the full width (equal to
the gated model's output, whose removed dimensions are zero), and the layers reading that output
(BERT's pooler) keep their full input width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch_pruning.ops import OPTYPE

from archlearn.structure.ops import op_name


@dataclass
class StreamLayout:
    """The LayerNorms of one residual stream, and which of them the model returns.

    ``norms``: every LayerNorm on the stream; ``padded``: those whose output is returned (kept
    at full width in the shrunk model); ``full_readers``: layers reading a padded LayerNorm's
    output, whose input width stays.
    """

    root: str
    norms: list[str] = field(default_factory=list)
    padded: list[str] = field(default_factory=list)
    full_readers: list[str] = field(default_factory=list)

    def step(self, dims_off: list[int]) -> dict:
        return {"op": "prune_stream", "root": self.root, "units": dims_off,
                "padded": list(self.padded), "full_readers": list(self.full_readers)}


# LayerNorm subclasses (by defining module and name, so the core package needs no timm import)
# whose own forward is exactly F.layer_norm over the last dimension, or over dimension 1 of an
# NCHW tensor permuted to channels-last and back
_CHANNELS_LAST = frozenset({("timm.layers.norm", "LayerNorm")})
_CHANNELS_FIRST = frozenset({("timm.layers.norm", "LayerNorm2d")})
# either, by its ``data_format`` (transformers' ConvNeXt: permute, nn.LayerNorm, permute back)
_BY_FORMAT = frozenset({("transformers.models.convnext.modeling_convnext", "ConvNextLayerNorm")})


def norm_dim(module: Any) -> int | None:
    """The input dimension a stream's LayerNorm normalises: -1 (``nn.LayerNorm``, timm's
    ``LayerNorm``), 1 (timm's channels-first ``LayerNorm2d``, transformers' ``ConvNextLayerNorm``
    with ``data_format="channels_first"``), or None (any other forward).

    >>> norm_dim(nn.LayerNorm(4)), norm_dim(nn.BatchNorm1d(4))
    (-1, None)
    """
    if not isinstance(module, nn.LayerNorm) or len(module.normalized_shape) != 1:
        return None
    owner = next(c for c in type(module).__mro__ if "forward" in vars(c))  # whose forward runs
    if owner is nn.LayerNorm or (owner.__module__, owner.__qualname__) in _CHANNELS_LAST:
        return -1
    if (owner.__module__, owner.__qualname__) in _CHANNELS_FIRST:
        return 1
    if (owner.__module__, owner.__qualname__) in _BY_FORMAT:
        fmt = getattr(module, "data_format", None)
        return {"channels_last": -1, "channels_first": 1}.get(fmt)  # type: ignore[arg-type]
    return None


def inside_norm(node: Any) -> list[Any]:
    """The permute and layer-norm nodes computed inside a channels-first LayerNorm's own forward
    (``permute -> layer_norm -> permute``, the last one being the module's node), or ``[]``.

    They carry the channels within the LayerNorm, which is masked as a whole: its input permute
    is no layout change of the group and its layer norm no op between layers.
    """
    if node.type != OPTYPE.LN or norm_dim(node.module) != 1:
        return []
    inner, current = [], node
    for expected in ("NativeLayerNorm", "Permute"):
        if len(current.inputs) != 1:
            return []
        current = current.inputs[0]
        if current.type != OPTYPE.ELEMENTWISE or op_name(current.grad_fn) != expected or len(
                current.outputs) != 1:
            return []
        inner.append(current)
    return inner


def patch_embedding(node: Any) -> list[Any]:
    """The reshape and transpose that turn a convolution's ``(N, C, H, W)`` output into tokens
    ``(N, H*W, C)`` (a ViT's patch embedding: ``proj(x).flatten(2).transpose(1, 2)``), or ``[]``.

    After them the convolution's channels are the stream's last dimension, like a Linear's.
    """
    if node.type != OPTYPE.CONV or len(node.outputs) != 1:
        return []
    flat = node.outputs[0]
    if flat.type != OPTYPE.RESHAPE or len(flat.outputs) != 1:
        return []
    swap = flat.outputs[0]
    if swap.type != OPTYPE.ELEMENTWISE or op_name(swap.grad_fn) != "Transpose":
        return []
    dims = {getattr(swap.grad_fn, "_saved_dim0", None), getattr(swap.grad_fn, "_saved_dim1", None)}
    # negative dims are stored as unsigned 64-bit integers
    dims = {d - 2**64 if isinstance(d, int) and d >= 2**63 else d for d in dims}
    return [flat, swap] if dims in ({1, 2}, {1, -1}) else []


_TO_LAST, _TO_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def _permutes(node: Any, dims: tuple[int, ...]) -> bool:
    if node.type != OPTYPE.ELEMENTWISE or op_name(node.grad_fn) != "Permute":
        return False
    saved = tuple(getattr(node.grad_fn, "_saved_dims", ()))
    # negative dims are stored as unsigned 64-bit integers
    return tuple((d - 2**64 if d >= 2**63 else d) % 4 for d in saved) == dims


def channels_last_detour(node: Any) -> list[Any]:
    """The permute around a channels-last stretch of an NCHW stream (the blocks of timm's
    ConvNeXt-T and larger: ``permute(0, 2, 3, 1) -> LayerNorm -> Linear ... Linear ->
    permute(0, 3, 1, 2)``), or ``[]``: for a channels-last LayerNorm's node the permute feeding
    it, for a Linear's node the permute its output goes through.

    Such a LayerNorm normalises the NCHW stream's channels, and such a Linear writes them.
    """
    if node.type == OPTYPE.LN and norm_dim(node.module) == -1 and len(node.inputs) == 1:
        before = node.inputs[0]
        return [before] if _permutes(before, _TO_LAST) and len(before.outputs) == 1 else []
    if node.type == OPTYPE.LINEAR and len(node.outputs) == 1:
        after = node.outputs[0]
        while _scales(after):  # transformers' ConvNeXt: layer scale before the permute
            after = after.outputs[0]
        return [after] if _permutes(after, _TO_FIRST) else []
    return []


def pooled_to_channels(node: Any) -> bool:
    """A channels-last LayerNorm's node whose input is an NCHW stream pooled to ``(N, C)``
    (``x.mean([-2, -1])``, transformers' ConvNeXt): its last dimension is the channels."""
    if node.type != OPTYPE.LN or norm_dim(node.module) != -1 or len(node.inputs) != 1:
        return False
    fn = node.inputs[0].grad_fn
    sizes = getattr(fn, "_saved_self_sym_sizes", None)
    dims = getattr(fn, "_saved_dim", None)
    if op_name(fn) not in ("Mean", "Sum", "Amax") or sizes is None or dims is None or getattr(
            fn, "_saved_keepdim", True):
        return False
    rank = len(sizes)
    dims = dims if isinstance(dims, (tuple, list)) else [dims]
    # negative dims are stored as unsigned 64-bit integers
    return rank > 2 and {(d - 2**64 if d >= 2**63 else d) % rank for d in dims} == set(
        range(2, rank))


def _scales(node: Any) -> bool:
    """A product with a free parameter (a layer scale), with one output."""
    return (node.type == OPTYPE.ELEMENTWISE and op_name(node.grad_fn) == "Mul"
            and len(node.outputs) == 1
            and any(i.type == OPTYPE.PARAMETER for i in node.inputs))


def parameter_problem(param: Any, pruning_dim: int | None,
                      channel_dim: int | None = None) -> str | None:
    """Why a free parameter on a stream cannot lose the removed dimensions' entries, or None.

    A one-dimensional parameter with one entry per hidden dimension (ConvNeXt's layer scale
    ``gamma``), or one whose channel dimension is the stream's (a ViT's class token and
    position embedding, ``(1, tokens, C)``), acts on each dimension on its own; the trial
    shrink checks its use.
    """
    if not isinstance(param, torch.Tensor) or pruning_dim is None:
        pass
    elif param.dim() == 1 or (channel_dim is not None
                              and pruning_dim % param.dim() == channel_dim % param.dim()):
        return None
    shape = tuple(param.shape) if isinstance(param, torch.Tensor) else "?"
    return (f"contains a free parameter of shape {shape} used outside any layer, which is "
            "not known to act on each hidden dimension on its own")


def masked_layer_norm(x: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None,
                      bias: torch.Tensor | None, eps: float, dim: int = -1) -> torch.Tensor:
    """LayerNorm over dimension ``dim``'s entries where ``mask`` is true; zero elsewhere.

    >>> x = torch.tensor([[1.0, 2.0, 100.0, 3.0]])
    >>> mask = torch.tensor([True, True, False, True])
    >>> masked_layer_norm(x, mask, None, None, 0.0)[0, [0, 1, 3]].allclose(
    ...     nn.functional.layer_norm(x[:, [0, 1, 3]], (3,)))
    True
    >>> masked_layer_norm(x, mask, None, None, 0.0)[0, 2].item()
    0.0
    """
    if dim % x.dim() != x.dim() - 1:  # channels first: normalise them as the last dimension
        return masked_layer_norm(x.movedim(dim, -1), mask, weight, bias, eps).movedim(-1, dim)
    m = mask.to(x.dtype)
    n = m.sum().clamp(min=1.0)
    mean = (x * m).sum(-1, keepdim=True) / n
    centred = (x - mean) * m
    var = centred.pow(2).sum(-1, keepdim=True) / n
    y = centred * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias * m
    return y * m


def norm_problem(module: Any) -> str | None:
    """Why a LayerNorm cannot be masked exactly, or None."""
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) != 1:
        return "contains a LayerNorm over more than one dimension"
    if norm_dim(module) is None:
        return (f"contains a {type(module).__name__}, a LayerNorm whose own forward is neither "
                "nn.LayerNorm's nor a known channels-first LayerNorm's (timm's LayerNorm2d), "
                "which is not masked")
    return None


def embedding_problem(module: Any) -> str | None:
    """Why an embedding table's columns cannot be removed exactly, or None."""
    if not isinstance(module, nn.Embedding) or type(module).forward is not nn.Embedding.forward:
        return f"contains a {type(module).__name__}, an embedding that is not nn.Embedding"
    if module.max_norm is not None:
        return "contains an nn.Embedding with max_norm (its rows are renormalised over all columns)"
    return None


class PaddedLayerNorm(nn.LayerNorm):
    """A LayerNorm over the kept dimensions whose output has the original width (zeros at the
    removed dimensions): the shrunk form of a LayerNorm whose output the model returns.

    Parameter names are nn.LayerNorm's, so a saved state loads by name; ``index`` (the kept
    dimensions) is rebuilt by the recipe, not saved.

    >>> ln = nn.LayerNorm(4)
    >>> small = PaddedLayerNorm.keeping(ln, [0, 2], 4)
    >>> out = small(torch.randn(2, 2))  # the kept dimensions in, the full width out
    >>> out.shape, out[:, [1, 3]].abs().sum().item()
    (torch.Size([2, 4]), 0.0)
    """

    def __init__(self, kept: list[int], width: int, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__(len(kept), eps=eps, elementwise_affine=elementwise_affine, bias=bias)
        self.width = width
        self.register_buffer("index", torch.tensor(kept, dtype=torch.long), persistent=False)

    @classmethod
    def keeping(cls, norm: nn.LayerNorm, kept: list[int], width: int) -> PaddedLayerNorm:
        """``norm`` (already sliced to ``kept``, or full) as a padded LayerNorm."""
        full = norm.normalized_shape[0] == width and len(kept) != width
        new = cls(kept, width, norm.eps, norm.elementwise_affine, norm.bias is not None)
        params = [norm.weight, norm.bias]
        ref = next((p for p in params if p is not None), None)
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for mine, theirs in zip((new.weight, new.bias), params):
                if mine is not None and theirs is not None:
                    mine.copy_(theirs[kept] if full else theirs)
        new.train(norm.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        out = y.new_zeros(*y.shape[:-1], self.width)
        index: torch.Tensor = self.index  # type: ignore[assignment]  (a registered buffer)
        return out.index_copy(-1, index.to(y.device), y)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, padded to {self.width}"


def prune_stream(model: nn.Module, step: dict, dg: Any) -> None:
    """Apply a ``prune_stream`` recipe step in place (``dg``: the model's dependency graph).

    Torch-Pruning slices every member of the stream's group (embedding columns, LayerNorm
    entries, writers' rows, readers' columns) except the input columns of ``full_readers``;
    the LayerNorms in ``padded`` then become :class:`PaddedLayerNorm`.
    """
    from archlearn.structure.graph import set_module

    root = model.get_submodule(step["root"])
    pruner = dg.get_pruner_of_module(root)
    full_readers = {model.get_submodule(n) for n in step["full_readers"]}
    padded: dict[str, Any] = {n: model.get_submodule(n) for n in step["padded"]}
    widths = {n: int(m.normalized_shape[0]) for n, m in padded.items()}
    kept: dict[str, list[int]] = {}
    with torch.enable_grad():
        group = dg.get_pruning_group(root, pruner.prune_out_channels, list(step["units"]))
        for dep, idxs in group:
            module = dep.target.module
            if module in full_readers and dg.is_in_channel_pruning_fn(dep.handler):
                continue
            for name, norm in padded.items():
                if module is norm:
                    off = {int(i) for i in idxs}
                    kept[name] = [c for c in range(widths[name]) if c not in off]
            if isinstance(module, nn.Parameter):
                _prune_parameter(model, dg, dep, idxs)
            elif dep.target.type == OPTYPE.LN:
                _prune_norm(module, idxs)
            else:
                dep(idxs)
    for name, norm in padded.items():
        keep = kept.get(name, list(range(widths[name])))
        set_module(model, name, PaddedLayerNorm.keeping(norm, keep, widths[name]))


def _prune_norm(norm: Any, idxs: Any) -> None:
    """Remove entries ``idxs`` of a LayerNorm over one dimension, keeping the rest in order.

    Not Torch-Pruning's ``LayernormPruner``: it calls ``keep_idxs.sort()`` on a tensor, which
    sorts a copy, so its kept indices come in a set's order (for 40 channels with 23 removed,
    channel 39 lands between 11 and 13) and the weights are shuffled; unnoticed while they are
    the initial ones and zeros.
    """
    off = {int(i) for i in idxs}
    keep = torch.tensor([c for c in range(int(norm.normalized_shape[0])) if c not in off],
                        dtype=torch.long)
    with torch.no_grad():
        for attr in ("weight", "bias"):
            p = getattr(norm, attr, None)
            if p is not None:
                setattr(norm, attr, nn.Parameter(p.index_select(0, keep.to(p.device)),
                                                 requires_grad=p.requires_grad))
    norm.normalized_shape = (len(keep),)


def _prune_parameter(model: nn.Module, dg: Any, dep: Any, idxs: Any) -> None:
    """A free parameter's pruning returns a new parameter: put it where the old one was (as
    Torch-Pruning's ``Group.prune`` does) and keep the graph's records pointing at it."""
    old = dep.target.module
    name = dg._param_to_name.pop(old)
    new = dep(idxs)
    owner, _, attr = name.rpartition(".")
    setattr(model.get_submodule(owner) if owner else model, attr, new)
    dg._param_to_name[new] = name
    dg.module2node[new] = dg.module2node.pop(old)
    dg.module2node[new].module = new


__all__ = ["PaddedLayerNorm", "StreamLayout", "embedding_problem", "inside_norm",
           "channels_last_detour", "masked_layer_norm", "norm_dim", "norm_problem",
           "parameter_problem", "patch_embedding", "pooled_to_channels", "prune_stream"]
