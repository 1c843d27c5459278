"""Run independent benchmark jobs in worker processes and count the CPU they used.

The long benchmarks (structure prediction per cell type, genetic search per data set) are
single-threaded loops; on 2 cores two of them run side by side.

>>> import time
>>> start = time.process_time()
>>> sorted(r for _, r in completed(abs, [-2, 1], jobs=1))
[1, 2]
>>> cpu_seconds(start) >= 0
True
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any


class _WithSources:
    """``fn`` run in a worker, returning also the source files the worker imported: the
    parent's results file then names them (``archlearn.provenance.absorb``)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> tuple[Any, dict[str, str | None]]:
        from archlearn.provenance import worker_files

        return self.fn(*args), worker_files()


def completed(fn: Callable[..., Any], items: Iterable[Any], jobs: int,
              *args: Any) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item, *args))`` as each worker finishes, ``jobs`` processes at a time.

    Spawned (not forked) workers: torch's thread pools do not survive a fork safely. The
    modules each worker imported count as this run's sources (its results file hashes them).
    """
    from archlearn.provenance import absorb

    with ProcessPoolExecutor(max_workers=max(jobs, 1), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_WithSources(fn), item, *args): item for item in items}
        for future in as_completed(futures):
            result, files = future.result()
            absorb(files)
            yield futures[future], result


def cpu_seconds(start: float) -> float:
    """CPU seconds of this process since ``start`` (``time.process_time()``) plus every joined
    worker's: what the run costs on an idle machine (wall time counts other users' load)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() - start + children.ru_utime + children.ru_stime
