"""The interface every structure-learning method implements, and the registry by name.

A method owns its structure parameters and their optimizer; it never touches shrinking. Its
duties mirror the L0 reference layers (``regularization``, ``constrain_parameters``, expected
size): ``penalty()``, ``after_step()`` and ``decision()``, plus the gate applied in the forward
pass (``unit_scale`` per group, ``depth_scale`` for a layer that may become linear).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.groups import UnitGroup
from archlearn.structure.shrink import Decision

REGISTRY: dict[str, type[Method]] = {}


class Options(BaseModel):
    """Base of every method's options: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OptionalFreeze(Options):
    """Options of methods whose gates may freeze late in training (a fraction of the run)."""

    total_steps: int | None = Field(None, gt=0, description="optimizer steps of the whole run")
    freeze: float | None = Field(
        None, gt=0, le=1, description="fraction of total_steps after which the gates freeze"
    )

    @model_validator(mode="after")
    def _freeze_needs_total(self):
        if self.freeze is not None and self.total_steps is None:
            raise ValueError("total_steps is required when freeze is set")
        return self


def freeze_reached(options: OptionalFreeze, step: int) -> bool:
    """Whether ``step`` is past the freeze point (never, when no freeze is set)."""
    return options.freeze is not None and step >= options.freeze * options.total_steps


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls


def parse_options(method: str, options: dict[str, Any]) -> Options:
    """Validate options for a method; one clear ``ArchlearnError`` naming the bad key otherwise."""
    if method not in REGISTRY:
        raise ArchlearnError(f"unknown method {method!r}; choose one of {sorted(REGISTRY)}")
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
        key = ".".join(str(p) for p in err["loc"]) or "options"
        got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" else ""
        raise ArchlearnError(f"{method} option {key!r}: {err['msg']}{got}") from None


class Method:
    """Base class: structure parameters for a list of unit groups."""

    name: ClassVar[str]
    Options: ClassVar[type[Options]]

    def __init__(self, model: nn.Module, groups: list[UnitGroup], options: Options) -> None:
        self.model, self.groups, self.options = model, groups, options
        self.params: dict[str, torch.Tensor] = {}
        self.t = 0  # learner.step() calls so far
        self.optimizer: torch.optim.Optimizer | None = None

    def new_param(self, key: str, value: torch.Tensor) -> torch.Tensor:
        p = value.detach().clone().float().requires_grad_(True)
        self.params[key] = p
        return p

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def unit_scale(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def depth_scale(self, i: int) -> torch.Tensor | None:
        return None

    def penalty(self) -> torch.Tensor:
        return torch.zeros(())

    def after_step(self) -> None:
        """One update of the structure parameters with the method's own optimizer."""
        if self.optimizer is not None:
            self.optimizer.step()
        self.t += 1

    def decision(self) -> list[Decision]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "t": self.t,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self.params) ^ set(state["params"])
        if missing:
            raise ArchlearnError(f"structure state does not fit this model: keys {sorted(missing)}")
        with torch.no_grad():
            for k, v in state["params"].items():
                if v.shape != self.params[k].shape:
                    raise ArchlearnError(
                        f"structure parameter {k!r} has shape {tuple(v.shape)}, "
                        f"expected {tuple(self.params[k].shape)}"
                    )
                self.params[k].copy_(v)
        if self.optimizer is not None and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        self.t = int(state["t"])
