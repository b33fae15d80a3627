"""``charlm sample --interactive``: the next token (a character, or a word model's word token)
chosen by hand, one step at a time.

The screen shows the text so far and the model's most probable next tokens with their
probabilities at the current temperature. Keys:

    1-9   take that token                d   let the model draw one
    r     let the model draw a run (RUN tokens, fewer if the text ends first)
    u     undo the last action (a pick, a draw or a whole run); Backspace too
    + -   temperature up or down by 0.1 (0 is greedy: the draws take the most probable)
    q     quit and print the text (Ctrl-D and Ctrl-C too)

:class:`Chooser` holds the session without the terminal (the text, the model's state, the next
token's log-probabilities, the undo history); each step runs the no-grad forward path
(``charlm.network.engine.Engine``) on the new tokens only. The tokens offered are those sampling
may draw after the last one (:func:`charlm.text.vocab.drawable`: for a word model, no word right
after a word), as sampling draws them. :func:`run_interactive` draws it with rich
on the terminal's alternate screen and reads single keys in cbreak mode; on exit the normal screen
comes back and the text is printed there.
"""
import os
import sys
from dataclasses import dataclass

import numpy as np

from ..kernels.draw import row_after
from ..network.engine import Engine, softmax
from ..text.vocab import EOS, EOS_ID, drawable, visible

TOP = 9                    # tokens listed, one per digit key
RUN = 20                   # tokens drawn by `r`
TEMPERATURE_STEP = 0.1
MAX_TEMPERATURE = 5.0
SHOWN_CHARS = 1500         # the end of a long text that the screen shows
SHOWN = {" ": "␣ space", "\n": "⏎ newline", "\t": "⇥ tab"}
KEYS = "1-9 pick · d draw · r draw a run · u undo · +/- temperature · q quit"


@dataclass
class Snapshot:
    """What undo restores."""
    text: str
    state: np.ndarray
    log_p: np.ndarray
    ended: bool
    last: int | None
    where: int = 0
    count: int = 0


class Chooser:
    """An interactive session on ``model``, started from ``prime``. ``stop_at_eos`` (default:
    lines mode) makes <EOS> end the text; otherwise it is written as a newline, as in sampling.
    ``label``: text of this label, for a model trained with labels (:mod:`charlm.text.labels`).
    ``length``: the text ends once that many tokens follow the prime (None: never).
    ``match``: a :class:`charlm.generation.pattern.Pattern` (from ``for_model``) the text must
    match within ``length`` characters after the prime: only the characters that keep it on a
    path to a match are offered or drawn, and the text ends when it can go no further."""

    def __init__(self, model, prime="", temperature=1.0, seed=None, stop_at_eos=None, label=None,
                 match=None, length=None):
        from ..network.inputs import with_label
        from .options import default_stop_at_eos
        from ..text.labels import label_row
        self.model, self.vocab = model, model.vocab
        self.engine = Engine(with_label(model.network, label_row(model, label)))
        self.stop_at_eos = default_stop_at_eos(model) if stop_at_eos is None else stop_at_eos
        self.allowed = drawable(model.vocab, model.config.mode, prime)
        self.temperature = float(temperature)
        self.rng = np.random.default_rng(seed)
        self.prime = prime
        self.text = prime
        self.history = []
        self.match, self.length = match, length
        self.count = 0                  # tokens after the prime
        self.ended = length is not None and length <= 0
        self.where = 0 if match is None else match.start      # the state of match's automaton
        self.state = self.engine.zero_state(1)
        self.log_p = None
        primed = self.vocab.encode(prime)
        self.last = int(primed[-1]) if len(primed) else None    # the last token read, if any
        self._read(np.concatenate([[EOS_ID], primed]))

    def _read(self, ids):
        """Advance the model over token ids; keep the log-probabilities of the next token."""
        x = np.asarray(ids, np.int32).reshape(-1, 1)
        self.log_p = self.engine.log_softmax(x, self.state)[-1, 0]         # (V,)

    def probabilities(self):
        """(V,) the next token's probabilities at the current temperature, over the tokens that
        sampling may draw here (:func:`charlm.text.vocab.drawable`; temperature 0: all on the most
        probable of them)."""
        z = self.log_p.copy()
        z[~self.allowed[0 if self.last is None else row_after(self.allowed, self.last)]] = -np.inf
        if self.match is not None:
            left = self.length - self.count
            z[~self.match.choices(self.where, left, self.match.eos_ends)] = -np.inf
        if self.temperature == 0.0:
            p = np.zeros_like(z)
            p[int(np.argmax(z))] = 1.0
            return p
        return softmax(z / self.temperature)

    def top(self, k=TOP):
        """The k most probable next tokens as (token id, label, probability), most probable
        first; ties in token order."""
        p = self.probabilities()
        order = np.argsort(-p, kind="stable")[:k]
        return [(int(i), self.label(int(i)), float(p[i])) for i in order if p[i] > 0]

    def label(self, token):
        if token == EOS_ID:
            return EOS
        text = self.vocab.tokens[token]
        return SHOWN.get(text) or visible(text)

    def pick(self, rank):
        """Take the rank-th (1-based) token of :meth:`top`; False if there is none."""
        choices = self.top()
        if self.ended or not 1 <= rank <= len(choices):
            return False
        self._save()
        self._append(choices[rank - 1][0])
        return True

    def draw(self, n=1):
        """Let the model draw up to n tokens at the current temperature (fewer if the text ends);
        returns how many it drew. One undo takes them all back."""
        if self.ended:
            return 0
        self._save()
        drawn = 0
        while drawn < n and not self.ended:
            p = self.probabilities()
            self._append(int(self.rng.choice(len(p), p=p)))
            drawn += 1
        return drawn

    def undo(self):
        """Restore the text as it was before the last pick or draw; False if there is none."""
        if not self.history:
            return False
        snap = self.history.pop()
        self.text, self.state, self.log_p, self.ended = snap.text, snap.state, snap.log_p, snap.ended
        self.last, self.where, self.count = snap.last, snap.where, snap.count
        return True

    def warmer(self, step=TEMPERATURE_STEP):
        self.temperature = round(min(MAX_TEMPERATURE, self.temperature + step), 6)

    def cooler(self, step=TEMPERATURE_STEP):
        self.temperature = round(max(0.0, self.temperature - step), 6)

    def _save(self):
        self.history.append(Snapshot(self.text, self.state.copy(), self.log_p, self.ended,
                                     self.last, self.where, self.count))

    def _append(self, token):
        if token == EOS_ID and self.stop_at_eos:
            self.ended = True
            return
        self.text += "\n" if token == EOS_ID else self.vocab.tokens[token]
        self.last = token
        self.count += 1
        self._read([token])
        if self.match is not None:
            self.where = int(self.match.table[self.where, token])
        if self.length is not None and self.count >= self.length:
            self.ended = True       # the length is used up (with a pattern: the text is a match)

    def pattern_status(self):
        """A line on the pattern's state: whether the text is a match, and how many characters
        it needs at least to become one."""
        m = self.match
        need = int(m.distance[self.where])
        state = (f"state {self.where} of {m.num_states}: "
                 + ("a full match" if m.accepting[self.where] else
                    f"{need} more character{'s' if need != 1 else ''} at least to a match"))
        return f"--match {m.regex}  ·  {state}"


# ---- the terminal ----------------------------------------------------------------------------

def run_interactive(model, prime="", temperature=1.0, seed=None, stop_at_eos=None, label=None,
                    match=None, length=None):
    """Run a session on this terminal until the user quits; then print the text on stdout."""
    from rich.console import Console

    chooser = Chooser(model, prime, temperature, seed, stop_at_eos, label, match, length)
    console = Console(highlight=False)
    message = f"choose the next {model.vocab.noun}"
    with raw_keys() as read_key, console.screen() as screen:
        while True:
            screen.update(render(chooser, model, message))
            key = read_key()
            if key in ("q", "\x04", None):
                break
            message = respond(chooser, key)
    sys.stdout.write(chooser.text + ("" if chooser.text.endswith("\n") else "\n"))
    sys.stdout.flush()


ENDED = "the text has ended (<EOS>, or --length used up): u to undo, q to quit"


def respond(chooser, key):
    """Apply one key to the session; returns the status line to show."""
    if key.isdigit() and key != "0":
        if chooser.ended:
            return ENDED
        return "picked" if chooser.pick(int(key)) else f"there is no choice {key}"
    if key in ("d", "r"):
        if chooser.ended:
            return ENDED
        drawn = chooser.draw(1 if key == "d" else RUN)
        return f"the model drew {drawn} {chooser.vocab.noun}{'s' if drawn != 1 else ''}"
    if key in ("u", "\x7f", "\x08"):
        return "undone" if chooser.undo() else "nothing to undo"
    if key in ("+", "="):
        chooser.warmer()
        return f"temperature {chooser.temperature:.2f}"
    if key in ("-", "_"):
        chooser.cooler()
        return f"temperature {chooser.temperature:.2f}"
    return f"keys: {KEYS}"


def render(chooser, model, message):
    """The screen: title, the text so far, the top tokens with bars, the keys."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    c = model.config
    title = Text.assemble(("charlm interactive", "bold"), f"  {model.path or ''}  "
                          f"{c.cell} {c.num_layers}x{c.hidden_size}, {c.mode} mode, "
                          f"{c.tokens}  ·  ",
                          (f"temperature {chooser.temperature:.2f}", "bold cyan"))
    text = Text()
    shown = chooser.text[-SHOWN_CHARS:]
    prime_part = max(0, len(chooser.prime) - (len(chooser.text) - len(shown)))
    text.append(shown[:prime_part], style="dim")
    text.append(shown[prime_part:], style="bold")
    text.append(" <EOS>" if chooser.ended else "▌", style="magenta")
    unit = model.vocab.noun
    table = Table(title=f"Next {unit}", title_justify="left", box=None, pad_edge=False)
    table.add_column("key", justify="right", style="bold yellow")
    table.add_column("char" if unit == "character" else "token", min_width=10)
    table.add_column("prob", justify="right")
    table.add_column("", min_width=30)
    if not chooser.ended:
        for k, (_, label, p) in enumerate(chooser.top(), start=1):
            table.add_row(str(k), label, f"{100 * p:5.1f}%", "█" * round(30 * p))
    status = [Text(chooser.pattern_status(), style="cyan")] if chooser.match is not None else []
    return Group(title, Panel(text, title="Text", title_align="left"), *status, table, Text(""),
                 Text(message, style="italic"), Text(KEYS, style="dim"))


class raw_keys:
    """Single keys from the terminal on stdin, without echo or waiting for Enter (cbreak mode:
    Ctrl-C still interrupts); the terminal's settings come back on exit. Entered, it gives a
    function returning the next key, or None at the end of input or on Ctrl-C. Keys typed
    faster than they are handled come one at a time; an escape sequence (an arrow key) comes as
    one string, which no command uses."""

    def __enter__(self):
        import termios
        import tty
        self.fd = sys.stdin.fileno()
        self.saved = termios.tcgetattr(self.fd)
        self.pending = []
        tty.setcbreak(self.fd)
        return self.read

    def read(self):
        if not self.pending:
            try:
                data = os.read(self.fd, 64)
            except KeyboardInterrupt:
                return None
            if not data:
                return None
            text = data.decode("utf-8", "replace")
            self.pending = [text] if text.startswith("\x1b") else list(text)
        return self.pending.pop(0)

    def __exit__(self, *exc):
        import termios
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        return False
