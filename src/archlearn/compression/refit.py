"""Re-fitting: each layer that reads removed units is solved again by ridge least squares.

After units are removed, a layer that read them (the next Linear or convolution, an attention
output projection, an FFN output layer) gets less input than its weights were trained for.
Bottom-up, in the order the model calls them, each such layer is re-solved in closed form so
that, on the calibration data, its output *given the compressed model's own inputs* (earlier
layers already re-fitted) matches the original model's output of the same layer:

    W, b = argmin ||X_small W^T + b - Y_orig||^2 + ridge * mean(diag(X^T X)) * ||W - W_0||^2

(``W_0`` the layer's trained weights, sliced: with a few hundred sentences the data does not pin
down every direction of a wide layer, and where it does not, the trained weights are the better
guess than zero)

(Kwon et al., 2022, "mask tuning"; K-prune's layer-wise re-solve, Park et al., ICLR 2024).
Normal equations are summed batch by batch in float64 and solved once per layer: seconds per
layer, no gradient, no labels. A convolution is solved over its input patches (``F.unfold``).

Where the layer's output is added to a residual and normalised (a post-LayerNorm transformer
block: ``LayerNorm(dense(x) + residual)``), the target is the original's pre-norm sum minus the
compressed model's own residual, so each layer also absorbs the error that reached the
residual stream from below. This is used only where a probe confirms it: a perturbation of the
layer's output must reach the norm's input unchanged.

The model is re-fitted in place; the calibration data is the user's (never a test split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from archlearn.compression.calibration import Call
from archlearn.structure.graph import preserved_mode
from archlearn.structure.handlers import HF_CONV1D, handler_for

# times the mean diagonal of X^T X, pulling toward the layer's own weights. Selected on MiniLM's
# validation sentences (50% of the MACs, 512 calibration sentences, cosine to the original):
# toward zero 1e-3: 0.891, 1e-2: 0.893, 0.1: 0.877; toward the own weights 1e-2: 0.896,
# 3e-2: 0.900, 0.1: 0.904, 0.3: 0.904
RIDGE = 0.1


@dataclass
class Reader:
    """A layer to re-fit: its name in the compressed model, where the original's output of the
    same layer is read (``target``: the layer itself, or an ``nn.MultiheadAttention`` whose
    ``out_proj`` it is), and which of the original's output channels it still has."""

    name: str
    target: str
    keep_out: torch.Tensor | None = None  # original output channels kept (None: all)
    transpose: bool = False  # the target is sequence-first (an MHA without batch_first)


class _Stop(Exception):
    """Raised by a capture hook to end a forward pass once everything needed was seen."""


class _Capture:
    """Forward hooks that record tensors of one pass and stop it after the last one."""

    def __init__(self, model: nn.Module, wants: dict[str, str]) -> None:
        self.got: dict[str, torch.Tensor] = {}
        self.wants = wants  # module name -> "in" | "out"
        self.perturb: tuple[str, torch.Tensor] | None = None
        self.handles = []
        for name, side in wants.items():
            module = model.get_submodule(name)
            if side == "in":
                self.handles.append(module.register_forward_pre_hook(self._pre(name)))
            else:
                self.handles.append(module.register_forward_hook(self._post(name)))

    def _done(self) -> None:
        if len(self.got) == len(self.wants):
            raise _Stop

    def _pre(self, name: str):
        def hook(module, args):
            self.got.setdefault(name, args[0].detach())
            self._done()
        return hook

    def _post(self, name: str):
        def hook(module, args, out):
            out = out[0] if isinstance(out, (tuple, list)) else out
            if self.perturb is not None and self.perturb[0] == name:
                out = out + self.perturb[1]
                self.got.setdefault(name, out.detach())
                self._done()
                return out
            self.got.setdefault(name, out.detach())
            self._done()
        return hook

    def run(self, model: nn.Module, call: Call) -> dict[str, torch.Tensor]:
        self.got = {}
        try:
            call.run(model)
        except _Stop:
            pass
        return self.got

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def call_order(model: nn.Module, call: Call) -> dict[str, int]:
    """Each module's position in the order of first calls, and how often it is called."""
    order: dict[str, int] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, args):
            order.setdefault(name, len(order))
            counts[name] = counts.get(name, 0) + 1
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            call.run(model)
    finally:
        for h in handles:
            h.remove()
    return {n: i if counts[n] == 1 else -1 for n, i in order.items()}


def refit_readers(
    original: nn.Module,
    small: nn.Module,
    readers: Sequence[Reader],
    batches: Sequence[Call],
    *,
    ridge: float = RIDGE,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Re-solve each reader of ``small`` (in place), bottom-up; one report row per reader."""
    device = next(small.parameters()).device
    rows = []
    with preserved_mode(original), preserved_mode(small), torch.no_grad():
        original.eval()
        small.eval()
        order = call_order(small, batches[0].to(device))
        todo = sorted((r for r in readers if order.get(r.name, -1) >= 0),
                      key=lambda r: order[r.name])
        skipped = [r for r in readers if order.get(r.name, -1) < 0]
        for reader in tqdm(todo, desc="re-fitting", disable=not progress, leave=False):
            rows.append(_refit_one(original, small, reader, batches, order, ridge, device))
        rows += [{"layer": r.name, "skipped": "not called exactly once per forward pass"}
                 for r in skipped]
    return rows


def _refit_one(original, small, reader: Reader, batches, order, ridge, device) -> dict[str, Any]:
    layer: Any = small.get_submodule(reader.name)
    shape = _linear_form(layer)
    if shape is None:
        return {"layer": reader.name, "skipped": f"{type(layer).__name__} is not re-fitted"}
    norm = _residual_norm(small, reader, order, batches[0].to(device))
    small_wants = {reader.name: "in"}
    orig_wants = {reader.target: "out"}
    if norm is not None:
        small_wants[norm] = "in"
        orig_wants[norm] = "in"
    acc = _Normal(layer)
    cap_small, cap_orig = _Capture(small, small_wants), _Capture(original, orig_wants)
    out_hook = _OutputOf(layer) if norm is not None else None
    try:
        for call in batches:
            call = call.to(device)
            got_o = cap_orig.run(original, call)
            got_s = cap_small.run(small, call)
            y = got_o[reader.target]
            if reader.transpose:
                y = y.transpose(0, 1)
            if norm is not None:
                assert out_hook is not None and out_hook.out is not None
                # the original's pre-norm sum minus the compressed model's own residual
                y = got_o[norm] - (got_s[norm] - out_hook.out)
            elif reader.keep_out is not None:
                y = y.index_select(_out_dim(layer), reader.keep_out.to(y.device))
            acc.add(got_s[reader.name], y, call.token_mask())
    finally:
        cap_small.remove()
        cap_orig.remove()
        if out_hook is not None:
            out_hook.remove()
    before, after = acc.solve_into(layer, ridge)
    return {"layer": reader.name, "rows": acc.rows, "residual_target": norm is not None,
            "error_before": before, "error_after": after}


class _OutputOf:
    """The latest output of a layer (its current contribution before the residual add)."""

    def __init__(self, layer: nn.Module) -> None:
        self.out: torch.Tensor | None = None
        self.handle = layer.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        self.out = out.detach()

    def remove(self) -> None:
        self.handle.remove()


def _linear_form(layer: Any) -> str | None:
    """``"linear"`` (Linear, transformers' Conv1D) or ``"conv2d"`` (groups 1, zero padding),
    the forms solved here; ``None`` for anything else."""
    h = handler_for(layer)
    if h is None:
        return None
    if isinstance(layer, nn.Linear) or h is HF_CONV1D:
        return "linear"
    if (type(layer) is nn.Conv2d and layer.groups == 1 and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str)):
        return "conv2d"
    return None


def _out_dim(layer: Any) -> int:
    return -1 if _linear_form(layer) == "linear" else 1


def residual_streams(model: nn.Module, groups, call: Call) -> dict[str, str]:
    """Gate-site layers whose output is added to a residual and normalised by a LayerNorm:
    layer name -> the LayerNorm's name (each confirmed by a probe, see :func:`_residual_norm`)."""
    with preserved_mode(model), torch.no_grad():
        model.eval()
        order = call_order(model, call)
        out: dict[str, str] = {}
        for group in groups:
            for site in group.sites:
                module = model.get_submodule(site.module)
                if site.module in out or isinstance(module, nn.MultiheadAttention) or order.get(
                        site.module, -1) < 0:
                    continue
                norm = _residual_norm(model, Reader(site.module, site.module), order, call)
                if norm is not None:
                    out[site.module] = norm
    return out


def _residual_norm(small: nn.Module, reader: Reader, order: dict[str, int],
                   call: Call) -> str | None:
    """The LayerNorm that takes ``reader``'s output plus a residual, confirmed by a probe."""
    if reader.keep_out is not None or reader.target != reader.name:
        return None
    start = order[reader.name]
    after = sorted((i, n) for n, i in order.items() if i > start)
    norm = next((n for _, n in after[:4] if isinstance(small.get_submodule(n), nn.LayerNorm)),
                None)
    if norm is None:
        return None
    cap = _Capture(small, {reader.name: "out", norm: "in"})
    try:
        plain = cap.run(small, call)
        gen = torch.Generator().manual_seed(0)  # the user's random state stays untouched
        like = plain[reader.name]
        delta = torch.randn(like.shape, generator=gen, dtype=like.dtype).to(like.device)
        cap.perturb = (reader.name, delta)
        moved = cap.run(small, call)
    finally:
        cap.remove()
    change = moved[norm] - plain[norm]
    if change.shape != delta.shape:
        return None
    ok = torch.allclose(change, delta, atol=1e-4 * float(delta.abs().max()), rtol=1e-4)
    return norm if ok else None


class _Normal:
    """The normal equations of one layer, summed over batches in float64."""

    def __init__(self, layer: Any) -> None:
        self.form = _linear_form(layer)
        self.layer = layer
        self.bias = getattr(layer, "bias", None) is not None
        self.xtx: torch.Tensor | None = None
        self.xty: torch.Tensor | None = None
        self.yty = 0.0
        self.rows = 0

    def _rows(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None):
        if self.form == "conv2d":
            conv = self.layer
            patches = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                               stride=conv.stride)
            x2 = patches.transpose(1, 2).reshape(-1, patches.shape[1])
            y2 = y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])
            return x2, y2
        x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        if mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(mask.shape):
            keep = mask.reshape(-1).to(torch.bool).to(x2.device)
            x2, y2 = x2[keep], y2[keep]
        return x2, y2

    def add(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> None:
        x2, y2 = self._rows(x, y, mask)
        x2, y2 = x2.double(), y2.double()
        if self.bias:
            x2 = torch.cat([x2, torch.ones(len(x2), 1, dtype=x2.dtype, device=x2.device)], 1)
        xtx, xty = x2.T @ x2, x2.T @ y2
        self.xtx = xtx if self.xtx is None else self.xtx + xtx
        self.xty = xty if self.xty is None else self.xty + xty
        self.yty += float((y2 * y2).sum())
        self.rows += len(x2)

    def _weights(self) -> torch.Tensor:
        """The layer's current solution as ``[in (+1), out]``."""
        w = self.layer.weight.detach().double()
        w = w if self.form != "linear" or handler_for(self.layer) is not HF_CONV1D else w.T
        w = w.reshape(w.shape[0], -1).T  # [in, out]
        if self.bias:
            w = torch.cat([w, self.layer.bias.detach().double()[None]], 0)
        return w

    def _error(self, w: torch.Tensor) -> float:
        assert self.xtx is not None and self.xty is not None
        sq = float((w * (self.xtx @ w)).sum() - 2 * (w * self.xty).sum()) + self.yty
        return max(sq, 0.0) / max(self.yty, 1e-300)

    def solve_into(self, layer: Any, ridge: float) -> tuple[float, float]:
        """Solve, write the weights (only if the fit improves), return relative errors."""
        assert self.xtx is not None and self.xty is not None
        current = self._weights().to(self.xtx.device)
        before = self._error(current)
        n = self.xtx.shape[0] - (1 if self.bias else 0)
        reg = torch.zeros(self.xtx.shape[0], dtype=self.xtx.dtype, device=self.xtx.device)
        reg[:n] = ridge * float(self.xtx.diagonal()[:n].mean().clamp_min(1e-12))
        # the ridge pulls toward the layer's own weights, not toward zero: where the calibration
        # data says little, the trained weights stay
        solution = torch.linalg.solve(self.xtx + torch.diag(reg),
                                      self.xty + reg[:, None] * current)
        after = self._error(solution)
        if not after < before:
            return before, before
        with torch.no_grad():
            w = solution[:n].T  # [out, in]
            if self.bias:
                layer.bias.copy_(solution[n].to(layer.bias))
            if self.form == "conv2d":
                layer.weight.copy_(w.reshape(layer.weight.shape).to(layer.weight))
            elif handler_for(layer) is HF_CONV1D:
                layer.weight.copy_(w.T.to(layer.weight))
            else:
                layer.weight.copy_(w.to(layer.weight))
        return before, after


__all__ = ["RIDGE", "Reader", "call_order", "refit_readers", "residual_streams"]
