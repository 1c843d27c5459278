"""``al.attach``: a method's gates on the user's own model, and the verbs around them."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import archlearn.methods  # noqa: F401  (fills the registry)
from archlearn.budget import BudgetController, Lagrangian, controller_for, parse_budget
from archlearn.errors import ArchlearnError
from archlearn.methods.base import REGISTRY, Method, Options, parse_options
from archlearn.structure.cost import KINDS, CostModel, build_cost
from archlearn.structure.gating import GateHooks
from archlearn.structure.graph import as_tuple
from archlearn.structure.groups import Skipped, UnitGroup
from archlearn.structure.measure import count_macs, count_nonzero, count_params
from archlearn.structure.shrink import Decision, shrink
from archlearn.structure.start import start_masks
from archlearn.structure.verify import assert_same_outputs, gateable_groups
from archlearn.structure.weight_gates import WeightGateHooks


class Learner:
    """Gates attached to a model. Build it with :func:`attach`.

    The structure parameters live on the model's device (see :meth:`to`) and follow it when it
    moves: the first forward pass after ``model.to(...)`` moves them, with their optimizer state.

    The gates are picklable hook objects on the model (none is a ``forward`` replaced on one
    instance), so ``copy.deepcopy(model)`` and ``pickle`` give a model that computes with its
    own weights and a copy of the method's gates as they were at the copy (this learner does
    not train the copy's gates; attach a new learner to a detached copy for that).
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: tuple[torch.Tensor, ...],
        method: Method,
        groups: list[UnitGroup],
        skipped: list[Skipped],
    ) -> None:
        self.model, self.method = model, method
        self.groups, self.skipped = groups, skipped
        self.hooks = GateHooks(model, groups, method.gate, method.depth_gate)
        self.weight_hooks = WeightGateHooks(model, method.weight_modules, method.weight_gate)
        self._follow = Follow(method, model.get_submodule(groups[0].sites[0].module))
        self._follow_handle = model.register_forward_pre_hook(self._follow)
        self._inputs, self._inputs_at = inputs, self._follow.where
        self._arch_cache: tuple[bytes, dict] | None = None

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        """The example inputs, on the model's device (floating ones in its dtype)."""
        if self._inputs_at != self._follow.where:
            device, dtype = self._inputs_at = self._follow.where
            self._inputs = tuple(t.to(device, dtype) if t.is_floating_point() else t.to(device)
                                 for t in self._inputs)
        return self._inputs

    def to(self, *args: Any, **kwargs: Any) -> Learner:
        """Move the model and the structure parameters, like ``nn.Module.to``; returns ``self``.

        Structure parameters take the model's device and its dtype when that is float32 or
        float64; a float16/bfloat16 model keeps float32 structure parameters (master copies).

        >>> import archlearn as al
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> learner = al.attach(net, torch.zeros(1, 4), total_steps=10).to(torch.float64)
        >>> learner.parameters()[0].dtype, net[0].weight.dtype
        (torch.float64, torch.float64)
        """
        self.model.to(*args, **kwargs)
        self._follow(self.model, ())
        return self

    def penalty(self) -> torch.Tensor:
        """The method's regularizers, a scalar tensor to add to the task loss."""
        return self.method.penalty()

    def step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """Update the structure parameters (call after the user's ``optimizer.step()``).

        Under ``torch.distributed`` the structure gradients are averaged over the ranks first
        (one all-reduce). With mixed precision and a ``GradScaler``, pass it here and call this
        *before* ``scaler.update()``: the gradients are unscaled with the scale that produced
        them, and a step whose gradients are not finite is skipped (still counted).
        """
        params = self.method.parameters()
        if params and dist.is_available() and dist.is_initialized():
            _all_reduce_mean_grads(params)
        update = True
        if scaler is not None and scaler.is_enabled():
            inv = 1.0 / scaler.get_scale()
            grads = [p.grad for p in params if p.grad is not None]
            for g in grads:
                g.mul_(inv)
            if grads:
                update = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        self.method.after_step(update=update)

    def parameters(self) -> list[torch.Tensor]:
        """The structure parameters (not part of ``model.parameters()``)."""
        return self.method.parameters()

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method.name, **self.method.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method.name:
            raise ArchlearnError(
                f"structure state is for method {state.get('method')!r}, not {self.method.name!r}"
            )
        self.method.load_state_dict(state)

    def decisions(self) -> list[Decision]:
        """What shrinking would use now (the frozen decision once the structure is frozen)."""
        return self.method.decided()

    def shrink(self) -> nn.Module:
        """A new, smaller model whose eval outputs equal the gated model's.

        The recipe that rebuilds it from a fresh instance is kept on it for :func:`archlearn.save`.
        """
        self._follow(self.model, ())
        with self.hooks.suspended(), self.weight_hooks.suspended():
            small, recipe = shrink(self.model, self.groups, self.decisions(), self.inputs)
        assert_same_outputs(self.model, small, self.inputs)
        setattr(small, "archlearn_recipe", recipe)  # noqa: B010 (not a module attribute)
        return small

    def architecture(self) -> dict[str, Any]:
        """Kept width of each group, which layers became linear, and the shrunk model's size.

        ``params``, ``nonzero_params`` and ``macs`` are counted on the model :meth:`shrink`
        would return.
        """
        decisions = self.decisions()
        key = b"".join(d.scale.detach().cpu().numpy().tobytes() + bytes([d.linear])
                       for d in decisions)
        key += b"".join(w.detach().cpu().numpy().tobytes()
                        for d in decisions for w in (d.weights or {}).values())
        if self._arch_cache is None or self._arch_cache[0] != key:
            small = self.shrink()
            layers = [
                {"name": g.name, "width": int(d.kept.numel()), "of": g.size, "linear": d.linear}
                for g, d in zip(self.groups, decisions)
            ]
            arch = {
                "layers": layers,
                "params": count_params(small),
                "nonzero_params": count_nonzero(small),
                "macs": count_macs(small, self.inputs),
                "skipped": [{"name": s.name, "reason": s.reason}
                            for s in [*self.skipped, *self.method.skipped]],
            }
            if self.method.budget is not None:
                arch["budget"] = self._budget_report(arch, decisions)
            self._arch_cache = (key, arch)
        return self._arch_cache[1]

    def _budget_report(self, arch: dict[str, Any], decisions: list[Decision]) -> dict[str, Any]:
        """Budget against reached: counted on the shrunk model (params, MACs) or, for latency,
        the latency table's estimate of it."""
        budget = self.method.controller()
        report = budget.report()
        reached = arch.get(budget.kind)
        if reached is None:
            reached = budget.cost.of([d.scale for d in decisions])
        report.update(reached=reached / budget.cost.full, reached_count=reached)
        return report

    def detach(self) -> nn.Module:
        """Remove the gates' hooks; the model is back to what it was before ``attach``."""
        self.hooks.remove()
        self.weight_hooks.remove()
        self._follow_handle.remove()
        return self.model


class Follow:
    """Forward pre-hook on the model: the structure parameters follow its device and dtype.

    ``probe`` is a gate site's layer (where the model is; attention has no ``.weight``). A
    picklable object rather than a bound method of the learner, so a copy of the model carries
    a copy of it that moves the copy's gates, and no copy of the learner.

    >>> import archlearn as al
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> learner = al.attach(net, torch.zeros(1, 4), total_steps=10)
    >>> _ = net.double()(torch.zeros(1, 4, dtype=torch.float64))  # the hook moves the gates
    >>> learner.parameters()[0].dtype
    torch.float64
    """

    def __init__(self, method: Method, probe: nn.Module) -> None:
        self.method, self.probe = method, probe
        self.where = self._now()

    def _now(self) -> tuple[torch.device, torch.dtype]:
        weight = next(self.probe.parameters())
        return weight.device, weight.dtype

    def __call__(self, module: nn.Module, args: Any) -> None:
        now = self._now()
        if now != self.where:
            self.where = now
            self.method.to(now[0], _dtype_for(now[1]))


def _dtype_for(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _all_reduce_mean_grads(params: list[torch.Tensor]) -> None:
    """Average the structure gradients over the ranks in one collective.

    The structure parameters are not in the DDP-wrapped module, so DDP does not do it. A
    parameter without a gradient on every rank keeps none (an optimizer skips it, as it would
    in one process); one with a gradient on some rank gets the mean, zeros counted elsewhere.
    """
    like = params[0]
    present = torch.tensor([p.grad is not None for p in params], dtype=like.dtype,
                           device=like.device)
    flat = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1)
                      for p in params] + [present])
    dist.all_reduce(flat)
    flags = flat[-len(params):].tolist()  # one host sync
    flat /= dist.get_world_size()
    start = 0
    for p, flag in zip(params, flags):
        n = p.numel()
        p.grad = flat[start:start + n].view_as(p).clone() if flag > 0 else None
        start += n


def attach(
    model: nn.Module,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
    method: str = "tsrelu",
    *,
    ignore: list[str] | None = None,
    cost: str | None = None,
    budget: dict[str, float] | None = None,
    controller: str | dict[str, Any] = "multiplier",
    init: Any = None,
    **options: Any,
) -> Learner:
    """Attach a structure-learning method's gates to ``model`` (changed in place, hooks only).

    ``ignore`` names root layers whose units must not be gated. ``cost`` ("units" | "params" |
    "macs" | "latency") weights each unit's complexity term by what it costs (default: the
    budget's kind, else the method's own, "units" for tsrelu); ``budget`` (``{"macs": 0.25}``,
    ``{"params": 40000}``, ``{"latency": 0.5}``) is reached by the freeze, see
    ``archlearn/budget.py``. ``controller`` is how the budget is reached: ``"multiplier"``
    (the default) or ``"lagrangian"`` (CoFi's Lagrangian on the expected cost, l0 and tsrelu;
    ``{"kind": "lagrangian", "lr": 0.02}`` sets its multipliers' learning rate). ``init``
    starts the gates from a decision instead of all-on (a compressed model from
    ``al.compress``, a ``Decided`` or ``{group name: keep mask}``, see
    ``archlearn/structure/start.py``; l0 and tsrelu); a budget's target schedule then starts
    from that decision's cost. Options are the method's hyper-parameters; unknown or
    out-of-range values raise :class:`ArchlearnError`.

    >>> import archlearn as al
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> learner = al.attach(net, torch.zeros(1, 4), total_steps=100)
    >>> learner.architecture()["layers"][0]["width"]
    8
    """
    if not isinstance(model, nn.Module):
        raise ArchlearnError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        raise ArchlearnError(
            f"the model is wrapped in {type(model).__name__}: attach to its .module, or before "
            "wrapping (gates are hooks on the model's own layers; see archlearn.distributed)"
        )
    if count_params(model) == 0:
        raise ArchlearnError("the model has no parameters: nothing to learn")
    inputs = as_tuple(example_inputs)
    kind, value = parse_budget(budget) if budget is not None else (None, None)
    if kind is not None and options.get("total_steps") is None:
        raise ArchlearnError("a budget needs total_steps (the number of learner.step() calls "
                             "in the run): the target is reached at the freeze, a fraction of it")
    how, settings = controller_for(controller)
    if how != "multiplier" and kind is None:
        raise ArchlearnError(f"controller={how!r} drives the gates to a budget: give budget")
    opts = parse_options(method, options)
    for hook, wanted, what in (("expected_alive", how == "lagrangian", "controller='lagrangian'"),
                               ("set_gates", init is not None, "init")):
        if wanted and not REGISTRY[method].supports(hook):
            able = sorted(n for n, m in REGISTRY.items() if m.supports(hook))
            raise ArchlearnError(f"{what} is not available for {method}; methods with it: {able}")
    if kind is not None:
        opts = _budget_schedule(method, opts, options)
    cost = cost or kind or REGISTRY[method].default_cost
    if cost not in KINDS:
        raise ArchlearnError(f"unknown cost {cost!r}; choose one of {list(KINDS)}")
    groups, skipped = gateable_groups(model, inputs, set(ignore or ()))
    models: dict[str, CostModel] = {}  # built before the gates' hooks go on

    def cost_model(k: str) -> CostModel:
        if k not in models:
            models[k] = build_cost(model, groups, inputs, k)
        return models[k]

    weights = None if cost == "units" else cost_model(cost)
    masks = None if init is None else start_masks(init, groups)
    budgeted = None
    if kind is not None:
        if opts.freeze is None:
            raise ArchlearnError("a budget is reached at the freeze: give freeze (a fraction "
                                 "of total_steps), not None")
        assert opts.total_steps is not None and value is not None  # checked above
        start = opts.warmup * opts.total_steps
        # learning from a decision starts the target schedule at that decision's cost
        begin = None if masks is None else float(cost_model(kind).total(masks))
        freeze = opts.freeze * opts.total_steps
        budgeted = (Lagrangian(cost_model(kind), kind, value, start, freeze, begin, **settings)
                    if how == "lagrangian" else
                    BudgetController(cost_model(kind), kind, value, start, freeze, begin))
    instance = REGISTRY[method](model, groups, opts)
    instance.use_cost(weights, budgeted)
    if masks is not None:
        instance.start_from(masks)
    return Learner(model, inputs, instance, groups, skipped)


def _budget_schedule(method: str, opts: Options, given: dict[str, Any]) -> Options:
    """A budget is reached by the freeze: it needs ``total_steps`` and a ``freeze`` (0.65 of the
    run where the method's default is never)."""
    if opts.freeze is None:
        if "freeze" in given:
            raise ArchlearnError(f"a budget needs a freeze (the step where the gates land on the "
                                 f"budget); {method} was given freeze=None")
        opts = type(opts)(**{**opts.model_dump(exclude_unset=True), "freeze": 0.65})
    return opts


def method_names() -> list[str]:
    """The names ``attach(..., method=...)`` accepts: the method registry's names, sorted.

    (``al.methods`` is the subpackage ``archlearn.methods``, where the methods live.)

    >>> "tsrelu" in method_names() and method_names() == sorted(method_names())
    True
    """
    return sorted(REGISTRY)
