"""Running one function over many curves: in this process, on local worker processes, or on a Dask cluster.

Every per-curve fit is independent and seeded from the user's seed and the curve's name, so the results do not
depend on where or in which order they run. Each worker process builds the model once, on its first curve
(loading its compiled form from the on-disk cache of :mod:`palm_bayes.compile_cache`, or compiling it if this
machine never did), and re-uses it for every further curve it gets (:data:`palm_bayes.engine._COMPILED` is per
process).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from .errors import InputError


def available_cores() -> int:
    """Cores this process may use (the CPU affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def check_jobs(jobs: int | None) -> int:
    """``jobs`` as a worker count: ``None`` or 0 means every available core; negative values are an error."""
    if jobs is None or jobs == 0:
        return available_cores()
    if jobs < 0:
        raise InputError(f"--jobs {jobs}: expected a positive number of worker processes (0 = every core)")
    return int(jobs)


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], jobs: int = 1,
              scheduler: str | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(tasks[index]))`` as each task finishes.

    Parameters
    ----------
    fn : callable
        A module-level (picklable) function of one task.
    tasks : sequence
        Picklable task descriptions.
    jobs : int
        Local worker processes; 1 runs everything in this process (no pickling, no start-up cost).
    scheduler : str, optional
        Address of a running Dask distributed scheduler (e.g. ``tcp://10.0.0.5:8786``); the tasks then run on its
        workers and ``jobs`` is ignored. Needs the ``dask`` extra (``pip install 'palm-bayes[dask]'``).
    """
    if scheduler is not None:
        yield from _run_dask(fn, tasks, scheduler)
        return
    if jobs <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            yield i, fn(t)
        return
    # "spawn": the parent may hold sampler threads, which a forked child must not inherit
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx) as pool:
        futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _run_dask(fn: Callable[[Any], Any], tasks: Sequence[Any], scheduler: Any) -> Iterator[tuple[int, Any]]:
    """The tasks on a Dask distributed cluster (``scheduler``: an address, or a ``Client`` / ``LocalCluster``)."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise InputError("--dask-scheduler needs Dask distributed: pip install 'palm-bayes[dask]'") from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, set_as_default=False) if own else scheduler
    except OSError as e:
        raise InputError(f"--dask-scheduler {scheduler}: cannot reach the scheduler ({e})") from None
    try:
        futures = client.map(fn, list(tasks), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in dask_completed(futures, loop=client.loop):
            yield index[fut.key], fut.result()
    finally:
        if own:
            client.close()
