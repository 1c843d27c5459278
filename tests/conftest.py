"""Shared test settings: one thread (2-core CI shares them), deterministic seeds; torchvision
importable on the CPU torch before any test module imports transformers or timm."""

import pytest
import torch

from archlearn.compat import torchvision_importable

# the dev extra's torchvision is a CUDA build: without this, importing it (and so transformers
# and timm) fails next to the CPU torch; see archlearn.compat
torchvision_importable()


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


# what a fresh interpreter does not print by default (its warnings filter ignores them)
_SILENT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@pytest.fixture
def archlearn_main(monkeypatch, capsys, caplog):
    """``archlearn ARGS`` through its entry point, ``archlearn.cli.main``, in this process:
    ``archlearn_main(*args)`` returns (exit status, stdout, stderr), as a subprocess would
    without paying a fresh ``import torch``. An exception other than SystemExit (a traceback in
    a real process) propagates and fails the test; so does a warning or a log record that a real
    process would print on stderr (unless ``stderr_only_from_archlearn=False``: a test that reads
    no stderr). What only a real process shows (import-time output, the installed script) is
    each CLI test file's one subprocess case."""
    import logging
    import sys
    import warnings

    from archlearn import cli

    def call(*args: str, stderr_only_from_archlearn: bool = True) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["archlearn", *args])
        capsys.readouterr()
        caplog.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cli.main()
                code = 0  # returned: the process exits with status 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        if stderr_only_from_archlearn:
            printed = [str(w.message) for w in caught if not issubclass(w.category, _SILENT)]
            assert not printed, (args, printed)
            logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert not logged, (args, logged)
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def quick_latency(monkeypatch):
    """Latencies timed in 3 interleaved rounds after 1 warm-up call instead of the protocol's 30
    and 3 (``archlearn.structure.measure.time_interleaved``, through which ``compare_latency``
    and ``al.measure`` time): for the end-to-end runs whose tests check that timings are there
    and consistent (a median, its spread, the speed-up over the baseline of the same timing),
    not their values. The protocol itself is tests/test_latency.py's."""
    from archlearn.structure import measure

    real = measure.time_interleaved

    def three_rounds(calls, *, rounds=30, warmup=3, block_ms=10.0):
        return real(calls, rounds=min(rounds, 3), warmup=min(warmup, 1), block_ms=block_ms)

    monkeypatch.setattr(measure, "time_interleaved", three_rounds)


# independent subprocesses run at once (the machines the suite runs on have 2 cores)
AHEAD_WORKERS = 2


@pytest.fixture(scope="module")
def ahead(request):
    """Independent subprocesses of a module's tests, started together when the first of those
    tests runs and run ``AHEAD_WORKERS`` at a time, so their fresh interpreters overlap instead
    of queueing; each test then reads its own ``subprocess.run`` result. Only the waiting is
    shared: every command is still its own process, with its own arguments and time-out.

    ``ahead.start(key, args, **run_kwargs)`` (a key already started is left alone),
    ``ahead.result(key)`` -> ``subprocess.CompletedProcess``; ``ahead.selected(param)``: the
    values of parameter ``param`` of this module's tests that were collected, and
    ``ahead.collected(name)``: whether test function ``name`` of this module was (start only
    what will be read). At the module's end, commands not yet started are dropped and running
    ones are waited for (each ends by its time-out at the latest)."""
    import subprocess
    from concurrent.futures import Future, ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=AHEAD_WORKERS, thread_name_prefix="ahead")
    jobs: dict[str, Future] = {}

    class Ahead:
        def start(self, key: str, args, **kwargs) -> None:
            if key not in jobs:
                jobs[key] = pool.submit(subprocess.run, args, **kwargs)

        def result(self, key: str) -> subprocess.CompletedProcess:
            return jobs[key].result()

        def _mine(self) -> list:
            return [item for item in request.session.items
                    if getattr(item, "module", None) is request.module]

        def selected(self, param: str) -> list:
            return [item.callspec.params[param] for item in self._mine()
                    if hasattr(item, "callspec") and param in item.callspec.params]

        def collected(self, test: str) -> bool:
            return any(getattr(item, "originalname", item.name) == test for item in self._mine())

    yield Ahead()
    pool.shutdown(wait=True, cancel_futures=True)
