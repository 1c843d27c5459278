"""``archlearn``: the command line. Bad input prints one line and exits with status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from archlearn.errors import ArchlearnError
from archlearn.methods import names

app = typer.Typer(
    help="Learn a network's widths and depth with its weights, then shrink it for real.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse, else kept as strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ArchlearnError(f"option {pair!r} is not of the form key=value")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command()
def run(
    job: Annotated[str, typer.Argument(help="the job to run; `archlearn list` shows them")],
    out: Annotated[str, typer.Option(help="folder for results.json and plots")] = "runs/demo",
    seeds: Annotated[int, typer.Option(help="independent runs; the table shows the mean")] = 1,
    epochs: Annotated[
        int | None, typer.Option(help="epochs for every training run (lenet-mnist; default 20)")
    ] = None,
    data_path: Annotated[
        str | None, typer.Option("--data-path", help="folder of full-MNIST IDX files "
                                 "(lenet-mnist) or a text file of sentences (minilm-distill)")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="method option key=value, e.g. -o lambda1=0.004"),
    ] = None,
    method: Annotated[
        str, typer.Option(help=f"one of: {', '.join(names())} (see `archlearn list`)")
    ] = "tsrelu",
    budget: Annotated[
        str | None, typer.Option(help="size to reach, kind=value, e.g. macs=0.5 (minilm-distill)")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="training batches per model (minilm-distill)")
    ] = None,
    oneshot: Annotated[
        bool, typer.Option("--oneshot", help="compress with al.compress instead of training: "
                           "no distillation, default budget macs=0.5 (minilm-distill)")
    ] = False,
    calibration: Annotated[
        int | None, typer.Option(help="train sentences to calibrate --oneshot on, drawn with "
                                 "the seed (minilm-distill; default 512)")
    ] = None,
    model_dir: Annotated[
        str | None, typer.Option("--model-dir", help="a local BERT sentence encoder's folder "
                                 "(config.json, model.safetensors, tokenizer.json) instead of "
                                 "all-MiniLM-L6-v2 (minilm-distill)")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="where the gates start: oneshot (at al.compress's "
                                 "decision, the default) or full (all-on) (minilm-distill)")
    ] = None,
    gated: Annotated[
        float | None, typer.Option(help="share of the steps that train the gates before the "
                                   "student is shrunk and distilled dense (minilm-distill; "
                                   "default 0.05, 1 with --start full)")
    ] = None,
    baselines: Annotated[
        bool, typer.Option("--baselines", help="also distil the first 3 layers and "
                           "Torch-Pruning at archlearn's MACs, to compare (minilm-distill)")
    ] = False,
    extra: Annotated[
        int | None, typer.Option(help="unlabelled sentences from the installed packages' "
                                 "docstrings added to the training sentences (minilm-distill; "
                                 "default 0: none)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="JSON file with the same fields; replaces the flags")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Run a job, print its table, write results.json (and a widths plot where it has one)."""
    import inspect

    from archlearn.config import read_run_config, validate_run_config

    if budget is not None and "=" not in budget:
        raise ArchlearnError(f"--budget {budget!r} is not of the form kind=value, e.g. macs=0.5")
    if config is not None:
        cfg = read_run_config(config)
        if cfg.job != job:
            raise ArchlearnError(f"config file is for job {cfg.job!r}, not {job!r}")
    else:
        raw = {"job": job, "out": out, "seeds": seeds, "epochs": epochs, "data_path": data_path,
               "method": method, "options": _options(option or []),
               "budget": _options([budget]) if budget else None, "steps": steps,
               "oneshot": oneshot or None, "calibration": calibration, "model_dir": model_dir,
               "start": start, "gated": gated, "baselines": baselines or None,
               "extra": extra}
        cfg = validate_run_config({k: v for k, v in raw.items() if v is not None})
    from archlearn.jobs import job as find_job

    command = "archlearn " + " ".join(sys.argv[1:]) if sys.argv[1:] else f"archlearn run {job}"
    module = find_job(cfg.job)
    settings = {"seeds": cfg.seeds, "epochs": cfg.epochs, "dataset": cfg.data,
                "path": cfg.data_path, "progress": not quiet, "options": cfg.options,
                "method": cfg.method, "command": command, "budget": cfg.budget,
                "steps": cfg.steps, "oneshot": cfg.oneshot, "calibration": cfg.calibration,
                "model_dir": cfg.model_dir, "start": cfg.start, "gated": cfg.gated,
                "baselines": cfg.baselines or None, "extra": cfg.extra}
    accepted = inspect.signature(module.run).parameters
    refused = sorted(k for k in ("epochs", "budget", "steps", "oneshot", "calibration",
                                 "model_dir", "start", "gated", "baselines", "extra")
                     if k in cfg.model_fields_set
                     and k not in accepted)
    if refused:
        raise ArchlearnError(f"job {cfg.job!r} takes no {', '.join(refused)}")
    results = module.run(Path(cfg.out), **{k: v for k, v in settings.items()
                                           if k in accepted and v is not None})
    typer.echo(module.table(results))
    if "plot" not in results:
        typer.echo(f"wrote {Path(cfg.out) / 'results.json'}")
        return
    plot = (f" and {Path(cfg.out) / 'widths.png'}" if results.get("plot")
            else " (no widths plot: matplotlib is not installed)")
    typer.echo(f"wrote {Path(cfg.out) / 'results.json'}{plot}")


@app.command("list")
def list_() -> None:
    """List the jobs, datasets, models and methods."""
    from archlearn import data, models
    from archlearn.jobs import JOBS

    for name, (_, text) in JOBS.items():
        typer.echo(f"job      {name:<14} {text}")
    typer.echo(f"methods  {', '.join(names())}")
    typer.echo(f"data     {', '.join(data.available())}")
    typer.echo(f"models   {', '.join(models.available())}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main() -> None:
    """Entry point: one-line errors, exit status 2, no traceback."""
    try:
        app(sys.argv[1:] or ["--help"], standalone_mode=False)  # no arguments: the help, status 0
    except ArchlearnError as exc:
        typer.echo(f"archlearn: error: {_one_line(str(exc))}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("archlearn: aborted", err=True)
        sys.exit(130)
    except typer.TyperException as exc:
        # usage errors: unknown flag or command, bad or missing value (typer >= 0.29 carries its
        # own copy of click, whose exceptions all derive from TyperException)
        typer.echo(f"archlearn: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
