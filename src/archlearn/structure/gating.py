"""Forward hooks that apply a method's gates, without adding anything to the model's state.

Structure parameters live in the learner, not in the model, so ``model.parameters()`` and
``model.state_dict()`` keep exactly their keys and the user's optimizer line stays unchanged.

*Copies.* Each hook is a small picklable object holding the gate source (``unit_scale``, a bound
method of the learner's method) and reading the layer from the ``module`` argument that PyTorch
passes to every hook. So ``copy.deepcopy(model)`` gives a model computing with its own weights
and a deep copy of the gates (same values at the time of the copy, not trained by the learner),
and ``pickle.dumps(model)`` works whenever the gate source pickles (a method does; a lambda, as
passed by some internal callers, does not). A ``forward`` replaced on one module instance would
survive the copy and keep computing with the original's weights; none is used here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import nn

from archlearn.structure.attention import attention_forward
from archlearn.structure.graph import layer
from archlearn.structure.groups import GateSite, UnitGroup
from archlearn.structure.handlers import handler_for
from archlearn.structure.stream import masked_layer_norm, norm_dim

UnitScale = Callable[[int], torch.Tensor]
DepthScale = Callable[[int], "torch.Tensor | None"]


class GateHooks:
    """Scales each consumer's input channels by its group's gates; mixes ReLUs toward identity.

    ``unit_scale(i)`` returns group ``i``'s per-unit scale (shape ``[size]``), ``depth_scale(i)``
    a scalar in [0, 1] (0: the activation as it is, 1: identity) or ``None``.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> group = UnitGroup("0", 3, "channels", [GateSite("2", [0, 1, 2], [0, 1, 2])])
    >>> hooks = GateHooks(net, [group], lambda i: torch.zeros(3), lambda i: None)
    >>> net(torch.ones(1, 2)).item() == net[2].bias.item()
    True
    """

    def __init__(
        self,
        model: nn.Module,
        groups: list[UnitGroup],
        unit_scale: UnitScale,
        depth_scale: DepthScale,
    ) -> None:
        self.model, self.groups = model, groups
        self.unit_scale, self.depth_scale = unit_scale, depth_scale
        self._handles: list[_Handle] = []
        self._inplace: dict[str, bool] = {}
        self.install()

    def install(self) -> None:
        if self._handles:
            return
        for i, group in enumerate(self.groups):
            for site in group.sites:
                module = self.model.get_submodule(site.module)
                if isinstance(module, nn.MultiheadAttention):
                    # the output projection is applied inside F.multi_head_attention_forward,
                    # where no hook reaches: the hook recomputes the attention (see HeadGate)
                    self._handles.append(module.register_forward_hook(
                        HeadGate(self.unit_scale, i, site.units), with_kwargs=True))
                elif isinstance(module, nn.LayerNorm):  # a residual stream's hidden dimensions
                    self._handles.append(module.register_forward_hook(
                        MaskedNorm(self.unit_scale, i, site)))
                else:
                    self._handles.append(module.register_forward_pre_hook(
                        UnitGate(self.unit_scale, i, site, module)))
            if group.depth is not None:
                act = layer(self.model, group.depth.act)
                # the hook needs the activation's input intact
                self._inplace[group.depth.act] = getattr(act, "inplace", False)
                act.inplace = False
                self._handles.append(act.register_forward_hook(DepthGate(self.depth_scale, i)))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for name, inplace in self._inplace.items():
            layer(self.model, name).inplace = inplace
        self._inplace.clear()

    @contextmanager
    def suspended(self):
        """Take the hooks off for a moment (deep copies must not carry them)."""
        installed = bool(self._handles)
        self.remove()
        try:
            yield
        finally:
            if installed:
                self.install()


class UnitGate:
    """Forward pre-hook: the layer's input channels of one site times group ``i``'s gates.

    >>> site = GateSite("", [0, 1], [1, 0])
    >>> gate = UnitGate(lambda i: torch.tensor([2.0, 3.0]), 0, site, nn.Linear(2, 1))
    >>> gate(None, (torch.ones(1, 2),))[0].tolist()
    [[3.0, 2.0]]
    """

    def __init__(self, unit_scale: UnitScale, i: int, site: GateSite, module: nn.Module) -> None:
        handler = handler_for(module)
        assert handler is not None, f"no layer handler for gate site {site.module}"
        self.unit_scale, self.i = unit_scale, i
        self.in_ch, self.dim = handler.in_channels(module), handler.channel_dim
        # the common cases are one cheap gather: every input channel belongs to this group
        # (identity, or a flatten that repeats each channel's gate over its positions)
        self.covered = sorted(site.channels) == list(range(self.in_ch))
        order = torch.empty(self.in_ch, dtype=torch.long)
        if self.covered:
            order[torch.tensor(site.channels)] = torch.tensor(site.units)
        self.identity = self.covered and torch.equal(order, torch.arange(self.in_ch))
        # index tensors live on the inputs' device, moved once when the model moves
        self.order = order
        self.channels = torch.tensor(site.channels, dtype=torch.long)
        self.units = torch.tensor(site.units, dtype=torch.long)

    def __call__(self, module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        if self.order.device != x.device:
            self.order, self.channels, self.units = (
                t.to(x.device) for t in (self.order, self.channels, self.units))
        scale = self.unit_scale(self.i).to(dtype=x.dtype, device=x.device)
        if self.identity:
            pass
        elif self.covered:
            scale = scale.index_select(0, self.order)
        else:  # concatenation: only part of the inputs are this group's
            full = torch.ones(self.in_ch, dtype=x.dtype, device=x.device)
            scale = full.index_copy(0, self.channels, scale[self.units])
        view = [1] * x.dim()
        view[self.dim] = self.in_ch
        return (x * scale.view(view),) + tuple(args[1:])


class HeadGate:
    """Forward hook (``with_kwargs=True``) on an ``nn.MultiheadAttention``: its output is
    recomputed by :func:`attention_forward` with each head's values scaled by its gate.

    The module's own forward runs first and its result is discarded (no backward goes through
    it): that is the price of a gate that lives in a hook, i.e. of computing with the weights of
    whichever module is called (a copy's own) and of leaving parameters and ``state_dict``
    untouched. ``units`` are the group's units, one per head.

    >>> mha = nn.MultiheadAttention(4, 2, batch_first=True)
    >>> _ = mha.register_forward_hook(HeadGate(lambda i: torch.zeros(2), 0, [0, 1]),
    ...                               with_kwargs=True)
    >>> x = torch.randn(1, 3, 4)
    >>> torch.allclose(mha(x, x, x)[0], mha.out_proj.bias.expand(1, 3, 4))
    True
    """

    def __init__(self, unit_scale: UnitScale, i: int, units: list[int]) -> None:
        self.unit_scale, self.i = unit_scale, i
        self.units = torch.tensor(units, dtype=torch.long)

    def __call__(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 out: Any) -> Any:
        s = self.unit_scale(self.i)
        if self.units.device != s.device:
            self.units = self.units.to(s.device)
        scale = s.index_select(0, self.units).to(module.out_proj.weight.device)
        return attention_forward(module, *args, **kwargs, head_scale=scale)


class MaskedNorm:
    """Forward hook on a LayerNorm of a residual stream (``stream.py``): its output recomputed
    with the statistics of the channels whose gate is not zero, and those gated off zero (over
    dimension 1 for a channels-first LayerNorm).

    The gate's values are not applied here (the stream's readers multiply by them); only which
    channels are on, exactly the LayerNorm that the shrunk model keeps.

    >>> site = GateSite("", [0, 1, 2], [0, 1, 2])
    >>> hook = MaskedNorm(lambda i: torch.tensor([0.5, 0.0, 2.0]), 0, site)
    >>> ln = nn.LayerNorm(3, eps=0.0, elementwise_affine=False)
    >>> x = torch.tensor([[1.0, 9.0, 3.0]])
    >>> hook(ln, (x,), ln(x)).tolist()
    [[-1.0, 0.0, 1.0]]
    """

    def __init__(self, unit_scale: UnitScale, i: int, site: GateSite) -> None:
        self.unit_scale, self.i = unit_scale, i
        self.channels = torch.tensor(site.channels, dtype=torch.long)
        self.units = torch.tensor(site.units, dtype=torch.long)

    def __call__(self, module: Any, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        on = self.unit_scale(self.i).detach() != 0
        if bool(on.all()):
            return out
        if self.channels.device != on.device:
            self.channels, self.units = self.channels.to(on.device), self.units.to(on.device)
        mask = torch.ones(module.normalized_shape[0], dtype=torch.bool, device=on.device)
        mask = mask.index_copy(0, self.channels, on.index_select(0, self.units))
        x = args[0]
        dim = norm_dim(module) or -1  # 1: a channels-first LayerNorm (NCHW input)
        return masked_layer_norm(x, mask.to(x.device), module.weight, module.bias,
                                 module.eps, dim).to(out.dtype)


class DepthGate:
    """Forward hook on an activation: ``act(x) + d * (x - act(x))`` (``d`` = 1: the identity).

    >>> gate = DepthGate(lambda i: torch.tensor(1.0), 0)
    >>> x = torch.tensor([-1.0, 2.0])
    >>> gate(nn.ReLU(), (x,), torch.relu(x)).tolist()
    [-1.0, 2.0]
    """

    def __init__(self, depth_scale: DepthScale, i: int) -> None:
        self.depth_scale, self.i = depth_scale, i

    def __call__(self, module: Any, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        d = self.depth_scale(self.i)
        if d is None:
            return out
        return out + d.to(out) * (args[0] - out)


class _Handle(Protocol):
    def remove(self) -> None: ...
