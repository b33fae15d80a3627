"""The cores of this machine and fanning work out over them: the one place charlm decides how many
threads a job gets and starts them for its kernels (training shards, scoring columns, sampling
workers, the gradients view's rows).

The rules: a job gets :func:`cores` threads, fewer when it has too little work to share
(:func:`shares`: at least ``min_share`` items a thread), and one thread when there is nothing to
share. The kernels release the GIL, so threads run them in parallel. While they do, each runs BLAS
single-threaded, a lone task too: the tasks already fill the cores, BLAS's own threads would
contend with them, and a share gives the same bits however it is run (:func:`fan_out`). Work
that runs alone on its thread and calls small products holds BLAS to the threads the job has
(:func:`blas_for`).
"""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import UsageError
from ..kernels.linalg import blas_threads

MIN_UNITS = 64         # the fewest hidden units a worker of a split step gets: fewer make a step
                       # too short to pay for its barriers
MAX_UNIT_WORKERS = 2   # the most: measured with two (more would meet at every step for less work)
POOL_PREFIX = "charlm"  # the names of fan_out's pool threads
_sharing = 1           # processes of a data-parallel run that share this one's cores (share_cores)
_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def cores():
    """Threads this process runs its kernels on: ``CHARLM_THREADS`` if set, else the cores it may
    run on (its CPU affinity where the platform tells it) divided among the processes of a
    data-parallel run that share them."""
    given = os.environ.get("CHARLM_THREADS")
    if given:
        if not given.isdigit() or int(given) < 1:
            raise UsageError(f"CHARLM_THREADS must be a whole number >= 1, not {given!r}")
        return int(given)
    mine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, mine // _sharing)


def shares(n, min_share=1, threads=None):
    """How many threads share n items (rows, columns, samples) when each thread should get at
    least ``min_share`` of them: 1 to ``threads`` (default :func:`cores`)."""
    threads = cores() if threads is None else threads
    return max(1, min(threads, n // min_share))


def unit_workers(hidden):
    """How many workers split the hidden units of a step of one sequence (generation, dynamic
    evaluation): :func:`shares` with ``MIN_UNITS`` each, at most ``MAX_UNIT_WORKERS``, on a POSIX
    system, where a waiting worker gives its core away (``sched_yield``); one elsewhere."""
    return shares(hidden, MIN_UNITS, min(cores(), MAX_UNIT_WORKERS)) if os.name == "posix" else 1


def blas_for(threads=1):
    """A context in which BLAS runs on ``threads`` threads: a job's BLAS calls outside
    :func:`fan_out` get the threads the job has (one, for work on a thread of its own; BLAS's
    threads would only hand each small product over and spin)."""
    return blas_threads(threads)


def share_cores(processes):
    """Tell :func:`cores` how many processes (this one included) run on this one's cores."""
    global _sharing
    _sharing = max(1, processes)


def split(n, parts):
    """Edges of ``parts`` nearly equal ranges covering range(n): (parts + 1,) ints."""
    return np.linspace(0, n, parts + 1).round().astype(int)


def fan_out(tasks, on_failure=None):
    """Call every task at once, the first in this thread and the others on a shared pool that has
    a thread for each of them (tasks may wait for each other, as sampling's workers do); return
    their results in order, or re-raise the first failure once all have ended. ``on_failure`` is
    called as soon as a task fails or this thread is interrupted, before waiting for the others:
    tasks that wait for each other are released by it (``kernels.barrier.release``).

    Every task runs BLAS on one thread, a lone task too: how many BLAS threads share a product
    can change how its sums round, and a share must give the same bits whether it runs beside
    others, alone, or in another process (one MPI rank of a data-parallel run)."""
    # a task on a pool thread runs while its caller holds BLAS at one thread: taking the setting
    # again there would wait for that caller, which waits for the task
    on_pool = threading.current_thread().name.startswith(POOL_PREFIX)
    with contextlib.nullcontext() if on_pool else blas_for(1):
        if len(tasks) == 1:
            return [tasks[0]()]
        return _fanned_out(tasks, on_failure)


def _fanned_out(tasks, on_failure):
    others = tasks[1:] if on_failure is None else [_calling_on_failure(task, on_failure)
                                                    for task in tasks[1:]]
    pool = _pool_with(len(others))
    futures = []
    try:
        futures = [pool.submit(task) for task in others]
        first = tasks[0]()
    except BaseException:
        if on_failure is not None:
            on_failure()
        raise
    finally:
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [first] + [f.result() for f in futures]


def _calling_on_failure(task, on_failure):
    def run():
        try:
            return task()
        except BaseException:
            on_failure()
            raise
    return run


def _pool_with(threads):
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < threads:
            if _pool is not None:
                _pool.shutdown(wait=False)     # its threads end once their tasks have
            _pool = ThreadPoolExecutor(threads, thread_name_prefix=POOL_PREFIX)
            _pool_size = threads
        return _pool
