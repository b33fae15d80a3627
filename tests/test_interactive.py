"""The interactive chooser: its session logic in process (probabilities as `charlm score` gives
them, pick, draw, undo, temperature, the end at <EOS>), the refusal without a terminal, and the
whole command driven through a real terminal: tmux, keys sent, the screen read back (skipped
without tmux, unless CHARLM_REQUIRE_TMUX is set, as in CI, where that is a failure)."""
import math
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from charlm.generation.interactive import RUN, Chooser, respond
from charlm.kernels.draw import row_after
from charlm.text.vocab import visible
from charlm.text.words import is_word, split

from conftest import charlm_command
from tiny_models import TEXT, make_model, make_word_model, save_model


def test_the_choices_are_the_model_s_next_character_probabilities():
    model = make_model("lstm", hidden=16)
    chooser = Chooser(model, prime="the ")
    top = chooser.top()
    assert len(top) == 9 and [p for _, _, p in top] == sorted((p for _, _, p in top), reverse=True)
    p_unk = math.exp(chooser.log_p[1])
    for token, label, p in top[:3]:
        assert label == model.vocab.tokens[token]
        per_char = model.score("the " + label, per_char=True).per_char
        # at temperature 1: the model's probability, renormalised without <UNK> (never drawn)
        assert p == pytest.approx(math.exp(per_char[-1][1]) / (1 - p_unk), rel=1e-5)


def test_pick_draw_undo_and_temperature():
    model = make_model("gru", hidden=16)
    chooser = Chooser(model, prime="fox", seed=4)
    first = chooser.top()[1]
    assert chooser.pick(2) and chooser.text == "fox" + model.vocab.tokens[first[0]]
    assert not chooser.pick(10)
    assert chooser.draw(5) == 5 and len(chooser.text) == 9
    assert chooser.undo() and chooser.text == "fox" + model.vocab.tokens[first[0]]
    assert chooser.undo() and chooser.text == "fox" and not chooser.undo()
    # after undo the model's state is back too: the same choices as at the start
    assert chooser.top() == Chooser(model, prime="fox").top()
    chooser.cooler(), chooser.cooler()
    assert chooser.temperature == 0.8
    for _ in range(20):
        chooser.cooler()
    assert chooser.temperature == 0.0 and chooser.top()[0][2] == 1.0
    assert chooser.draw(3) == 3
    assert chooser.text == "fox" + model.sample(prime="fox", temperature=0, length=3)[0]


def test_the_same_seed_draws_the_same_text():
    model = make_model("rnn", hidden=16)
    one, two, other = Chooser(model, seed=9), Chooser(model, seed=9), Chooser(model, seed=10)
    assert one.draw(30) == two.draw(30) == other.draw(30) == 30
    assert one.text == two.text != other.text


def test_eos_ends_the_text_in_lines_mode_and_undo_reopens_it():
    model = make_model("lstm", hidden=8, mode="lines", eos_bias=40.0)
    chooser = Chooser(model, prime="Al")
    assert chooser.top()[0][1] == "<EOS>"
    assert chooser.pick(1) and chooser.ended and chooser.text == "Al"
    assert chooser.draw(5) == 0 and "ended" in respond(chooser, "1")
    assert chooser.undo() and not chooser.ended
    stream = Chooser(make_model("lstm", hidden=8, eos_bias=40.0))
    assert stream.draw(2) == 2 and stream.text == "\n\n"      # written as newlines


def test_keys():
    chooser = Chooser(make_model("gru", hidden=8), seed=1)
    assert respond(chooser, "+") == "temperature 1.10"
    assert respond(chooser, "-") == "temperature 1.00"
    assert "drew 20 characters" in respond(chooser, "r") and len(chooser.text) == RUN
    assert respond(chooser, "u") == "undone" and chooser.text == ""
    assert respond(chooser, "\x7f") == "nothing to undo"
    assert respond(chooser, "x").startswith("keys:")


def test_no_terminal_is_one_line_and_exit_2(tmp_path):
    path = save_model(make_model(), tmp_path / "m.npz")
    result = subprocess.run(charlm_command() + ["sample", "--interactive", "--model", str(path)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--interactive needs a terminal" in result.stderr
    clash = subprocess.run(charlm_command() + ["sample", "--interactive", "--beam", "2",
                                               "--model", str(path)],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert clash.returncode == 2 and "--beam does not apply to --interactive" in clash.stderr


# ---- a real terminal ----------------------------------------------------------------------------

DEADLINE = 120.0            # seconds for the screen to show what is expected (a first compile)


class Terminal:
    """A detached tmux session on a private socket, running a shell."""

    def __init__(self, folder):
        self.tmux = ["tmux", "-S", str(folder / "tmux.sock")]
        subprocess.run(self.tmux + ["new-session", "-d", "-s", "t", "-x", "100", "-y", "40",
                                    "bash --norc --noprofile"], check=True)

    def run_interactive(self, model, *options):
        """Type `charlm sample --interactive --model MODEL OPTIONS...` (options as the shell reads
        them), then the command that prints its exit status as EXIT=N."""
        command = " ".join(charlm_command() + ["sample", "--interactive", "--model", str(model),
                                               *options])
        self.send(command + "; echo EXIT=$?", "Enter")

    def send(self, *keys):
        subprocess.run(self.tmux + ["send-keys", "-t", "t", *keys], check=True)

    def screen(self):
        return subprocess.run(self.tmux + ["capture-pane", "-p", "-t", "t"], check=True,
                              capture_output=True, text=True).stdout

    def wait_for(self, pattern):
        """The screen once it matches pattern (a regex), polled until DEADLINE."""
        end = time.monotonic() + DEADLINE
        while True:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            if time.monotonic() > end:
                pytest.fail(f"the screen never showed {pattern!r}; it shows:\n{screen}")
            time.sleep(0.05)        # polling interval, not a wait for the event

    def close(self):
        subprocess.run(self.tmux + ["kill-server"], check=False)


def text_panel(screen):
    """The text inside the Text panel (the line after its top border)."""
    lines = screen.splitlines()
    top = next(i for i, line in enumerate(lines) if "Text" in line and "╭" in line)
    return lines[top + 1].strip("│ ").rstrip()


def choices(screen):
    """{key: character} of the choices listed on the screen."""
    return dict(re.findall(r"^\s+(\d)\s+(\S)\s+\d+\.\d%", screen, re.M))


def require_tmux():
    """Skip without tmux, or fail when CHARLM_REQUIRE_TMUX is set (as .ci/run sets it)."""
    if shutil.which("tmux") is None:
        if os.environ.get("CHARLM_REQUIRE_TMUX"):
            pytest.fail("CHARLM_REQUIRE_TMUX is set but `tmux` is not on PATH: apt-get install tmux")
        pytest.skip("needs tmux (apt-get install tmux); set CHARLM_REQUIRE_TMUX=1 to make this a "
                    "failure")


def test_a_person_at_a_terminal_picks_draws_undoes_and_quits(tmp_path):
    require_tmux()
    model = make_model("lstm", hidden=16, chars="abcdefghij", eos_bias=-10.0)
    path = save_model(model, tmp_path / "m.npz")
    term = Terminal(tmp_path)
    try:
        term.run_interactive(path, "--prime", "ab", "--seed", "3")
        screen = term.wait_for(r"Next character[\s\S]*\n\s+9\s")
        assert "temperature 1.00" in screen and text_panel(screen) == "ab▌"
        expected = [model.vocab.tokens[t] for t, _, _ in Chooser(model, prime="ab").top()]
        shown = choices(screen)
        assert [shown[str(k)] for k in range(1, 10)] == expected
        term.send("2")
        screen = term.wait_for(r"picked")
        assert text_panel(screen) == f"ab{expected[1]}▌"
        term.send("+")
        term.wait_for(r"temperature 1\.10")
        term.send("r")
        screen = term.wait_for(r"drew 20 characters")
        after_run = text_panel(screen)
        assert len(after_run) == 3 + 20 + 1
        term.send("u")
        screen = term.wait_for(r"undone")
        assert text_panel(screen) == f"ab{expected[1]}▌"
        term.send("d")
        screen = term.wait_for(r"drew 1 character\b")
        final = text_panel(screen)[:-1]
        assert len(final) == 4
        term.send("q")
        screen = term.wait_for(r"(?m)^EXIT=\d+")
        lines = screen.splitlines()
        end = lines.index("EXIT=0")              # the command's exit status, printed after it
        assert lines[end - 1] == final           # the text, printed on leaving
    finally:
        term.close()


def test_a_line_is_never_blank_and_never_holds_a_newline():
    model = make_model("lstm", hidden=8, mode="lines", chars="Alma\nBo\n", eos_bias=40.0)
    model.network.params["out.b"][model.vocab.index["\n"]] += 40.0   # a vocabulary of before
    labels = [label for _, label, _ in Chooser(model).top()]
    assert "<EOS>" not in labels and "↵" not in labels and "\n" not in labels
    chooser = Chooser(model, seed=0)
    assert chooser.draw(3) == 2 and len(chooser.text) == 1 and chooser.ended
    running = Chooser(model, seed=0, stop_at_eos=False)
    assert running.draw(9) == 9 and "\n\n" not in running.text and running.text[0] != "\n"


def test_the_text_ends_at_its_length_and_undo_reopens_it():
    for model in (make_model("gru", hidden=8), make_word_model()):
        chooser = Chooser(model, prime="the", seed=2, length=5)
        assert chooser.draw(3) == 3 and not chooser.ended
        assert chooser.draw(RUN) == 2 and chooser.ended and "--length" in respond(chooser, "d")
        split = model.vocab.split
        assert len(split(chooser.text)) - len(split("the")) == 5     # five tokens after it
        assert chooser.undo() and not chooser.ended and chooser.draw(RUN) == 2
    assert Chooser(make_model("gru", hidden=8), prime="the", length=0).draw(5) == 0


# ---- a word model: the next word token --------------------------------------------------------

def test_a_word_model_offers_what_reads_back_as_the_tokens_chosen():
    model = make_word_model(TEXT)
    vocab = model.vocab
    after_word = Chooser(model, prime="the", seed=2)
    assert after_word.top() and not any(is_word(vocab.tokens[t]) for t, _, _ in after_word.top())
    after_space = Chooser(model, prime="the ", seed=2)
    offered = [vocab.tokens[t] for t, _, _ in after_space.top()]
    assert any(is_word(t) for t in offered) and " " not in offered
    p = after_space.probabilities()
    # at temperature 1: the model's next-token probabilities over what may follow a space
    per_token = model.score("the ", per_char=True)
    allowed = after_space.allowed[row_after(after_space.allowed, vocab.index[" "])]
    logits = after_space.log_p
    expected = np.where(allowed, np.exp(logits - logits[allowed].max()), 0.0)
    np.testing.assert_allclose(p, expected / expected.sum(), rtol=1e-6, atol=1e-12)
    assert per_token.per_char                       # the prime was read as tokens
    assert after_space.draw(40) == 40
    # every token drawn reads back as one (<EOS> written as a newline, which TEXT lacks)
    assert len(split(after_space.text)) == 2 + 40
    assert set(vocab.unknown(after_space.text)) <= {"\n"}
    assert "drew 20 tokens" in respond(after_space, "r")
    assert after_space.label(vocab.index[" "]) == "␣ space"


def test_a_person_picks_words_at_a_terminal(tmp_path):
    require_tmux()
    model = make_word_model(TEXT, eos_bias=-10.0)
    path = save_model(model, tmp_path / "w.npz")
    term = Terminal(tmp_path)
    try:
        term.run_interactive(path, "--prime", "'the '", "--seed", "3")
        screen = term.wait_for(r"Next token[\s\S]*\n\s+9\s")
        assert text_panel(screen) == "the ▌"
        expected = [model.vocab.tokens[t] for t, _, _ in Chooser(model, prime="the ").top()]
        shown = dict(re.findall(r"^\s+(\d)\s+(\S+)\s+\d+\.\d%", screen, re.M))
        assert [shown[str(k)] for k in range(1, 10)] == [visible(t) for t in expected]
        word = next(k for k, t in enumerate(expected, start=1) if is_word(t))
        term.send(str(word))
        screen = term.wait_for(r"picked")
        assert text_panel(screen) == f"the {expected[word - 1]}▌"
        term.send("d")
        screen = term.wait_for(r"drew 1 token\b")
        final = text_panel(screen)[:-1]
        assert final.startswith(f"the {expected[word - 1]}") and len(final) > 4 + len(
            expected[word - 1])
        term.send("q")
        screen = term.wait_for(r"(?m)^EXIT=\d+")
        lines = screen.splitlines()
        assert lines[lines.index("EXIT=0") - 1] == final.rstrip()     # tmux drops end spaces
    finally:
        term.close()
