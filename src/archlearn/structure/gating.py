"""Forward hooks that apply a method's gates, without adding anything to the model's state.

Structure parameters live in the learner, not in the model, so ``model.parameters()`` and
``model.state_dict()`` keep exactly their keys and the user's optimizer line stays unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn

from archlearn.structure.attention import attention_forward
from archlearn.structure.graph import layer
from archlearn.structure.groups import GateSite, UnitGroup
from archlearn.structure.handlers import handler_for

UnitScale = Callable[[int], torch.Tensor]
DepthScale = Callable[[int], "torch.Tensor | None"]


class GateHooks:
    """Scales each consumer's input channels by its group's gates; mixes ReLUs toward identity.

    ``unit_scale(i)`` returns group ``i``'s per-unit scale (shape ``[size]``), ``depth_scale(i)``
    a scalar in [0, 1] (0: the activation as it is, 1: identity) or ``None``.
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
                    self._handles.append(_HeadGatedForward(module, self._head_scale(i, site)))
                else:
                    self._handles.append(
                        module.register_forward_pre_hook(self._gate(i, site, module)))
            if group.depth is not None:
                act = layer(self.model, group.depth.act)
                # the hook needs the activation's input intact
                self._inplace[group.depth.act] = getattr(act, "inplace", False)
                act.inplace = False
                self._handles.append(act.register_forward_hook(self._depth(i)))

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

    def _gate(self, i: int, site: GateSite, module: nn.Module):
        handler = handler_for(module)
        assert handler is not None, f"no layer handler for gate site {site.module}"
        in_ch, dim = handler.in_channels(module), handler.channel_dim
        covered = sorted(site.channels) == list(range(in_ch))
        # the common cases are one cheap gather: every input channel belongs to this group
        # (identity, or a flatten that repeats each channel's gate over its positions)
        order = torch.empty(in_ch, dtype=torch.long)
        if covered:
            order[torch.tensor(site.channels)] = torch.tensor(site.units)
        identity = covered and torch.equal(order, torch.arange(in_ch))
        # index tensors live on the inputs' device, moved once when the model moves
        index = {"order": order, "channels": torch.tensor(site.channels, dtype=torch.long),
                 "units": torch.tensor(site.units, dtype=torch.long)}

        def hook(mod, args):
            x = args[0]
            if index["order"].device != x.device:
                index.update({k: v.to(x.device) for k, v in index.items()})
            scale = self.unit_scale(i).to(dtype=x.dtype, device=x.device)
            if identity:
                pass
            elif covered:
                scale = scale.index_select(0, index["order"])
            else:  # concatenation: only part of the inputs are this group's
                full = torch.ones(in_ch, dtype=x.dtype, device=x.device)
                scale = full.index_copy(0, index["channels"], scale[index["units"]])
            view = [1] * x.dim()
            view[dim] = in_ch
            return (x * scale.view(view),) + tuple(args[1:])

        return hook

    def _head_scale(self, i: int, site: GateSite):
        units = torch.tensor(site.units, dtype=torch.long)

        def scale():
            s = self.unit_scale(i)
            return s.index_select(0, units.to(s.device))

        return scale

    def _depth(self, i: int):
        def hook(mod, args, out):
            d = self.depth_scale(i)
            if d is None:
                return out
            return out + d.to(out.dtype) * (args[0] - out)

        return hook


class _Handle(Protocol):
    def remove(self) -> None: ...


class _HeadGatedForward:
    """An ``nn.MultiheadAttention`` computing with each head's values scaled by its gate.

    Its output projection is applied inside ``F.multi_head_attention_forward``, where no hook
    reaches, so the module's ``forward`` is replaced (an instance attribute, removed again by
    :meth:`remove`) by :func:`attention_forward` with ``head_scale``: the parameters, their names
    and the ``state_dict`` stay the module's own.
    """

    def __init__(self, mha: nn.MultiheadAttention, scale: Callable[[], torch.Tensor]) -> None:
        self.mha = mha

        def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                    average_attn_weights=True, is_causal=False):
            return attention_forward(mha, query, key, value, key_padding_mask, need_weights,
                                     attn_mask, average_attn_weights, is_causal,
                                     head_scale=scale())

        mha.forward = forward

    def remove(self) -> None:
        if "forward" in vars(self.mha):
            del self.mha.forward
