"""What a training run needs before it starts: memory, and the least time that fits one step.

Both are checked by ``trainer.new_trainer`` after the corpus is read and before anything large is
allocated, so that a run that cannot work is refused in one line instead of ending in a
traceback, the kernel's OOM killer, or a run that trains nothing.

Memory, in bytes (float32: 4 bytes a number). P weights, V tokens, L layers of H units, G gate
blocks (1 rnn, 3 gru, 4 lstm), a batch of B sequences of T steps split over S threads, M
optimizer moments (Adam 2, RMSprop 1, SGD 0, and one for --ema-decay's average), D stacks (2 for
a bidirectional model, else 1)::

    weights      4 P (3 + M + A + (S - 1))
                 the weights, their gradient and the best weights so far; the optimizer's
                 moments and the average; with the average (A = 1), the latest weights set
                 aside while validation reads it; one more gradient buffer for each thread
                 after the first
    activations  4 T B D (L (G H + 4 H) + G H + H) + 4 T B 2 V
                 per layer (``network.stack.Stack``): the gates (G H), the outputs h (H), the
                 LSTM's cell states or the GRU's r*h (H), the outputs after dropout (H) and the
                 dropout masks (H); once per stack the GRU's dz (G H, counted for every cell) and
                 the gradient reaching the top outputs (H); the logits and their gradient (2 V)

The sum leaves out what does not grow with the model: the interpreter and compiled kernels, and
the corpus, which is already in memory (or memory-mapped) when this is checked.

Time: a step reads B T characters and costs about three forward passes (the backward pass is
about twice the forward); a forward pass costs, per character, 2 G H (D_in + H) for each layer
(D_in = H above layer 0; layer 0's input product is a row gather and costs nothing) and 2 D H V
for the output. Validation is one forward pass over its characters. The least time divides these
counts by ``PEAK_FLOPS_PER_CORE`` times the cores: a speed no run reaches, so the check refuses
only a budget that certainly cannot fit one step and one validation.
"""
import math
import os
import resource

from ..config import optimizer_moments
from ..errors import UsageError
from ..network.celltypes import cell as cell_named

FLOAT_BYTES = 4
# Twice the best single-precision matrix product measured per core (the roof of docs/results.md's
# training-speed table, a 2048^3 sgemm on both cores). A bound, not an estimate.
PEAK_FLOPS_PER_CORE = 200e9


def training_bytes(config, vocab_size, parameters, threads):
    """(total, weights, activations): the bytes a training run allocates (module docstring)."""
    G = cell_named(config.cell).gates
    H, L, V = config.hidden_size, config.num_layers, vocab_size
    M = len(optimizer_moments(config))
    D = 2 if config.bidirectional else 1
    T, B = config.seq_len, config.batch_size
    A = 1 if config.ema_decay else 0
    weights = FLOAT_BYTES * parameters * (3 + M + A + max(threads, 1) - 1)
    activations = FLOAT_BYTES * T * B * (D * (L * (G * H + 4 * H) + G * H + H) + 2 * V)
    return weights + activations, weights, activations


def available_bytes():
    """(bytes, what limits them): the least of the memory the system has available
    (MemAvailable), the address space this process may still map (ulimit -v) and what its
    cgroup may still use (memory.max); None where none of them can be read."""
    limits = []
    meminfo = _fields("/proc/meminfo")
    if "MemAvailable" in meminfo:
        limits.append((meminfo["MemAvailable"], "available on this machine"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = _fields("/proc/self/status").get("VmSize", 0)
        limits.append((max(soft - used, 0), "left under this shell's ulimit -v"))
    cgroup = _cgroup_room()
    if cgroup is not None:
        limits.append((cgroup, "left under this process's cgroup memory.max"))
    return min(limits) if limits else None


def _fields(path):
    """'Name: 123 kB' lines of a /proc file, in bytes."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                    fields[name] = int(parts[0]) * 1024
    except OSError:
        pass
    return fields


def _cgroup_room():
    """memory.max less memory.current of this process's cgroup (v2), or None."""
    try:
        with open("/proc/self/cgroup") as f:
            relative = next((line.strip().split(":", 2)[2] for line in f
                             if line.startswith("0::")), None)
        if relative is None:
            return None
        folder = os.path.join("/sys/fs/cgroup", relative.lstrip("/"))
        with open(os.path.join(folder, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(folder, "memory.current")) as f:
            return max(int(limit) - int(f.read().strip()), 0)
    except (OSError, ValueError, IndexError):
        return None


def check_memory(config, vocab_size, parameters, threads, available=None):
    """Raise UsageError in one line when the run needs more memory than is available."""
    room = available_bytes() if available is None else available
    if room is None:
        return
    need, weights, activations = training_bytes(config, vocab_size, parameters, threads)
    free, where = room
    if need <= free:
        return
    raise UsageError(
        f"a {config.num_layers}x{config.hidden_size} {config.cell} "
        f"({parameters:,} weights) needs about {_size(need)} of memory to train "
        f"({_size(weights)} for its weights, gradients and optimizer state, {_size(activations)} "
        f"for a batch of {config.batch_size}x{config.seq_len}); {_size(free)} is {where}: "
        "choose a smaller --hidden, --layers or --batch-size")


def _size(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"


def forward_flops_per_char(config, vocab_size):
    """FLOP of one forward pass per character (module docstring)."""
    G = cell_named(config.cell).gates
    H, L = config.hidden_size, config.num_layers
    D = 2 if config.bidirectional else 1
    recurrent = 2 * G * H * H + (L - 1) * 2 * G * H * (2 * H)
    return D * recurrent + 2 * D * H * vocab_size


def least_seconds(config, vocab_size, val_tokens, cores):
    """(step, validation): seconds that one training step and one validation take at least."""
    speed = PEAK_FLOPS_PER_CORE * max(cores, 1)
    per_char = forward_flops_per_char(config, vocab_size)
    step = 3 * per_char * config.batch_size * config.seq_len / speed
    return step, per_char * val_tokens / speed


def check_time(config, vocab_size, val_tokens, cores):
    """Raise UsageError when --max-time cannot fit one step and one validation, naming the least
    budget that can."""
    if config.max_time is None:
        return
    step, validation = least_seconds(config, vocab_size, val_tokens, cores)
    need = step + validation
    if need <= config.max_time:
        return
    shown = f"{math.ceil(need * 10) / 10:g}s" if need < 60 else f"{math.ceil(need / 60):d}m"
    what = (f"one training step ({step:.2g}s) and one validation of {val_tokens:,} characters "
            f"({validation:.2g}s)" if val_tokens else f"one training step ({step:.2g}s)")
    fix = (", or fewer validation characters (--val-max-chars)" if validation > step else
           ", or a smaller --batch-size or --seq-len")
    raise UsageError(f"--max-time {config.max_time:g}s cannot fit {what} of this model, even at "
                     f"the fastest this machine could run them: give --max-time {shown} or "
                     f"more{fix}")
