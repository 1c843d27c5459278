"""Which operations between layers may carry a group's channels: an allow-list.

Torch-Pruning treats every operation it does not know as element-wise. That is how attention
(``F.scaled_dot_product_attention``, a batched matrix product) once joined query, key, value and
the output projection into one group that was then shrunk wrongly. Here the rule is reversed: an
operation is accepted only if it is known to act on each channel on its own (activations,
arithmetic between tensors of the same group, pooling over positions, layout changes Torch-Pruning
follows), and everything else makes the group skipped with its name in the reason.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_pruning.ops import OPTYPE

# autograd node names (without the trailing version digit) of per-channel operations
ACTIVATIONS = frozenset({
    "Relu", "Gelu", "Silu", "Sigmoid", "Tanh", "Hardswish", "Hardsigmoid", "Hardtanh",
    "LeakyRelu", "Elu", "Softplus", "Mish", "Threshold", "Celu", "Selu", "LogSigmoid",
    "Rrelu", "Prelu", "PreluKernel",
})
PER_CHANNEL = ACTIVATIONS | frozenset({
    # arithmetic (operands that are other tensors are checked separately)
    "Add", "Sub", "Mul", "Div", "Neg", "Rsub", "Pow", "Abs", "Exp", "Sqrt", "Rsqrt", "Clamp",
    "ClampMin", "ClampMax", "Square",
    # pooling and resampling over positions
    "MaxPool1DWithIndices", "MaxPool2DWithIndices", "MaxPool3DWithIndices", "AvgPool1D",
    "AvgPool2D", "AvgPool3D", "AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveAvgPool3D",
    "AdaptiveMaxPool1D", "AdaptiveMaxPool2D", "AdaptiveMaxPool3D", "UpsampleNearest1D",
    "UpsampleNearest2D", "UpsampleNearest3D", "UpsampleBilinear2D", "UpsampleBicubic2D",
    "UpsampleTrilinear3D", "UpsampleLinear1D", "ReflectionPad1D", "ReflectionPad2D",
    "ReplicationPad1D", "ReplicationPad2D", "ConstantPadNd",
    # copies, dropout and layout changes that keep each channel whole
    "Clone", "ToCopy", "Alias", "NativeDropout", "Squeeze", "Unsqueeze", "SqueezeDim",
    "UnsqueezeDim", "Squeeze0", "Permute", "Transpose", "T",
})
# batch norm computed by a function (``F.batch_norm``): per channel exactly when its weight, bias
# and running statistics are a BatchNorm module's that the group slices (see _batch_norm_problem)
BATCH_NORM = frozenset({"NativeBatchNorm", "CudnnBatchNorm", "MiopenBatchNorm",
                        "NativeBatchNormLegit", "NativeBatchNormLegitNoTraining"})
# reductions: per channel only when they reduce positions, not channels (checked below)
REDUCTIONS = frozenset({"Mean", "Sum", "Amax", "Max"})
# picking one position (BERT's pooler reads token 0): per channel unless it picks a channel
SELECTS = frozenset({"Select"})
# a view by explicit strides: per channel only as the restride of a pooled (N, C, 1, 1) tensor
# (adaptive average pooling of a channels-last input, as in ConvNeXt's head; checked below)
STRIDED = frozenset({"AsStrided"})
LAYOUT = frozenset({"Permute", "Transpose"})
RESHAPES = frozenset({"View", "Reshape", "ReshapeAlias", "UnsafeView"})

# node types Torch-Pruning follows exactly with the channels (index mapping, pass-through)
FOLLOWED = {OPTYPE.CONCAT, OPTYPE.SPLIT, OPTYPE.RESHAPE, OPTYPE.DEPTHWISE_CONV, OPTYPE.IN,
            OPTYPE.PRELU}
REFUSED = {
    OPTYPE.LN: "a LayerNorm, which normalises over the channels (removing one changes the rest)",
    OPTYPE.GN: "a GroupNorm, which normalises over groups of channels",
    OPTYPE.EMBED: "an Embedding, whose columns are a stream no gate can remove exactly",
    OPTYPE.MHA: "an nn.MultiheadAttention's embedding dimension (its heads are gated instead)",
    OPTYPE.LSTM: "an LSTM, whose hidden units are not handled",
    OPTYPE.UNBIND: "an unbind of the channel dimension",
    OPTYPE.EXPAND: "an expand (a broadcast batched product, as in eager attention)",
    OPTYPE.SLICE: "a slice of the channel dimension",
    OPTYPE.PARAMETER: "a free parameter used outside any layer",
}


def op_name(grad_fn) -> str:
    """``"AddBackward0"`` -> ``"Add"``."""
    name = grad_fn.name() if grad_fn is not None and hasattr(grad_fn, "name") else "Unknown"
    return name.split("Backward")[0]


# matrix products that a Linear (or transformers' Conv1D) computes inside its own forward on a
# 3-d input: the layer's node is the reshape after them
LAYER_INTERNAL = frozenset({"Addmm", "Mm"})


def inside_layer(node) -> bool:
    """The layer's own matrix product: it feeds only that layer's output node, directly."""
    if node.type != OPTYPE.ELEMENTWISE or op_name(node.grad_fn) not in LAYER_INTERNAL or len(
            node.outputs) != 1:
        return False
    layer = node.outputs[0]
    if layer.type not in (OPTYPE.LINEAR, OPTYPE.CUSTOMIZED):
        return False
    return any(fn is node.grad_fn for fn, _ in getattr(layer.grad_fn, "next_functions", ()))


def op_problem(node, channel_dim: int | None = None) -> str | None:
    """Why a Torch-Pruning node other than a layer cannot carry a group's channels, or None.

    ``channel_dim`` is where the group's channels sit (1 after convolutions, -1 after Linear
    layers) when the group has no layout change, else None.
    """
    if node.type in FOLLOWED:
        return None
    if node.type in REFUSED:
        return f"contains {REFUSED[node.type]}"
    if node.type != OPTYPE.ELEMENTWISE:
        return f"contains a {type(node.module).__name__} ({node.type.name}), which cannot be gated"
    name = op_name(node.grad_fn)
    if name in LAYER_INTERNAL and inside_layer(node):
        return None
    if name in REDUCTIONS:
        return _reduction_problem(node.grad_fn, name, channel_dim)
    if name in SELECTS:
        return _select_problem(node.grad_fn, channel_dim)
    if name in STRIDED:
        return _as_strided_problem(node.grad_fn, channel_dim)
    if name in BATCH_NORM:
        return _batch_norm_problem(node)
    if name not in PER_CHANNEL:
        return (f"its channels pass through {name} ({node.grad_fn.name() if node.grad_fn else '?'})"
                ", which is not known to act on each channel on its own")
    if name in ("Mul", "Div") and _reads_untraced_tensor(node.grad_fn):
        return _untraced(node)
    return None


def norm_problem(node) -> str | None:
    """Why a BatchNorm module's node cannot carry a group's channels, or None.

    Torch-Pruning names a module's node after the module's *output*: for a norm-act layer
    (timm's ``BatchNormAct2d``, a BatchNorm2d subclass that calls ``F.batch_norm`` and then its
    activation) that is the activation's op, and the batch norm itself is a separate node
    (``_batch_norm_problem``). Only a batch norm or an activation may end the module.
    """
    if not node.module.affine:
        return "contains a BatchNorm without affine parameters"
    name = op_name(node.grad_fn)
    if name in BATCH_NORM or name in ACTIVATIONS:
        return None
    return (f"its channels pass through {type(node.module).__name__}, a BatchNorm whose output "
            f"is computed by {name}, which is not known to act on each channel on its own")


def _batch_norm_problem(node) -> str | None:
    """``F.batch_norm`` inside a BatchNorm subclass (timm's norm-act layers) is that layer's own
    per-channel op: accepted when its weight, bias and running statistics are the tensors of the
    BatchNorm module whose node follows it through activations only, so that Torch-Pruning slices
    them with the group (affine-free or foreign statistics are refused)."""
    grad_fn = node.grad_fn
    why = (f"its channels pass through a functional batch norm ({grad_fn.name()}) whose weights "
           "belong to no BatchNorm layer of the group")
    nexts = getattr(grad_fn, "next_functions", ())
    if len(nexts) < 3:
        return why
    bias = getattr(nexts[2][0], "variable", None)
    after = node
    for _ in range(8):  # batch norm -> [activations] -> the node named after the module
        if len(after.outputs) != 1:
            return why
        after = after.outputs[0]
        if after.type == OPTYPE.BN:
            break
        if after.type != OPTYPE.ELEMENTWISE or op_name(after.grad_fn) not in ACTIVATIONS:
            return why
    else:
        return why
    bn = after.module
    if not (isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.affine):
        return why
    # a frozen bias has no autograd node: then only the trial shrink can tell whose it is
    if not (bias is bn.bias or (bias is None and not bn.bias.requires_grad)):
        return why
    for saved, own in (("_saved_weight", bn.weight), ("_saved_running_mean", bn.running_mean),
                       ("_saved_running_var", bn.running_var)):
        used = getattr(grad_fn, saved, None)
        if used is None or own is None:
            if used is not own:  # one of them is None (no running statistics)
                return why
        elif used.data_ptr() != own.data_ptr():
            return why
    return None


def channel_shuffle(outputs: list[torch.Tensor]) -> str | None:
    """The op of a channel shuffle in the autograd graph behind ``outputs`` (ShuffleNet's
    ``view -> transpose(1, 2) -> view``), or None.

    Torch-Pruning's index mapping cannot follow channels split into groups and interleaved (it
    fails while building the graph); this names what it met.
    """
    seen: set[int] = set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        nexts = [f for f, _ in getattr(fn, "next_functions", ()) if f is not None]
        if op_name(fn) in LAYOUT and any(op_name(f) in RESHAPES for f in nexts) and (
                _swaps_groups(fn)):
            return (f"{fn.name()} between reshapes of the channel dimension (a channel "
                    "shuffle, as in ShuffleNet), which interleaves channels across groups")
        stack.extend(nexts)
    return None


def _swaps_groups(fn) -> bool:
    """A transpose/permute exchanging dimensions 1 and 2 (groups and channels per group)."""
    if op_name(fn) == "Permute":
        dims = list(getattr(fn, "_saved_dims", ()))
        return len(dims) > 2 and dims[1:3] == [2, 1]
    dims = {getattr(fn, "_saved_dim0", None), getattr(fn, "_saved_dim1", None)}
    # negative dims are stored as unsigned 64-bit integers; a shuffle's view is rank 5
    return {d - 2**64 if isinstance(d, int) and d >= 2**63 else d for d in dims} in (
        {1, 2}, {-4, -3}, {1, -3}, {-4, 2})


def op_caveat(node) -> str | None:
    """A condition that only a trial shrink can settle (``verify.py``), or None.

    An add or subtraction with an operand that has no autograd history: a Python scalar
    (``1.0 + tanh(x)``, exact) and the model's input or a buffer (``h + x``, not removable) look
    the same to autograd, which saves nothing of that operand.
    """
    if node.type == OPTYPE.ELEMENTWISE and op_name(node.grad_fn) in ("Add", "Sub", "Rsub") and (
        _reads_untraced_tensor(node.grad_fn)
    ):
        return _untraced(node)
    return None


def _untraced(node) -> str:
    return (f"its channels meet, in a {node.grad_fn.name()}, a tensor that no layer computes "
            "(the model's input, a buffer or a constant), which cannot be pruned with them")


def _reads_untraced_tensor(grad_fn) -> bool:
    """An operand without autograd history (model input, buffer, constant tensor).

    The graph follows autograd, so such an operand has no node: pruning the group would shrink
    one operand and leave the other (``h + x`` with ``x`` the input then broadcasts or crashes).
    Python scalars are not operands (``x * 0.5`` records one input), and a product with a
    one-element constant tensor (saved by autograd, so its size is known) is a scalar too.
    """
    nexts: tuple = getattr(grad_fn, "next_functions", ())
    if not any(fn is None for fn, _ in nexts):
        return False
    saved = [getattr(grad_fn, a, None) for a in ("_saved_self", "_saved_other")]
    untraced = [t for (fn, _), t in zip(nexts, saved) if fn is None]
    return not (untraced and all(isinstance(t, torch.Tensor) and t.numel() == 1
                                 for t in untraced))


def _select_problem(grad_fn, channel_dim: int | None) -> str | None:
    """``x[:, 0]`` picks a position; ``x[..., 0]`` would pick a channel."""
    dim = getattr(grad_fn, "_saved_dim", None)
    sizes = getattr(grad_fn, "_saved_self_sym_sizes", None)
    if dim is None or sizes is None or channel_dim is None:
        return "its channels pass through a Select of an unknown dimension"
    rank = len(sizes)
    dim = (dim - 2**64 if dim >= 2**63 else dim) % rank
    if dim in (channel_dim % rank, 0):
        return f"its channels pass through a Select of dimension {dim} of a rank-{rank} tensor"
    return None


def _as_strided_problem(grad_fn, channel_dim: int | None) -> str | None:
    """An ``as_strided`` that only restrides a pooled ``(N, C, 1, ...)`` tensor: every other
    dimension of size 1, channels at stride 1 and batch entries at stride C, so it reads the
    dense result of a reduction in its own order (the same values at every index). Its input
    must be that reduction: as_strided reads storage, so a view's own strides would matter."""
    nexts = [f for f, _ in getattr(grad_fn, "next_functions", ()) if f is not None]
    if len(nexts) != 1 or op_name(nexts[0]) not in REDUCTIONS:
        return "its channels pass through an as_strided view of something other than a pooling"
    size = getattr(grad_fn, "_saved_size", None)
    stride = getattr(grad_fn, "_saved_stride", None)
    offset = getattr(grad_fn, "_saved_storage_offset", None)
    why = "its channels pass through an as_strided view that may reorder them"
    if size is None or stride is None or channel_dim is None or offset not in (None, 0):
        return why
    rank = len(size)
    c = channel_dim % rank
    if c == 0 or any(n != 1 for i, n in enumerate(size) if i not in (0, c)):
        return why
    if (stride[c] != 1 and size[c] != 1) or (stride[0] != size[c] and size[0] != 1):
        return why
    return None


def _reduction_problem(grad_fn, name: str, channel_dim: int | None) -> str | None:
    """A mean/sum over positions is per channel; over the channel dimension it is not."""
    dims = getattr(grad_fn, "_saved_dim", None)
    sizes = getattr(grad_fn, "_saved_self_sym_sizes", None)
    if dims is None or sizes is None or channel_dim is None:
        return f"its channels pass through a {name} reduction over unknown dimensions"
    rank = len(sizes)
    dims = dims if isinstance(dims, (tuple, list)) else [dims]
    # autograd stores negative dims as unsigned 64-bit integers
    dims = [(d - 2**64 if d >= 2**63 else d) % rank for d in dims]
    if channel_dim % rank in dims or 0 in dims:
        return f"its channels pass through a {name} over dimensions {dims} of a rank-{rank} tensor"
    return None
