"""The command line's run configuration, validated in one place with pydantic.

``archlearn run --config run.json`` reads the same fields as the flags. Every problem becomes
one :class:`ArchlearnError` naming the field, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archlearn.budget import parse_budget
from archlearn.errors import ArchlearnError
from archlearn.methods.base import names, parse_options

DATASETS = ("mnist5k", "mnist-idx", "stdlib-docs", "text-file")
# the data a job reads when given no path and when given one (its module's ``DATA``)
DEFAULT_DATA = ("mnist5k", "mnist-idx")


class RunConfig(BaseModel):
    """What ``archlearn run`` needs; unknown keys and wrong types are errors.

    >>> RunConfig(job="lenet-mnist", options={"lambda1": 0.004}).epochs
    20
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    job: str
    out: str = "runs/demo"
    seeds: int = Field(1, ge=1, le=100)
    epochs: int = Field(20, ge=1, le=10_000)
    data: Literal["mnist5k", "mnist-idx", "stdlib-docs", "text-file"] = "mnist5k"
    data_path: str | None = None
    method: str = "tsrelu"
    options: dict[str, Any] = Field(default_factory=dict)
    budget: dict[str, float] | None = None
    steps: int | None = Field(None, ge=1, le=1_000_000)
    oneshot: bool = False
    calibration: int | None = Field(None, ge=1, le=1_000_000)
    model_dir: str | None = None
    start: Literal["oneshot", "full"] | None = None
    gated: float | None = Field(None, gt=0, le=1)
    baselines: bool = False
    extra: int | None = Field(None, ge=0, le=10_000_000)

    @field_validator("job")
    @classmethod
    def _known_job(cls, job: str) -> str:
        from archlearn.jobs import JOBS

        if job not in JOBS:
            raise ArchlearnError(f"unknown job {job!r}; choose one of {sorted(JOBS)}")
        return job

    @field_validator("method")
    @classmethod
    def _registered(cls, method: str) -> str:
        if method not in names():
            raise ArchlearnError(f"unknown method {method!r}; choose one of {names()}")
        return method

    @model_validator(mode="after")
    def _job_data(self) -> RunConfig:
        from archlearn.jobs import job

        without, with_path = getattr(job(self.job), "DATA", DEFAULT_DATA)
        if "data" not in self.model_fields_set:
            self.data = with_path if self.data_path else without
        if self.data not in (without, with_path):
            raise ArchlearnError(f"job {self.job!r} reads data {without!r} or {with_path!r}, "
                                 f"not {self.data!r}")
        return self

    @model_validator(mode="after")
    def _method_options(self) -> RunConfig:
        # the run supplies the schedule lengths (the base options); the rest is the user's
        supplied = {"total_steps": 1, "steps_per_epoch": 1}
        taken = sorted(set(supplied) & set(self.options))
        if taken:
            raise ArchlearnError(f"option {taken[0]!r} is set by the run (from the epochs and "
                                 "the data); leave it out")
        parse_options(self.method, {**supplied, **self.options})
        if self.budget is not None:
            parse_budget(self.budget)
        return self


def validate_run_config(raw: Any) -> RunConfig:
    """Validate a raw mapping; raise one ``ArchlearnError`` naming the first problem."""
    if not isinstance(raw, dict):
        raise ArchlearnError(f"a run config must be a JSON object, got {type(raw).__name__}")
    try:
        config = RunConfig(**raw)
    except ArchlearnError:
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        error = err.get("ctx", {}).get("error")
        if err["type"] == "value_error" and isinstance(error, ArchlearnError):
            raise error from None
        raise ArchlearnError(f"config field {field!r}: {err['msg']}") from None
    except TypeError as exc:  # e.g. non-string keys
        raise ArchlearnError(f"invalid run config: {exc}") from None
    if config.data in ("mnist-idx", "text-file") and not config.data_path:
        raise ArchlearnError(f"config field 'data_path' is required for data {config.data!r}")
    return config


def read_run_config(path: str | Path) -> RunConfig:
    """Read and validate a JSON run config file."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ArchlearnError(f"config file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArchlearnError(f"config file {path} is not valid JSON: {exc}") from None
    return validate_run_config(raw)
