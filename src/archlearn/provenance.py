"""What produced a result file: the command, the code's git commit, versions, data, machine.

Every results JSON carries this block, so a figure can be traced to the commit and command that
wrote it, and a timing to the load on the machine when it was taken. The block also holds a hash
of each source file the run used: the ``archlearn`` modules and the benchmark modules (the
script included) that the process had imported when it wrote the file, each hashed as it was
when ``archlearn.provenance`` was first imported. A reader can then tell whether today's files
are still the ones that produced the figures (``changed_sources``), whichever commit the checkout
says it is at, and an edit to a module a run never imported leaves its result current.

A results file under ``benchmarks/results/`` is written only from a clean checkout
(``check_results_write``, called by ``archlearn.io.write_json``), unless the run was told
``--allow-dirty`` (``add_allow_dirty``) or ``ARCHLEARN_ALLOW_DIRTY=1`` is set; the block then
says so.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from archlearn.errors import ArchlearnError

if TYPE_CHECKING:
    from archlearn.data import Splits

_SOURCE = Path(__file__).resolve().parent
# the checkout holding src/archlearn (None for an installed package): paths are recorded
# relative to it, e.g. "src/archlearn/io.py" and "benchmarks/budgets.py"
_CHECKOUT: Path | None = _SOURCE.parent.parent if _SOURCE.parent.name == "src" else None
_BASE = _CHECKOUT or _SOURCE.parent
ALLOW_DIRTY_ENV = "ARCHLEARN_ALLOW_DIRTY"
# outputs of the benchmarks: changes there do not make a tree dirty (a run rewrites its JSON)
OUTPUTS = ("benchmarks/results", "docs/RESULTS.md")
# the libraries whose versions a result records (read from the installed metadata: no import)
VERSIONS = ("torch", "torch-pruning", "transformers", "timm", "torchvision", "numpy", "optuna",
            "scikit-learn")
HASH_CHARS = 16


class DirtyTreeError(ArchlearnError):
    """A results file would be written into ``benchmarks/results/`` from a dirty checkout."""


def file_hash(path: str | os.PathLike) -> str:
    """The first 16 hex digits of the file's sha256."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:HASH_CHARS]


def package_files(base: str | os.PathLike) -> list[str]:
    """Every ``*.py`` of archlearn under the checkout (or site-packages folder) ``base``, as
    sorted paths relative to it: ``src/archlearn/...`` in a checkout."""
    base = Path(base)
    package = base / "src" / "archlearn" if (base / "src" / "archlearn").is_dir() \
        else base / "archlearn"
    return sorted(p.relative_to(base).as_posix() for p in package.rglob("*.py"))


def _benchmark_files(base: Path | None) -> list[str]:
    if base is None:
        return []
    return sorted(p.relative_to(base).as_posix() for p in (base / "benchmarks").glob("*.py"))


def hash_files(base: str | os.PathLike, files: Iterable[str]) -> dict[str, str | None]:
    """``{path: hash}`` of the files (relative to ``base``); None for a file that is gone."""
    base = Path(base)
    out: dict[str, str | None] = {}
    for name in files:
        try:
            out[name] = file_hash(base / name)
        except OSError:
            out[name] = None
    return out


# The files as the run found them: taken when this module is first imported (benchmarks and jobs
# import it at their top, before any work), so a file edited or committed while a run goes on is
# recorded as it was when the run loaded it, and the change is recorded too.
_AT_START = hash_files(_BASE, [*package_files(_BASE), *_benchmark_files(_CHECKOUT)])


# Which process's blocks ``with_current_sources`` may re-record: a block from another run (a part
# of a merged file, a worker's) keeps the files its own process used.
_RUN = f"{os.getpid()}-{time.time_ns()}"
# ``scope`` of a source record listing only the files the run imported; a record without it
# (written before) lists every file of the package, and a file added since makes it stale too.
LOADED = "loaded"


def loaded_files() -> list[str]:
    """The source files this process imported: each module of ``archlearn`` and each benchmark
    module (a ``*.py`` directly under ``<checkout>/benchmarks``, the script run with
    ``python -m`` included), as sorted paths relative to the checkout.

    >>> "src/archlearn/provenance.py" in loaded_files() or _CHECKOUT is None
    True
    """
    folder = None if _CHECKOUT is None else _CHECKOUT / "benchmarks"
    out = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if path.suffix != ".py":
            continue
        if path.is_relative_to(_SOURCE) or (folder is not None and path.parent == folder):
            out.add(path.relative_to(_BASE).as_posix())
    return sorted(out)


# Files that this run's worker processes imported ({path: hash as the worker found it}): a
# module a worker imports lazily is not in this process's sys.modules, yet the run used it.
_WORKERS: dict[str, str | None] = {}


def worker_files() -> dict[str, str | None]:
    """In a worker process: ``{path: hash}`` of the files it imported (``loaded_files``), as
    they were when it started, for its parent to ``absorb``.

    >>> "src/archlearn/provenance.py" in worker_files() or _CHECKOUT is None
    True
    """
    return {f: _AT_START[f] if f in _AT_START else file_hash(_BASE / f) for f in loaded_files()}


def absorb(files: dict[str, str | None]) -> None:
    """In the parent: count the files a worker imported (``worker_files``) as this run's, so
    the results file it writes names them too."""
    for name, digest in files.items():
        _WORKERS.setdefault(name, digest)


def source_record() -> dict[str, Any]:
    """``{"scope": "loaded", "run": id, "files": {path: hash}, "changed_during_run": [paths]}``:
    every source file this process or its workers (``absorb``) imported, hashed as it was when
    the run started; the paths among them whose content differs now (edited or removed
    since), or that a worker found different from the parent."""
    files = sorted({*loaded_files(), *_WORKERS})
    recorded = {f: _AT_START[f] if f in _AT_START else _WORKERS.get(f) or file_hash(_BASE / f)
                for f in files}
    now = hash_files(_BASE, files)
    changed = [f for f in files if now[f] != recorded[f]
               or (f in _WORKERS and _WORKERS[f] != recorded[f])]
    return {"scope": LOADED, "run": _RUN, "files": recorded, "changed_during_run": changed}


def with_current_sources(payload: Any) -> Any:
    """``payload`` with the source record of each provenance block this process made taken
    again, now: a benchmark may build its block before the work that imports more modules,
    and the file must name every module the run had loaded when it was written. Blocks of
    other runs (a merged file's earlier parts) are left as they are; ``payload`` is not
    modified (what changes is copied).

    >>> block = provenance("c")
    >>> block["sources"]["files"] = {}
    >>> with_current_sources({"provenance": block})["provenance"]["sources"]["files"] != {}
    True
    """
    def ours(block: Any) -> bool:
        return isinstance(block, dict) and (block.get("sources") or {}).get("run") == _RUN

    def refresh(block: dict) -> dict:
        out = {**block, "sources": source_record()} if ours(block) else block
        if isinstance(block.get("parts"), list):
            out = {**out, "parts": [refresh(p) if isinstance(p, dict) else p
                                    for p in block["parts"]]}
        return out

    if isinstance(payload, dict):
        return {k: refresh(v) if k == "provenance" and isinstance(v, dict)
                else with_current_sources(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [with_current_sources(v) for v in payload]
    return payload


def changed_sources(recorded: dict[str, str | None], base: str | os.PathLike,
                    whole_package: bool = False) -> list[str]:
    """The recorded files whose content differs in the checkout ``base`` today (or that are gone
    from it), each as ``"path (changed)"`` or ``"path (removed)"``; with ``whole_package`` (a
    record of every file of the package, as written before ``loaded_files``) also the archlearn
    files added since, as ``"path (added)"``. Empty when the files are the ones the run used.

    >>> import tempfile
    >>> base = Path(tempfile.mkdtemp()); (base / "src" / "archlearn").mkdir(parents=True)
    >>> _ = (base / "src" / "archlearn" / "a.py").write_text("x = 1")
    >>> record = hash_files(base, package_files(base))
    >>> changed_sources(record, base)
    []
    >>> _ = (base / "src" / "archlearn" / "a.py").write_text("x = 2")
    >>> changed_sources(record, base)
    ['src/archlearn/a.py (changed)']
    """
    now = hash_files(base, recorded)
    out = [f"{f} ({'removed' if now[f] is None else 'changed'})"
           for f in recorded if now[f] != recorded[f]]
    if whole_package:
        package = {f for f in recorded if not f.startswith("benchmarks/")}
        out += [f"{f} (added)" for f in package_files(base) if f not in package]
    return out


def _git(where: str | os.PathLike, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.rstrip("\n") if done.returncode == 0 else None


def git_state(where: str | os.PathLike = _SOURCE) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None, "changes": [paths]}`` of the checkout
    holding ``where``.

    ``dirty`` is True when tracked files differ from the commit (untracked files do not count,
    nor the benchmarks' own outputs, ``OUTPUTS``); ``changes`` names them (``git status
    --porcelain``). Outside a git checkout (an installed wheel) the commit and flag are None.

    >>> sorted(git_state())
    ['changes', 'commit', 'dirty']
    """
    commit = _git(where, "rev-parse", "HEAD")
    top = _git(where, "rev-parse", "--show-toplevel")
    if commit is None or top is None:
        return {"commit": None, "dirty": None, "changes": []}
    status = _git(top, "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                  *(f":(top,exclude){p}" for p in OUTPUTS))
    changes = [] if status is None else [line[3:] for line in status.splitlines() if line]
    return {"commit": commit, "dirty": None if status is None else bool(changes),
            "changes": changes}


def versions() -> dict[str, str]:
    """The installed version of each library of ``VERSIONS`` that is installed."""
    out = {}
    for name in VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def dirty_allowed() -> bool:
    """Whether this run may write results from a dirty tree (``--allow-dirty`` or
    ``ARCHLEARN_ALLOW_DIRTY=1``)."""
    return os.environ.get(ALLOW_DIRTY_ENV, "").strip() not in ("", "0")


def provenance(command: str, splits: Splits | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance block of a results file (``extra`` adds the run's own settings)."""
    from archlearn import __version__

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    argv = getattr(sys, "orig_argv", sys.argv)
    out: dict[str, Any] = {
        "command": command,
        "command_line": shlex.join(["python", *argv[1:]]),
        "git": git_state(),
        "allow_dirty": dirty_allowed(),
        "archlearn": __version__,
        "torch": torch.__version__,
        "versions": versions(),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} threads",
        "cpus": os.cpu_count(),
        "load_average_1min": None if load is None else round(load[0], 2),
        "sources": source_record(),
    }
    if splits is not None:
        out["data"] = splits.record()
    return {**out, **extra}


def merged(*blocks: dict[str, Any] | None) -> dict[str, Any]:
    """One provenance block for a file that joins the rows of several runs: the last block, with
    every run's block (parts of parts flattened, repeats dropped) under ``"parts"``, so the
    report can check each of them.

    >>> m = merged({"command": "a"}, {"command": "b"})
    >>> m["command"], [p["command"] for p in m["parts"]]
    ('b', ['a', 'b'])
    """
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not block:
            continue
        for part in block.get("parts") or [{k: v for k, v in block.items() if k != "parts"}]:
            if part not in parts:
                parts.append(part)
    if not parts:
        raise ValueError("merged() needs at least one provenance block")
    return {**parts[-1], "parts": parts}


def results_checkout(path: str | os.PathLike) -> Path | None:
    """The checkout whose ``benchmarks/results/`` holds ``path``, or None when it is elsewhere."""
    for folder in Path(path).resolve().parents:
        if folder.name == "results" and folder.parent.name == "benchmarks":
            return folder.parent.parent
    return None


def check_results_write(path: str | os.PathLike) -> None:
    """Refuse (``DirtyTreeError``) to write ``path`` into a checkout's ``benchmarks/results/``
    while tracked files of that checkout have local changes, unless ``dirty_allowed()``: a
    result must be what the code at one commit produces."""
    checkout = results_checkout(path)
    if checkout is None or dirty_allowed():
        return
    state = git_state(checkout)
    if state["dirty"]:
        shown = ", ".join(state["changes"][:5]) + (", ..." if len(state["changes"]) > 5 else "")
        raise DirtyTreeError(
            f"refusing to write {path}: tracked files of {checkout} have local changes "
            f"({shown}), so the result would not be what the code at commit "
            f"{(state['commit'] or '?')[:10]} produces. Commit them (or run from a clean "
            f"clone), or pass --allow-dirty ({ALLOW_DIRTY_ENV}=1) to write it anyway: the "
            "report then marks it stale.")


class _AllowDirty(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        os.environ[ALLOW_DIRTY_ENV] = "1"  # seen by write_json, and by worker processes
        setattr(namespace, self.dest, True)


def add_allow_dirty(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a benchmark's parser ``--allow-dirty``: write results into benchmarks/results/ even
    from a tree with local changes (recorded; the report marks such results stale)."""
    parser.add_argument("--allow-dirty", action=_AllowDirty, nargs=0, default=False,
                        help="write into benchmarks/results/ even though tracked files have "
                             "local changes (recorded; the report marks the result stale); "
                             f"also {ALLOW_DIRTY_ENV}=1")
    return parser
