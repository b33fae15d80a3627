"""The cores of this machine and fanning work out over them: the one place charlm starts threads
for its kernels (training shards, scoring columns, sampling workers).

The kernels release the GIL, so threads run them in parallel. While they do, each runs BLAS
single-threaded: the tasks already fill the cores, and BLAS's own threads would contend with them.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .kernels.linalg import blas_threads

_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def cores():
    """Cores this process may run on (its CPU affinity where the platform tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def split(n, parts):
    """Edges of ``parts`` nearly equal ranges covering range(n): (parts + 1,) ints."""
    return np.linspace(0, n, parts + 1).round().astype(int)


def fan_out(tasks):
    """Call every task at once, the first in this thread and the others on a shared pool that has
    a thread for each of them (tasks may wait for each other, as sampling's workers do); return
    their results in order, or re-raise the first failure once all have ended."""
    if len(tasks) == 1:
        return [tasks[0]()]
    pool = _pool_with(len(tasks) - 1)
    with blas_threads(1):
        futures = [pool.submit(task) for task in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [first] + [f.result() for f in futures]


def _pool_with(threads):
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < threads:
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="charlm")
            _pool_size = threads
        return _pool
