"""The contract every structure-learning method implements, and the registry by name.

A method is one module in this package: an :class:`Options` subclass (its validated
hyper-parameters) and a :class:`Method` subclass decorated with :func:`register`. Dropping the
file here is all it takes: the package imports every module it holds, so the registry, the
command line, the run config, the shared contract test (``tests/test_method_contract.py``) and
the comparison benchmark pick the method up by its name.

What a method implements (abstract members, documented below): the gate of a group of coupled
units (:meth:`Method.unit_scale`, and :meth:`Method.depth_scale` where a layer may become
linear; :meth:`Method.weight_scale` for unstructured methods, on the layers they list in
``weight_modules``), its regularizer (:meth:`Method.regularizer`), one update of its structure
parameters (:meth:`Method.update`) and the decision that shrinking reads
(:meth:`Method.decision`).

What the base owns, the same for every method:

* **The schedule.** ``total_steps`` is the number of ``learner.step()`` calls in the whole run;
  ``warmup`` and ``freeze`` are fractions of it. Before ``warmup`` the structure does not move
  (no update, penalty 0); from ``freeze`` on it is fixed: the gates are the decision taken at
  that step, the penalty is 0 and only the weights train (fine-tuning the final architecture).
  ``total_steps`` is required exactly when a fraction needs it. ``steps_per_epoch`` is the
  number of ``learner.step()`` calls per epoch, for methods that work by epochs.
* **The step counter** ``t`` (``learner.step()`` calls so far) and the phase it implies
  (``"warmup"``, ``"active"``, ``"frozen"``), changed only in :meth:`Method.after_step`, so a
  forward pass never branches on a counter (``torch.compile`` guards on such values).
* **Placement.** Structure parameters are created on the model's device, in its floating dtype
  (float32 master copies for a float16/bfloat16 model: gate steps of 1e-3 vanish in bfloat16's
  8-bit mantissa); :meth:`Method.to` moves them, their optimizer state and the method's modules.
* **State.** :meth:`Method.state_dict` / :meth:`Method.load_state_dict` hold the parameters, the
  optimizer, the step, the frozen decision, the buffers of the method's modules and whatever
  :meth:`Method.extra_state` adds; loading checks everything before it changes anything.
* **Cost and budget** (``attach(..., cost=..., budget=...)``, see ``archlearn/budget.py``). With a
  cost model, :meth:`Method.unit_weights` gives each unit's complexity weight at the current
  widths (recomputed after every active step); a method weights its per-unit complexity term
  with it. With a budget, :meth:`Method.strength` scales the method's complexity coefficient by
  the controller's multiplier (methods that do set ``controlled = True``), and at the freeze the
  decision lands on the budget by :meth:`Method.unit_score`. With CoFi's Lagrangian as the
  controller (``controller="lagrangian"``) the strength is 0 and :meth:`Method.penalty` adds
  the Lagrangian of the expected cost, read from :meth:`Method.expected_alive`.
* **A start from a decision** (``attach(..., init=...)``): :meth:`Method.start_from` sets the
  gates through the method's :meth:`Method.set_gates` (units marked off at the method's off
  state, the others at its usual start) and checks that the decision is the one given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from archlearn.budget import BudgetController, Lagrangian
from archlearn.errors import ArchlearnError
from archlearn.structure.cost import CostModel
from archlearn.structure.groups import Skipped, UnitGroup
from archlearn.structure.shrink import Decision

REGISTRY: dict[str, type[Method[Any]]] = {}

WARMUP, ACTIVE, FROZEN = "warmup", "active", "frozen"


class Options(BaseModel):
    """Base of every method's options: the schedule, unknown keys refused, values validated.

    >>> Options(total_steps=100, freeze=0.5).freeze
    0.5
    >>> try:
    ...     Options(freeze=0.5)
    ... except ValueError as error:
    ...     print("total_steps is required when freeze is set" in str(error))
    True
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    total_steps: int | None = Field(
        None, gt=0, description="learner.step() calls in the whole run (schedules are fractions)"
    )
    steps_per_epoch: int | None = Field(
        None, gt=0, description="learner.step() calls per epoch (methods that work by epochs)"
    )
    warmup: float = Field(
        0.0, ge=0, lt=1, description="fraction of total_steps before the structure moves"
    )
    freeze: float | None = Field(
        None, gt=0, le=1,
        description="fraction of total_steps after which the structure is fixed (None: never)",
    )

    @model_validator(mode="after")
    def _fractions_need_total_steps(self):
        if self.total_steps is None:
            for key in ("freeze", "warmup"):
                value = getattr(self, key)
                if value:
                    raise ValueError(
                        f"total_steps is required when {key} is set ({key}={value} is a "
                        f"fraction of the run; pass total_steps, or {key}="
                        f"{'None' if key == 'freeze' else '0'})"
                    )
        return self


M = TypeVar("M", bound="type[Method[Any]]")


def register(cls: M) -> M:
    """Class decorator adding a method to the registry under ``cls.name``; a taken name is refused.

    >>> try:
    ...     register(REGISTRY["tsrelu"])
    ... except ArchlearnError as error:
    ...     print(str(error)[:45])
    a method named 'tsrelu' is already registered
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ArchlearnError(f"{cls.__qualname__} needs a class attribute `name` (a string)")
    if name in REGISTRY:
        raise ArchlearnError(
            f"a method named {name!r} is already registered ({REGISTRY[name].__module__}."
            f"{REGISTRY[name].__qualname__}); choose another name for {cls.__qualname__}"
        )
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, Options)):
        raise ArchlearnError(f"{cls.__qualname__}.Options must subclass methods.base.Options")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ArchlearnError(f"{cls.__qualname__} does not implement {missing}")
    REGISTRY[name] = cls
    return cls


def names() -> list[str]:
    """The registered method names, sorted.

    >>> {"tsrelu", "l0", "slimming"} <= set(names())
    True
    """
    return sorted(REGISTRY)


def variants() -> list[tuple[str, str, dict[str, Any]]]:
    """Every registered method with its defaults, then each variant it declares:
    ``(label, method, options)``, the rows of the shared contract test.

    >>> ("tsrelu", "tsrelu", {}) in variants()
    True
    """
    return [(f"{name}:{label}" if label else name, name, options)
            for name in names()
            for label, options in [("", {}), *REGISTRY[name].variants.items()]]


def parse_options(method: str, options: dict[str, Any]) -> Options:
    """Validate options for a method; one clear ``ArchlearnError`` naming the bad key otherwise."""
    if method not in REGISTRY:
        raise ArchlearnError(f"unknown method {method!r}; choose one of {names()}")
    fields = REGISTRY[method].Options.model_fields
    unknown = sorted(set(options) - set(fields))
    if unknown:  # named first: a misspelt key matters more than a missing one
        raise ArchlearnError(
            f"{method} has no option {', '.join(map(repr, unknown))}; options are {sorted(fields)}"
        )
    try:
        return REGISTRY[method].Options(**options)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "options"  # the option, not its union arm
        got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" else ""
        if not err["loc"]:  # a model validator: the message names the keys itself
            got = ""
        raise ArchlearnError(f"{method} option {key!r}: {err['msg']}{got}") from None


def placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where a model's structure parameters belong: its device, and its dtype when float32/64.

    Half-precision models get float32 structure parameters (master copies, cast in the hooks).

    >>> placement(nn.Linear(2, 2).double())
    (device(type='cpu'), torch.float64)
    >>> placement(nn.Linear(2, 2).bfloat16())
    (device(type='cpu'), torch.float32)
    """
    for p in model.parameters():
        if p.is_floating_point():
            dtype = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
            return p.device, dtype
    return torch.device("cpu"), torch.float32


O = TypeVar("O", bound=Options)
T = TypeVar("T", bound=nn.Module)


class Method(ABC, Generic[O]):
    """Structure parameters for a list of unit groups, and the schedule that drives them.

    Subclasses set ``name`` and ``Options`` (``class Mine(Method[MineOptions])`` types
    ``self.options``) and implement the abstract members; the learner
    calls only :meth:`gate`, :meth:`depth_gate`, :meth:`penalty`, :meth:`after_step`,
    :meth:`decided`, :meth:`parameters`, :meth:`to` and the state methods.
    """

    name: ClassVar[str]
    Options: ClassVar[type[Options]]
    controlled: ClassVar[bool] = False  # the penalty's complexity term uses strength()
    # option sets beside the defaults that change what is gated (units or single weights):
    # the shared contract test runs each of them too
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    default_cost: ClassVar[str] = "units"  # what a unit costs when attach is given no cost

    def __init__(self, model: nn.Module, groups: list[UnitGroup], options: O) -> None:
        self.model, self.groups = model, groups
        self.options: O = options
        self.device, self.dtype = placement(model)
        self.params: dict[str, torch.Tensor] = {}
        self.modules: dict[str, nn.Module] = {}
        self.optimizer: torch.optim.Optimizer | None = None
        self.t = 0  # learner.step() calls so far
        self.frozen_decisions: list[Decision] | None = None
        self._frozen_weights: dict[str, torch.Tensor] = {}
        self.weight_modules: list[str] = []  # layers gated per weight (unstructured methods)
        self.skipped: list[Skipped] = []  # what the method cannot gate, listed by architecture()
        self.phase = WARMUP if self._warmup_steps() > 0 else ACTIVE
        self.cost: CostModel | None = None
        self.budget: BudgetController | None = None
        self._weights: list[torch.Tensor] | None = None

    # -- what a method implements ------------------------------------------------------------
    @abstractmethod
    def unit_scale(self, i: int) -> torch.Tensor:
        """Per-unit gate of group ``i`` while the structure is learned: shape ``[size]``.

        Multiplies the inputs of the group's consumers in the forward pass; gradients reaching
        it train the structure. After the freeze the base returns the frozen decision instead.
        """

    def depth_scale(self, i: int) -> torch.Tensor | None:
        """Scalar in [0, 1] mixing group ``i``'s activation toward the identity (1: linear).

        ``None`` (the default) for methods or groups that do not learn depth.
        """
        return None

    def weight_scale(self, name: str) -> torch.Tensor | None:
        """Elementwise scale of layer ``name``'s weight, one of ``weight_modules`` (the weight's
        shape, or ``[out, in]`` for a conv); the layer computes with ``W * scale``. Decisions
        carry them in ``Decision.weights``. ``None`` (the default): the plain weight."""
        return None

    @abstractmethod
    def regularizer(self) -> torch.Tensor:
        """The method's penalty while the structure is learned (a scalar on ``self.device``)."""

    @abstractmethod
    def decision(self) -> list[Decision]:
        """Per group: the unit scales to fold into the weights (0 removes a unit) and linearity.

        In eval mode the gated model's outputs must equal those of the model shrunk with it.
        """

    def update(self) -> None:
        """One update of the structure parameters (gradients are in ``.grad``).

        Called by :meth:`after_step` only in the active phase. The default steps the method's
        optimizer; override to add constraints (clipping, projection) or alternation.
        """
        if self.optimizer is not None:
            self.optimizer.step()

    def advanced(self) -> None:
        """Called after every ``learner.step()`` once ``t`` has moved on (all phases)."""
        return None  # nothing by default

    def extra_state(self) -> dict[str, Any]:
        """Method-specific state for checkpoints (tensors and plain values only)."""
        return {}

    def check_extra_state(self, state: dict[str, Any]) -> None:
        """Raise ``ArchlearnError`` when ``state`` (from :meth:`extra_state`) does not fit."""
        return None  # nothing by default

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved (already checked)."""
        return None  # nothing by default

    def moved(self) -> None:
        """Called after :meth:`to` moved the parameters: move what else the method holds."""
        return None  # nothing by default

    def soft_alive(self, i: int) -> torch.Tensor:
        """How alive each unit of group ``i`` is, in [0, 1], for the budget controller: the
        decision by default; a method with an expected count of alive units (l0) gives it."""
        return (self.decision()[i].scale.detach() != 0).to(self.dtype)

    def unit_score(self, i: int) -> torch.Tensor:
        """How strongly each unit of group ``i`` is kept (higher: kept first) when a budget's
        landing must choose; the default is the decision's scale magnitude."""
        return self.decision()[i].scale.detach().abs()

    def expected_alive(self, i: int) -> torch.Tensor:
        """How alive each unit of group ``i`` is in expectation, *differentiable* in the
        structure parameters: CoFi's Lagrangian reads the expected cost from it. Methods that
        support ``controller="lagrangian"`` override it (l0: ``P(gate != 0)``)."""
        raise ArchlearnError(f"{self.name} has no expected cost of its gates: "
                             "controller='lagrangian' needs one (l0, tsrelu)")

    def set_gates(self, alive: list[torch.Tensor]) -> None:
        """Set the structure parameters so that the decision keeps exactly the units where
        ``alive[i]`` is 1 (marked off: the method's off state; kept: its usual start).
        Methods that support ``attach(..., init=...)`` override it."""
        raise ArchlearnError(f"{self.name} cannot start from a decision (init=...); "
                             "methods that can: l0, tsrelu")

    @classmethod
    def supports(cls, hook: str) -> bool:
        """Whether the method overrides the optional hook ``hook`` (``"expected_alive"`` or
        ``"set_gates"``).

        >>> from archlearn.methods.base import REGISTRY
        >>> REGISTRY["l0"].supports("expected_alive"), REGISTRY["slimming"].supports("set_gates")
        (True, False)
        """
        return getattr(cls, hook) is not getattr(Method, hook)

    def start_from(self, alive: list[torch.Tensor]) -> None:
        """Start learning from a decision: per group a 0/1 vector of the units to keep."""
        self.set_gates([a.to(self.device, self.dtype) for a in alive])
        for g, a, d in zip(self.groups, alive, self.decision()):
            if not torch.equal((d.scale.detach().cpu() != 0), a.cpu() > 0):
                raise ArchlearnError(f"{self.name} did not start from the decision given for "
                                     f"{g.name}: this is a bug in archlearn, please report it")
        if self.cost is not None:  # unit weights at the starting widths
            self._refresh_weights([a.detach().cpu().to(torch.float64) for a in alive])

    # -- cost and budget ---------------------------------------------------------------------
    def use_cost(self, cost: CostModel | None, budget: BudgetController | None = None) -> None:
        """Weight units by ``cost`` and drive the complexity strength to ``budget``."""
        self.cost, self.budget = cost, budget
        self._weights = None
        if cost is not None:
            self._refresh_weights([torch.ones(g.size) for g in self.groups])

    def unit_weights(self, i: int) -> torch.Tensor:
        """Complexity weight of each unit of group ``i`` (1 without a cost model)."""
        if self._weights is None:
            return self.full(self.groups[i].size, 1.0)
        w = self._weights[i]
        if w.device != self.device or w.dtype != self.dtype:
            self._weights = [x.to(self.device, self.dtype) for x in self._weights]
            w = self._weights[i]
        return w

    def controller(self) -> BudgetController:
        """The budget controller (methods call this only when a budget was given)."""
        assert self.budget is not None, "no budget was given"
        return self.budget

    def strength(self, value: float) -> float:
        """A complexity coefficient, scaled by the budget controller's multiplier."""
        return value if self.budget is None else value * self.budget.multiplier

    def _refresh_weights(self, alive: list[torch.Tensor]) -> None:
        assert self.cost is not None
        weights = self.cost.weights(alive)
        self._weights = [w.to(self.device, self.dtype) for w in weights]

    def _track_cost(self) -> None:
        """After an active step: weights at the new widths, one controller step."""
        with torch.no_grad():
            scales = [d.scale.detach() for d in self.decision()]
        if self.cost is not None:
            self._refresh_weights([(s.cpu() != 0).to(torch.float64) for s in scales])
        if self.budget is not None and self.controlled:
            with torch.no_grad():
                soft = [self.soft_alive(i) for i in range(len(self.groups))]
            self.budget.update(self.t, soft)

    # -- building blocks for subclasses ------------------------------------------------------
    def new_param(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """A structure parameter initialised from ``value``, on the method's device and dtype."""
        p = value.detach().to(self.device, self.dtype).clone().requires_grad_(True)
        self.params[key] = p
        return p

    def new_module(self, key: str, module: T) -> T:
        """A module of structure parameters (e.g. a meta-network), moved and registered."""
        module = module.to(self.device, self.dtype)
        self.modules[key] = module
        for name, p in module.named_parameters():
            self.params[f"{key}.{name}"] = p
        return module

    def full(self, size: int | tuple[int, ...], value: float) -> torch.Tensor:
        """A constant tensor on the method's device and dtype (no gradient)."""
        shape = (size,) if isinstance(size, int) else size
        return torch.full(shape, value, device=self.device, dtype=self.dtype)

    # -- the schedule ------------------------------------------------------------------------
    def _warmup_steps(self) -> float:
        o = self.options
        return o.warmup * o.total_steps if o.total_steps else 0.0

    def _freeze_due(self) -> bool:
        o = self.options
        return o.freeze is not None and o.total_steps is not None and (
            self.t >= o.freeze * o.total_steps)

    @property
    def warming_up(self) -> bool:
        return self.phase == WARMUP

    @property
    def frozen(self) -> bool:
        return self.phase == FROZEN

    # -- what the learner calls --------------------------------------------------------------
    def gate(self, i: int) -> torch.Tensor:
        """The unit scale the forward pass applies to group ``i`` now."""
        if self.frozen_decisions is not None:
            return self.frozen_decisions[i].scale
        return self.unit_scale(i)

    def depth_gate(self, i: int) -> torch.Tensor | None:
        """The depth scale the forward pass applies to group ``i`` now (``None``: none)."""
        if self.frozen_decisions is not None:
            return self._frozen_depth[i]
        return self.depth_scale(i)

    def weight_gate(self, name: str) -> torch.Tensor | None:
        """The weight scale the forward pass applies to layer ``name`` now."""
        if self.frozen_decisions is not None:
            return self._frozen_weights.get(name)
        return self.weight_scale(name)

    def decided(self) -> list[Decision]:
        """The decision shrinking uses now: the frozen one after the freeze."""
        if self.frozen_decisions is not None:
            return [Decision(d.scale.clone(), d.linear, _moved(d.weights))
                    for d in self.frozen_decisions]
        return self.decision()

    def penalty(self) -> torch.Tensor:
        """The regularizer in the active phase (plus CoFi's Lagrangian under a budget that uses
        it), else 0."""
        if self.phase != ACTIVE:
            return torch.zeros((), device=self.device, dtype=self.dtype)
        total = self.regularizer()
        if isinstance(self.budget, Lagrangian):
            alive = [self.expected_alive(i) for i in range(len(self.groups))]
            total = total + self.budget.term(self.t, alive).to(total.dtype)
        return total

    def after_step(self, update: bool = True) -> None:
        """One ``learner.step()``: update (when active and ``update``), advance, change phase."""
        if self.phase == ACTIVE and update:
            self.update()
        self.zero_grad()
        self.t += 1
        self.advanced()
        if self.phase == ACTIVE and (self.cost is not None or self.budget is not None):
            self._track_cost()
        self._set_phase()

    def _set_phase(self) -> None:
        if self.frozen_decisions is None and self._freeze_due():
            self.freeze_now()
        elif self.frozen_decisions is None:
            self.phase = WARMUP if self.t < self._warmup_steps() else ACTIVE

    def freeze_now(self) -> None:
        """Fix the structure at the current decision (the schedule calls this at ``freeze``)."""
        with torch.no_grad():
            decisions = [Decision(d.scale.detach().to(self.device).clone(), d.linear,
                                  _moved(d.weights, self.device))
                         for d in self.decision()]
            if self.budget is not None:  # land on the budget by the method's ranking
                scores = [self.unit_score(i) for i in range(len(self.groups))]
                scales = self.budget.land([d.scale for d in decisions], scores)
                decisions = [Decision(s, d.linear, d.weights) for s, d in zip(scales, decisions)]
        self._set_frozen(decisions)

    def _set_frozen(self, decisions: list[Decision]) -> None:
        self.frozen_decisions = decisions
        self._frozen_weights = {k: v for d in decisions for k, v in (d.weights or {}).items()}
        one = torch.ones((), device=self.device, dtype=self.dtype)
        self._frozen_depth = [one if d.linear else None for d in decisions]
        self.phase = FROZEN

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def parameters(self) -> list[torch.Tensor]:
        """The structure parameters (not part of ``model.parameters()``)."""
        return list(self.params.values())

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> Method[O]:
        """Move the structure parameters, their optimizer state and the method's modules."""
        device = torch.device(device) if device is not None else self.device
        dtype = dtype or self.dtype
        if (device, dtype) == (self.device, self.dtype):
            return self
        self.device, self.dtype = device, dtype
        with torch.no_grad():
            for module in self.modules.values():
                module.to(device, dtype)  # keeps parameter identity (the optimizer's references)
            for p in self.params.values():
                p.data = p.data.to(device, dtype)
                if p.grad is not None:
                    p.grad = p.grad.to(device, dtype)
        if self.optimizer is not None:
            # load_state_dict casts every state tensor to its parameter's device and dtype
            self.optimizer.load_state_dict(self.optimizer.state_dict())
        if self.frozen_decisions is not None:
            self._set_frozen([Decision(d.scale.to(device), d.linear, _moved(d.weights, device))
                              for d in self.frozen_decisions])
        self.moved()
        return self

    # -- checkpoints -------------------------------------------------------------------------
    def buffers(self) -> list[torch.Tensor]:
        """Buffers of the method's modules (e.g. BatchNorm statistics of a meta-network)."""
        return list(self._buffers().values())

    def _buffers(self) -> dict[str, torch.Tensor]:
        return {f"{key}.{name}": b for key, m in self.modules.items()
                for name, b in m.named_buffers()}

    def state_dict(self) -> dict[str, Any]:
        frozen = self.frozen_decisions
        return {
            "groups": [[g.name, g.size] for g in self.groups],
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "buffers": {k: v.detach().clone() for k, v in self._buffers().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "t": self.t,
            "frozen": None if frozen is None else {
                "scales": [d.scale.detach().clone() for d in frozen],
                "linear": [d.linear for d in frozen],
                "weights": {k: v.detach().clone() for k, v in self._frozen_weights.items()},
            },
            "extra": self.extra_state(),
            "budget": None if self.budget is None else self.budget.state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; checked whole first, so a misfit changes nothing."""
        self._check_state(state)
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
            for k, b in self._buffers().items():
                b.copy_(state["buffers"][k])
        if self.optimizer is not None and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        self.t = int(state["t"])
        frozen = state.get("frozen")
        if frozen is not None:
            decisions = [Decision(s.to(self.device, self.dtype), bool(lin))
                         for s, lin in zip(frozen["scales"], frozen["linear"])]
            if frozen.get("weights") and decisions:
                decisions[0].weights = _moved(frozen["weights"], self.device)
            self._set_frozen(decisions)
        else:
            self.frozen_decisions = None
            self._set_phase()
        self.load_extra_state(state.get("extra") or {})
        if self.budget is not None and state.get("budget") is not None:
            self.budget.load(state["budget"])

    def _check_state(self, state: dict[str, Any]) -> None:
        groups = [[g.name, g.size] for g in self.groups]
        saved = [[str(n), int(s)] for n, s in state.get("groups", groups)]
        if saved != groups:
            raise ArchlearnError(f"{self.name} structure state does not fit this model: it is "
                                 f"for groups {saved}, this model has {groups}")
        for what, mine in (("keys", self.params), ("buffers", self._buffers())):
            theirs = state.get("params" if what == "keys" else "buffers") or {}
            differ = set(mine) ^ set(theirs)
            if differ:
                raise ArchlearnError(
                    f"{self.name} structure state does not fit this model: {what} {sorted(differ)}")
            for k, v in theirs.items():
                if tuple(v.shape) != tuple(mine[k].shape):
                    raise ArchlearnError(
                        f"structure parameter {k!r} has shape {tuple(v.shape)}, "
                        f"expected {tuple(mine[k].shape)}"
                    )
        frozen = state.get("frozen")
        if frozen is not None:
            shapes = [tuple(s.shape) for s in frozen["scales"]]
            if shapes != [(g.size,) for g in self.groups]:
                raise ArchlearnError(f"{self.name} structure state does not fit this model: frozen "
                                     f"decision shapes {shapes}")
            foreign = sorted(set(frozen.get("weights") or {}) - set(self.weight_modules))
            if foreign:
                raise ArchlearnError(f"{self.name} structure state does not fit this model: frozen "
                                     f"weight scales of layers {foreign}")
        self.check_extra_state(state.get("extra") or {})


def _moved(weights: dict[str, torch.Tensor] | None,
           device: torch.device | None = None) -> dict[str, torch.Tensor] | None:
    """A copy of a decision's weight scales (on ``device``), or ``None``."""
    if weights is None:
        return None
    return {k: v.detach().to(device or v.device).clone() for k, v in weights.items()}
