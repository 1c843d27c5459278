"""How much each unit of each gate group matters, from a few batches of the user's data.

Two scores, both per unit (channel, attention head, FFN neuron, grouped-conv block):

* ``"energy"`` (no labels): the unit's contribution to the output of the layers that read it,
  ``sum over its input channels c of E[x_c^2] * ||W[:, c]||^2``: the activation energy of the
  channel where a reading layer takes it in, times the squared norm of the weights that read it
  (K-prune's representational score, Park et al., ICLR 2024). It is exact for the reading layer's
  output energy when channels are uncorrelated, and it needs one forward pass per batch.
* ``"taylor"`` (with a loss): ``sum over batches of (dL/dg)^2`` for a gate ``g = 1`` on the unit,
  the first-order estimate of the loss change when the unit is removed (Molchanov et al., 2019;
  the Fisher score of Kwon et al., 2022, summed per batch). A distillation loss has zero gradient
  at the unpruned model, so it cannot score: use ``"energy"`` there.

The gate sites of ``structure/groups.py`` say where each group's units enter which layer, so one
pre-hook per site measures everything, whatever couples the units (residual adds, concatenation,
flatten into a Linear, attention heads).

>>> import torch
>>> from torch import nn
>>> from archlearn.structure.groups import find_groups
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
>>> groups, _ = find_groups(net, (torch.zeros(1, 3),))
>>> from archlearn.compression.calibration import calls
>>> [s.shape for s in unit_scores(net, groups, calls(torch.randn(32, 3)))]
[torch.Size([4])]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from archlearn.compression.calibration import Call
from archlearn.errors import ArchlearnError
from archlearn.structure.gating import GateHooks
from archlearn.structure.graph import preserved_mode
from archlearn.structure.groups import UnitGroup
from archlearn.structure.handlers import handler_for

Loss = Callable[[Any, Any], torch.Tensor]
SCORES = ("compensated", "energy", "taylor")
MAX_GRAM = 8192  # wider inputs fall back to the energy score (the Gram matrix is d x d)
GRAM_RIDGE = 1e-3  # times the mean diagonal: keeps H invertible where inputs are collinear


def unit_scores(
    model: nn.Module,
    groups: Sequence[UnitGroup],
    batches: Sequence[Call],
    *,
    score: str = "energy",
    loss: Loss | None = None,
    targets: Sequence[Any] | None = None,
    streams: dict[str, str] | None = None,
    progress: bool = False,
) -> list[torch.Tensor]:
    """One float64 tensor of scores per group (its ``size`` units), from ``batches``.

    ``score="taylor"`` needs ``loss(output, target)``; ``targets[i]`` is passed for batch ``i``
    (the batch itself when no targets are given). ``streams`` maps a gate-site layer to the
    LayerNorm that normalises the residual stream it writes into (``refit.residual_streams``):
    its units' energy scores are then divided by that stream's energy. The model is run in eval
    mode and left as it was.
    """
    if score not in SCORES:
        raise ArchlearnError(f"unknown score {score!r}; choose one of {list(SCORES)}")
    if score == "taylor" and loss is None:
        raise ArchlearnError("the taylor score needs a loss: compress(..., loss=fn) with "
                             "fn(output, batch) -> a scalar tensor")
    device = _device(model)
    ones = [torch.ones(g.size, device=device, requires_grad=score == "taylor") for g in groups]
    hooks = GateHooks(model, list(groups), lambda i: ones[i], lambda i: None)
    meters = [] if score == "taylor" else _energy_meters(model, groups)
    for meter in meters:
        meter.compensated = score == "compensated"
    for meter in meters:
        norm = (streams or {}).get(meter.site)
        if norm is not None:
            meter.stream = _StreamMeter(model.get_submodule(norm), meter)
    grads = [torch.zeros(g.size, dtype=torch.float64) for g in groups]
    try:
        with preserved_mode(model):
            model.eval()
            for i, call in enumerate(tqdm(batches, desc="scoring", disable=not progress,
                                          leave=False)):
                call = call.to(device)
                if score != "taylor":
                    for meter in meters:
                        meter.mask = call.token_mask()
                    with torch.no_grad():
                        call.run(model)
                    continue
                assert loss is not None
                with torch.enable_grad():
                    value = loss(call.run(model), targets[i] if targets is not None else call)
                    if not (isinstance(value, torch.Tensor) and value.dim() == 0):
                        raise ArchlearnError("loss(output, batch) must return a scalar tensor")
                    found = torch.autograd.grad(value, ones, allow_unused=True)
                for acc, grad in zip(grads, found):
                    if grad is not None:
                        acc += grad.detach().cpu().to(torch.float64) ** 2
    finally:
        hooks.remove()
        for meter in meters:
            meter.remove()
    if score == "taylor":
        return grads
    out = [torch.zeros(g.size, dtype=torch.float64) for g in groups]
    # one scale for every residual stream of the model (their mean energy where a LayerNorm
    # takes them in): measured on MiniLM, dividing each block by its own stream's energy moved
    # the budget from heads to FFN units and lost 0.02 cosine against one common scale
    energies = [m.stream.energy for m in meters if m.stream is not None]
    stream = max(sum(energies) / len(energies), 1e-300) if energies else 1.0
    for meter in meters:
        units, scores = meter.unit_scores()
        if meter.stream is not None:  # a fraction of the residual stream's energy
            scores = scores / stream
        out[meter.group].index_add_(0, units, scores)
    return out


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


class _EnergyMeter:
    """Per input channel of one gate site: the summed squared activation, and the squared norm
    of the weights reading it."""

    def __init__(self, group: int, site: str, module: nn.Module, layer: nn.Module,
                 channels: list[int], units: list[int], per_channel: int,
                 channel_dim: int) -> None:
        self.group, self.site, self.layer = group, site, layer
        self.channels = torch.tensor(channels, dtype=torch.long)
        self.units = torch.tensor(units, dtype=torch.long)
        self.per_channel, self.channel_dim = per_channel, channel_dim
        self.energy: torch.Tensor | None = None
        self.gram: torch.Tensor | None = None  # X^T X of the layer's inputs (compensated score)
        self.compensated = False
        self.mask: torch.Tensor | None = None
        self.stream: _StreamMeter | None = None
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0].detach()
        x = x.movedim(self.channel_dim, -1)
        mask = self.mask
        if mask is not None and tuple(x.shape[:2]) == tuple(mask.shape) and x.dim() == 3:
            x = x * mask.to(x)[..., None]  # padding positions carry no signal
        rows = x.double().reshape(-1, x.shape[-1])
        energy = rows.pow(2).sum(0).cpu()
        self.energy = energy if self.energy is None else self.energy + energy
        if self.compensated and rows.shape[1] <= MAX_GRAM:
            gram = (rows.T @ rows).cpu()
            self.gram = gram if self.gram is None else self.gram + gram

    def _index(self) -> torch.Tensor:
        """The layer's input channels of each listed site channel, ``[channels, per_channel]``
        (a head site lists heads; its output projection reads ``head_dim`` channels each)."""
        return (self.channels[:, None] * self.per_channel + torch.arange(self.per_channel))

    def unit_scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(units, scores)``: each unit's score at this site (the units may repeat)."""
        if self.energy is None:
            raise ArchlearnError(f"no calibration batch reached the layer "
                                 f"{type(self.layer).__name__} that reads a gated group")
        index = self._index()
        if self.gram is not None:
            return self._compensated(index)
        w = _reading_norms(self.layer).cpu()
        flat = index.flatten()
        per = self.energy.index_select(0, flat) * w.index_select(0, flat)
        return self.units, per.view(len(self.channels), self.per_channel).sum(1)

    def _compensated(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What removing each unit costs the layer's output once the layer is re-solved on
        the rest (Optimal Brain Surgeon's ``||W_S||^2 / [H^-1]_SS``, a block of channels per
        unit; Frantar & Alistarh, 2022): energy counts a unit that other units can stand in
        for as fully lost; the re-fit does not lose it."""
        assert self.gram is not None
        gram = self.gram
        ridge = GRAM_RIDGE * float(gram.diagonal().mean().clamp_min(1e-12))
        inverse = torch.linalg.inv(gram + ridge * torch.eye(len(gram), dtype=gram.dtype))
        w = _reading_matrix(self.layer).cpu()  # [rows, in]
        units = torch.unique(self.units)
        out = torch.empty(len(units), dtype=torch.float64)
        for k, u in enumerate(units.tolist()):
            cols = index[self.units == u].flatten()
            block = inverse.index_select(0, cols).index_select(1, cols)
            ws = w.index_select(1, cols)
            out[k] = float((ws @ torch.linalg.inv(block) * ws).sum())
        return units, out

    def remove(self) -> None:
        self.handle.remove()
        if self.stream is not None:
            self.stream.remove()


class _StreamMeter:
    """The energy of a residual stream where a LayerNorm takes it in."""

    def __init__(self, norm: nn.Module, site: _EnergyMeter) -> None:
        self.energy, self.site = 0.0, site
        self.handle = norm.register_forward_pre_hook(self)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0].detach()
        mask = self.site.mask
        if mask is not None and tuple(x.shape[:2]) == tuple(mask.shape) and x.dim() == 3:
            x = x * mask.to(x)[..., None]
        self.energy += float(x.double().pow(2).sum())

    def remove(self) -> None:
        self.handle.remove()


def _reading_matrix(layer: Any) -> torch.Tensor:
    """The layer's weight as ``[rows, input channels]`` (a kernel's taps are rows)."""
    handler = handler_for(layer)
    assert handler is not None, "gate sites are layers with a handler"
    w = layer.weight.detach().double().movedim(handler.weight_in_dim, -1)
    return w.reshape(-1, w.shape[-1])


def _reading_norms(layer: Any) -> torch.Tensor:
    """Squared norm of the weights reading each input channel of ``layer``."""
    handler = handler_for(layer)
    assert handler is not None, "gate sites are layers with a handler"
    w = layer.weight.detach().double()
    return w.pow(2).movedim(handler.weight_in_dim, 0).reshape(w.shape[handler.weight_in_dim],
                                                             -1).sum(1)


def _energy_meters(model: nn.Module, groups: Sequence[UnitGroup]) -> list[_EnergyMeter]:
    meters = []
    for i, group in enumerate(groups):
        for site in group.sites:
            module = model.get_submodule(site.module)
            if isinstance(module, nn.MultiheadAttention):
                # the gated forward calls out_proj as a module: measure the heads' context there
                out_proj = module.out_proj
                meters.append(_EnergyMeter(i, site.module, out_proj, out_proj, site.channels,
                                           site.units, module.head_dim, -1))
                continue
            handler = handler_for(module)
            assert handler is not None
            meters.append(_EnergyMeter(i, site.module, module, module, site.channels,
                                       site.units, 1, handler.channel_dim))
    return meters


__all__ = ["SCORES", "unit_scores"]
