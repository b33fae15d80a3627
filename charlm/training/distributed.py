"""Data-parallel training over MPI: one run over N processes (ranks), on one machine or many.

``mpiexec -n N charlm train ...`` (or ``srun``) starts N copies of charlm; each finds that a
launcher started it (:func:`launched`) and only then imports mpi4py. The run is the one a single
process would make with the same global batch:

- rank 0 reads the corpus and the checkpoint (for --resume) and resolves the config and the
  vocabulary (a word model's counted on its training part, with its <UNK> spelling model); it
  sends the config, vocabulary, weights, optimizer moments and run state to every rank, which
  reads the same corpus (from the prepared copy rank 0 used or made, if it used one) and builds
  the same data (batches are addressed by epoch and index, so nothing else needs to travel);
- each step every rank builds the global batch (cheap: token ids) and trains on its share of the
  columns, ``parallel.split(B, N)``, drawing each column's dropout mask from (seed, step, column),
  with the loss scaled by the global number of targets; one in-place all-reduce sums the flat
  gradient buffer, and every rank then holds the same bits, so the same clipping and optimizer
  step keep the weights identical without sending them again;
- validation shares its columns among all the ranks' threads exactly as one process with that
  many threads shares them (``charlm.network.engine.Engine``) and sums the results (each column
  comes from one rank, the others add zeros), so every rank gets the same validation loss;
- what depends on a clock (the time budget, the learning rate of a timed run, when to validate)
  is decided from rank 0's clock and agreed each step, with any rank's stop request (Ctrl-C,
  SIGTERM, SIGUSR1), in one tiny all-reduce: all ranks stop together, at the same step;
- rank 0 alone prints, locks --out (``store.outputs.OutputLock``: one run writes a checkpoint at a
  time), writes it (the recurrent state carried between batches is gathered to it) and answers
  --json. The checkpoint is the single-process format: a run resumes on any
  number of ranks.

Failures end the whole job: an error that every rank meets at once (a diverged loss, a bad option
found by rank 0) is shown once by rank 0 and every rank exits with its code; any other exception
on any rank is shown by that rank, which then exits at once with its code, and the launcher
ends the other ranks, as it does when a rank is killed, so no rank waits forever in a collective.
Not ``MPI_Abort``: with it, MPICH's launcher could end the job before it had passed on the
failing rank's last line, which an exit closes and the launcher reads before it reaps the rank.
The checkpoint is written atomically, so the last one stays intact.

Bit for bit: 2 ranks of 1 thread give the weights, optimizer moments and validation history of 1
process of 2 threads: the ranks' columns are the threads' shards, and a sum of two float32 terms
does not depend on their order. (With more terms MPI does not promise an order of summation.)
"""
import os
import signal
import sys
import time
import traceback
from contextlib import contextmanager

import numpy as np

from ..store import checkpoint
from ..network import parallel
from ..config import DEFAULT_MODEL
from ..errors import CharlmError, TrainingDiverged, UsageError
from ..network.engine import Engine
from ..network.stack import Dropout
from ..text.prepared import open_corpus
from .reporter import Reporter
from .trainer import Trainer, build_dataset
from .trainer import new_trainer
from ..text import wordcorpus

INSTALL = "pip install 'charlm[mpi]'"
STOP_REASONS = ("interrupted", "steps", "no improvement", "epochs", "time")   # codes 1..5
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")   # Open MPI forwards SIGUSR1, not SIGINT/SIGTERM


def launched():
    """(rank, size) from the environment an MPI launcher or srun gives its processes, else None.
    Under sbatch without srun, Slurm sets SLURM_PROCID for the batch script itself; only a job
    step (srun) sets SLURM_STEP_NUM_TASKS."""
    for rank, size in (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                       ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS")):
        if rank in os.environ and size in os.environ:
            try:
                return int(os.environ[rank]), int(os.environ[size])
            except ValueError:
                continue
    return None


def mpi():
    """mpi4py's MPI module (importing it initialises MPI); UsageError if it is not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError("charlm runs under an MPI launcher but mpi4py is not installed: "
                         f"{INSTALL} (mpi4py and the MPICH wheel; a system MPI works too)"
                         ) from None
    return MPI


def join():
    """The :class:`Group` of this run's processes. Without mpi4py, rank 0 reports it (exit 2) and
    the other ranks exit with the same code silently."""
    rank, _ = launched()
    try:
        MPI = mpi()
    except UsageError:
        if rank == 0:
            raise
        raise SystemExit(UsageError.exit_code) from None
    return Group(MPI.COMM_WORLD, MPI)


class Group:
    """The ranks of one run: who this process is, its share of the threads and columns, and the
    few collective operations training needs."""

    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        parallel.share_cores(self._ranks_sharing_my_cores())
        self.threads = parallel.cores()
        threads = comm.allgather(self.threads)
        self.first_thread, self.total_threads = sum(threads[:self.rank]), sum(threads)

    def _ranks_sharing_my_cores(self):
        """Ranks on this machine whose CPU affinity overlaps this one's (this one included):
        MPICH leaves every rank free to run on every core, Open MPI and srun bind each to its
        own."""
        if not hasattr(os, "sched_getaffinity"):
            return 1
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        mine = os.sched_getaffinity(0)
        everyone = node.allgather(mine)
        node.Free()
        return sum(1 for cores in everyone if cores & mine)

    def columns(self, batch_size):
        """(lo, hi): this rank's columns of a batch of batch_size."""
        edges = parallel.split(batch_size, self.size)
        return int(edges[self.rank]), int(edges[self.rank + 1])

    def sum_in_place(self, array):
        """Every rank's array replaced by the sum over the ranks (a contiguous numpy array)."""
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def max_in_place(self, array):
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.MAX)

    def broadcast(self, value):
        """Rank 0's value (any picklable object), on every rank."""
        return self.comm.bcast(value, root=0)

    def first_then_others(self, work):
        """Run work on rank 0, then on the other ranks (e.g. compiling kernels into the cache
        once, which the others then load)."""
        if self.rank == 0:
            work()
        self.comm.Barrier()
        if self.rank != 0:
            work()

    @contextmanager
    def failing_together(self):
        """End the job on any failure inside the block (see the module docstring)."""
        try:
            yield
        except (AgreedError, TrainingDiverged) as e:
            if self.rank == 0:
                raise getattr(e, "error", e) from None
            raise SystemExit(e.exit_code) from None
        except SystemExit:
            raise
        except BaseException as e:
            code = 130 if isinstance(e, KeyboardInterrupt) else getattr(e, "exit_code", 1)
            who = "" if self.rank == 0 else f"rank {self.rank} of {self.size}: "
            if isinstance(e, KeyboardInterrupt):
                message = "interrupted"
            elif isinstance(e, CharlmError):
                message = str(e)
            else:           # a bug: one line still, naming where it was raised
                where = traceback.extract_tb(e.__traceback__)[-1]
                message = f"{type(e).__name__}: {e} (at {where.filename}:{where.lineno})"
            sys.stdout.flush()
            print(f"error: {who}{message}", file=sys.stderr, flush=True)
            os._exit(code)         # no atexit MPI_Finalize: it would wait for the other ranks


class AgreedError(CharlmError):
    """An error every rank knows of: rank 0's, sent to the others (``error`` on rank 0)."""

    def __init__(self, error=None, exit_code=1):
        super().__init__(str(error))
        self.error, self.exit_code = error, exit_code


# ---- the run -------------------------------------------------------------------------------------

def new_rank_trainer(group, corpus=None, out=DEFAULT_MODEL, resume=False, force=False,
                     encoding="utf-8", reporter=None, **options):
    """The :class:`DistributedTrainer` of this rank: what ``trainer.new_trainer`` builds on rank 0
    (which alone reads the checkpoint and reports), sent to every rank."""
    setup, failure = None, None
    if group.rank == 0:
        try:
            base = new_trainer(corpus, out, resume, force, encoding, reporter, **options)
            setup = (base.config, base.dataset.vocab, base.params.flat,
                     base.optimizer.moments, base.carry, base.run_state)
        except CharlmError as e:
            failure = e
    setup, code = group.broadcast((setup, failure.exit_code if failure else None))
    if code is not None:
        raise AgreedError(failure, code)
    config, vocab, params, moments, carry, run_state = setup
    if group.rank == 0:
        dataset = base.dataset
    else:       # the corpus as rank 0 left it: read as its vocabulary's tokens, prepared if large
        source = wordcorpus.reopened(open_corpus(corpus, encoding, config.mode), vocab)
        _, dataset = build_dataset(config, source, vocab)
    saved = checkpoint.TrainingState(params, moments, carry, run_state)
    trainer = DistributedTrainer(group, config, dataset, out, params, saved,
                                 reporter if group.rank == 0 else Reporter())
    if group.rank == 0:
        trainer.best = base.best
        trainer.lock, base.lock = base.lock, None       # rank 0 alone locks and writes --out
    return trainer


class DistributedTrainer(Trainer):
    """A Trainer that is one rank of a data-parallel run (see the module docstring)."""

    def __init__(self, group, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group
        self.engine = Engine(self.network, group)
        self.agreed_elapsed = self.run_state.elapsed
        self.wait_seconds, self.allreduce_seconds, self.gradient_seconds = 0.0, 0.0, 0.0
        self.steps_run = 0

    def _stop_reason(self, step_seconds):
        """The reason to stop now, the same on every rank: any rank's stop request, else rank
        0's budget. Also agrees on rank 0's clock, which the learning rate follows."""
        flags = np.zeros(3)
        flags[0] = self.stop_requested
        if self.group.rank == 0:
            reason = self._out_of_budget(step_seconds)
            flags[1] = STOP_REASONS.index(reason) + 1 if reason else 0
            flags[2] = self.elapsed
        self.group.max_in_place(flags)
        self.agreed_elapsed = float(flags[2])
        if flags[0]:
            self.stop_requested = True
            return "interrupted"
        return STOP_REASONS[int(flags[1]) - 1] if flags[1] else None

    def _time_fraction(self):
        return self.agreed_elapsed / self.config.max_time if self.config.max_time else None

    def _validation_due(self):
        return self.group.broadcast(super()._validation_due() if self.group.rank == 0 else None)

    def _batch_gradients(self):
        """This rank's share of the batch, then one all-reduce of the flat gradient buffer and
        one of the loss."""
        c, rs = self.config, self.run_state
        started = time.perf_counter()
        x, y, state = self._next_batch()
        lo, hi = self.group.columns(x.shape[1])
        count = self.network.target_count(y)
        carry = state.copy()
        loss = np.zeros(1)
        if hi > lo:
            loss[0], _, carry[:, :, lo:hi] = self.network.loss_and_gradients(
                x[:, lo:hi], y[:, lo:hi], np.ascontiguousarray(state[:, :, lo:hi]), self.grads,
                Dropout.of(c), mask_key=(c.seed, rs.step), first_column=lo, count=count)
        else:
            self.grads.flat[:] = 0.0
        # the barrier tells waiting for the slowest rank from moving the bytes (for --json)
        waiting = time.perf_counter()
        self.group.comm.Barrier()
        reducing = time.perf_counter()
        self.group.sum_in_place(self.grads.flat)
        self.wait_seconds += reducing - waiting
        self.allreduce_seconds += time.perf_counter() - reducing
        self.group.sum_in_place(loss)
        self.carry = carry      # the columns of the other ranks are theirs: gathered to save
        self.gradient_seconds += time.perf_counter() - started
        self.steps_run += 1
        return float(loss[0]), count

    def save(self):
        """Rank 0 writes the checkpoint, with every rank's columns of the carried state."""
        local = self.carry
        if local is not None:
            lo, hi = self.group.columns(local.shape[2])
            parts = self.group.comm.gather(local[:, :, lo:hi], root=0)
            if self.group.rank == 0:
                self.carry = np.concatenate(parts, axis=2)
        if self.group.rank == 0:
            super().save()
        self.carry = local

    def _catch_interrupts(self):
        """Ctrl-C, SIGTERM or SIGUSR1 on any rank: finish the step, save, and stop, all ranks
        together (MPICH's mpiexec forwards SIGINT and SIGTERM to every rank; Open MPI's mpirun
        forwards SIGUSR1). A second one ends the job at once."""
        def handler(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.reporter.notice(f"{signal.Signals(signum).name}: every rank saves the latest "
                                 "state and stops (again to quit at once)")

        previous = {name: signal.signal(getattr(signal, name), handler) for name in STOP_SIGNALS}
        return lambda: [signal.signal(getattr(signal, name), h) for name, h in previous.items()]

    def summary(self):
        """What --json adds for a distributed run: ranks, threads, and per step (means, on rank
        0): the whole gradient step, the wait for the slowest rank, the all-reduce after it."""
        steps = max(self.steps_run, 1)
        return {"ranks": self.group.size, "threads_per_rank": self.group.threads,
                "step_ms": round(1e3 * self.gradient_seconds / steps, 3),
                "wait_ms": round(1e3 * self.wait_seconds / steps, 3),
                "allreduce_ms": round(1e3 * self.allreduce_seconds / steps, 3),
                "allreduce_bytes": int(self.grads.flat.nbytes)}
