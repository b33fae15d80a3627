"""Two or more threads meeting at a barrier inside Numba kernels: generation's step
(``kernels.stack_step``) and the sequence pass of one sequence whose hidden units are split among
workers (``kernels.recurrent``).

Each worker owns a counter in ``sync`` (int64, ``SYNC_STRIDE`` slots apart: one cache line each)
and announces each barrier it reaches by storing the barrier's number there; the counters only
increase, so a caller keeps one running count of phases across kernel calls. If a worker fails,
:func:`release` lets the others through (``charlm.network.parallel.fan_out``'s ``on_failure``).
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

KERNEL = dict(cache=True, error_model="numpy", nogil=True)

SYNC_STRIDE = 16                    # int64 slots between two workers' counters: one cache line each
SPINS_BEFORE_YIELD = 2000
RELEASED = np.iinfo(np.int64).max    # a count past every barrier


# Numba has no atomics; these emit LLVM's atomic load and store, so that a spinning worker re-reads
# the counter each time and sees the other worker's writes (release/acquire) in order.

@intrinsic
def _load_acquire(typingctx, array, index):
    if array.dtype != types.int64:
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], arr, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(array, types.intp), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    if array.dtype != types.int64:
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], arr, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.void(array, types.intp, types.int64), codegen


@intrinsic
def _yield_cpu(typingctx):
    # A worker whose partner has been preempted gives its core away instead of spinning through
    # a whole time slice.
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(**KERNEL)
def barrier(sync, worker, workers, phase):
    """Wait until every worker has announced ``phase`` in ``sync`` (its counters only increase)."""
    if workers == 1:
        return
    _store_release(sync, worker * SYNC_STRIDE, phase)
    for other in range(workers):
        spins = 0
        while _load_acquire(sync, other * SYNC_STRIDE) < phase:
            spins += 1
            if spins > SPINS_BEFORE_YIELD:
                _yield_cpu()


def release(sync):
    """Let every worker through every barrier from now on: what the others do when one of them
    has failed (and will never reach the next barrier), so that they run to their end rather
    than wait forever. A worker's later announcements overwrite its own counter only, never a
    released one of another."""
    sync[:] = RELEASED
