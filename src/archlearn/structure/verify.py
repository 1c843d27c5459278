"""Proof by trial: shrink a copy and compare outputs, so a wrong shrink is refused, not returned.

The handler table and the allow-list of operations say which groups *should* shrink exactly;
this module checks that they *do*, on the user's own model, before any training:
:func:`check_groups` shrinks a copy with a random gate pattern (units off, the rest scaled by
random factors, so folding is exercised too) and compares the eval outputs with the gated
copy's. A group that breaks equality is dropped and reported with the reason. Then, every time
:meth:`Learner.shrink` runs, :func:`assert_same_outputs` compares the real shrunk model with the
gated one on the example inputs and raises instead of returning a model that computes something
else.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.gating import GateHooks
from archlearn.structure.graph import flatten_tensors, preserved_mode, run_model
from archlearn.structure.groups import Skipped, UnitGroup, find_groups
from archlearn.structure.shrink import Decision, shrink

RTOL = 1e-4  # relative to the output's scale: float32 sums reordered by slicing stay far below


def probe_inputs(inputs: tuple[torch.Tensor, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The example inputs with floating tensors replaced by random ones of the same shape.

    Zeros (a common example input) would hide a wrong channel mapping behind biases; token ids
    and other integer inputs are kept as given.
    """
    gen = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(t.shape, generator=gen).to(t) if t.is_floating_point() else t for t in inputs
    )


def outputs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Every tensor a model returns in eval mode (without touching its modes or statistics)."""
    with preserved_mode(model), torch.no_grad():
        model.eval()
        return flatten_tensors(run_model(model, inputs))


def difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> str | None:
    """Why two output lists differ (count, shape, values beyond ``RTOL`` of the scale), or None."""
    if len(a) != len(b):
        return f"the model returns {len(b)} tensors instead of {len(a)}"
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            return f"output {i} has shape {tuple(y.shape)} instead of {tuple(x.shape)}"
        if not x.is_floating_point():
            if not torch.equal(x, y):
                return f"output {i} differs"
            continue
        scale = max(1.0, float(x.abs().max())) if x.numel() else 1.0
        err = float((x - y).abs().max()) if x.numel() else 0.0
        tol = max(RTOL, 4 * torch.finfo(x.dtype).eps)  # a half model rounds folded scales
        if not err <= tol * scale:  # also catches NaN
            return f"output {i} differs by {err:.3g} (scale {scale:.3g})"
    return None


def _pattern(group: UnitGroup, gen: torch.Generator) -> Decision:
    n = group.size
    keep = torch.rand(n, generator=gen) < 0.6
    if n > 1:
        keep[int(torch.randint(n, (1,), generator=gen))] = True
        if keep.all():
            keep[int(torch.randint(n, (1,), generator=gen))] = False
    return Decision(scale=keep.float() * (0.5 + torch.rand(n, generator=gen)))


def _unmask_init(model: nn.Module, gen: torch.Generator) -> None:
    """Give every constant one-dimensional parameter random entries (in the trial's copy).

    At initialisation, norm weights are ones, biases zeros and ConvNeXt's layer scale is 1e-6
    everywhere: a shrink that shuffles or drops such entries, or a block whose output is
    scaled by 1e-6, reproduces the gated outputs whatever it does. Random entries (around 1,
    or around 0 for zeros) make a wrong mapping show; a trained model is left as it is.
    """
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() != 1 or p.numel() < 2 or not bool((p == p[0]).all()):
                continue
            noise = torch.rand(p.shape, generator=gen).to(p)
            p.copy_(noise - 0.5 if float(p[0]) == 0.0 else noise + 0.5)


def _trial(model, groups, decisions, inputs) -> str | None:
    work = copy.deepcopy(model)
    _unmask_init(work, torch.Generator().manual_seed(1))
    hooks = GateHooks(work, list(groups), lambda i: decisions[i].scale, lambda i: None)
    try:
        gated = outputs(work, inputs)
    except Exception as exc:
        return f"the gated model fails ({type(exc).__name__}: {exc})"
    finally:
        hooks.remove()
    try:
        small, _ = shrink(work, groups, decisions, inputs)
        return difference(gated, outputs(small, inputs))
    except Exception as exc:  # a failure here is exactly what this check is for
        return f"shrinking fails ({type(exc).__name__}: {exc})"


def check_groups(
    model: nn.Module, groups: Sequence[UnitGroup], inputs: tuple[torch.Tensor, ...]
) -> tuple[list[UnitGroup], list[Skipped]]:
    """The groups whose random-pattern shrink reproduces the gated outputs, and the others.

    One trial with every group at once; only if it fails, groups are added one at a time and
    any group whose addition breaks equality is dropped with the reason.
    """
    gen = torch.Generator().manual_seed(0)
    decisions = [_pattern(g, gen) for g in groups]
    probe = probe_inputs(inputs)
    if not groups or _trial(model, groups, decisions, probe) is None:
        return list(groups), []
    kept: list[UnitGroup] = []
    kept_decisions: list[Decision] = []
    dropped: list[Skipped] = []
    for group, dec in zip(groups, decisions):
        reason = _trial(model, kept + [group], kept_decisions + [dec], probe)
        if reason is None:
            kept.append(group)
            kept_decisions.append(dec)
        else:
            dropped.append(Skipped(group.name, group.caveat or (
                f"a trial shrink did not reproduce the gated model: {reason}")))
    return kept, dropped


def gateable_groups(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], ignored: set[str], verb: str = "gated",
    *, leave: dict[str, str] | None = None,
) -> tuple[list[UnitGroup], list[Skipped]]:
    """Every group that shrinks exactly (found, then proven by a trial shrink), and the rest
    with reasons; one :class:`ArchlearnError` listing them when none is left. ``leave`` maps
    a group kind the caller cannot handle to the reason it is listed as skipped."""
    groups, skipped = find_groups(model, inputs, ignored=ignored)
    leave = leave or {}
    skipped += [Skipped(g.name, leave[g.kind]) for g in groups if g.kind in leave]
    groups = [g for g in groups if g.kind not in leave]
    groups, dropped = check_groups(model, groups, inputs)
    skipped += dropped
    if not groups:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in skipped) or "no hidden layer"
        raise ArchlearnError(f"no layer of this model can be {verb} ({reasons})")
    return groups, skipped


def assert_same_outputs(gated: nn.Module, small: nn.Module, inputs: tuple[torch.Tensor, ...]):
    """Raise :class:`ArchlearnError` if the shrunk model computes something else."""
    for probe in (inputs, probe_inputs(inputs)):
        reason = difference(outputs(gated, probe), outputs(small, probe))
        if reason:
            raise ArchlearnError(
                f"the shrunk model does not reproduce the gated model ({reason}); this is a bug "
                "in archlearn: the gated model is unchanged, please report the model"
            )
