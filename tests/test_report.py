"""``charlm report``: the page's content and escaping, the command, and the page as a person sees it:
opened from the file in a real headless Chromium, which must log no error and make no request
beyond the file, and whose in-page forward pass must give charlm's next-character probabilities.

The browser tests need ``chromium`` on PATH (Debian's package). Without it they are skipped with
the reason, unless CHARLM_REQUIRE_BROWSER is set (as in CI), where its absence is a failure.
"""
import base64
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import charlm
from charlm.store import checkpoint
from charlm.api import load
from charlm.store.checkpoint import Checkpoint
from charlm.config import Config
from charlm.network.stack import FlatArrays, init_parameters, parameter_shapes
from charlm.views import report, svg
from charlm.text.vocab import Vocab
from conftest import NAMES, charlm_command, run_charlm

TEXT = 'Anna said: "the cat (and the dog) sat on a mat."\nBob ran to its bed; <b>&amp;</b>\n'
SECTIONS = ("card", "curves", "samples", "surprise", "neurons", "gradients", "sampler")
CELLS = ("rnn", "gru", "lstm")


def random_model(path, cell, hidden=16, layers=2, mode="stream", seed=0):
    """A randomly initialised checkpoint: enough to hold a forward pass to another."""
    vocab = Vocab.from_text(TEXT)
    params = FlatArrays(parameter_shapes(cell, len(vocab), hidden, layers))
    init_parameters(params, cell, np.random.default_rng(seed))
    config = Config(cell=cell, hidden_size=hidden, num_layers=layers, mode=mode, dropout=0.0)
    checkpoint.save(path, Checkpoint(config.validate(), vocab, params))
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: checkpoint path}: a random 2-layer model of each cell (stream mode) and a small LSTM
    trained on names (lines mode, with a validation history)."""
    folder = tmp_path_factory.mktemp("models")
    paths = {cell: random_model(folder / f"{cell}.npz", cell, seed=i) for i, cell in enumerate(CELLS)}
    corpus = folder / "names.txt"
    corpus.write_text("\n".join(NAMES * 6) + "\n", encoding="utf-8")
    paths["names"] = str(folder / "names.npz")
    charlm.train(str(corpus), out=paths["names"], hidden_size=24, num_layers=2, batch_size=8,
                 seq_len=16, steps=60, seed=3)
    return paths


@pytest.fixture(scope="module")
def pages(models, tmp_path_factory):
    """{name: (path of the page, Page)}: each model's page, float32 weights, and the trained
    model's page in float16 and with TEXT as its text."""
    folder = tmp_path_factory.mktemp("pages")
    text_file = folder / "text.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    built = {}
    for name in CELLS + ("names",):
        built[name] = report.build(models[name], str(text_file), precision="float32")
    built["names-float16"] = report.build(models["names"], precision="float16")
    built["lstm-float16"] = report.build(models["lstm"], str(text_file), precision="float16")
    out = {}
    for name, page in built.items():
        path = folder / f"{name}.html"
        report.write(str(path), page.html)
        out[name] = (path, page)
    return out


def page_data(html):
    """The JSON that the page's script reads."""
    found = re.search(r'<script type="application/json" id="charlm-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


# ---- the page's text ----------------------------------------------------------------------------

def test_every_section_is_in_the_page(pages):
    html = pages["names"][1].html
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert "<svg" in html and "validation" in html          # the curves were drawn


def test_the_page_refers_to_nothing_outside_itself(pages):
    for _, page in pages.values():
        html = page.html
        assert not re.search(r'\b(src|href|action|srcset)\s*=\s*"(?!#)', html)
        assert "url(" not in html and "@import" not in html
        assert "default-src 'none'" in html


def test_json_in_the_page_cannot_close_its_script_element():
    data = {"text": "</script><script>alert(1)</script><!-- & -->", "n": [1.5, 2]}
    text = report.json_for_script(data)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == data


def test_text_is_escaped_everywhere(pages):
    html = pages["lstm"][1].html
    body = html.split("</header>", 1)[1].split('<script type="application/json"', 1)[0]
    assert "<b>" not in body and "&lt;" in body
    assert page_data(html)["text"]["examples"] == [TEXT[:report.TEXT_CHARS]]


def test_weights_in_the_page_are_the_checkpoints(models, pages):
    model = load(models["gru"])
    data = page_data(pages["gru"][1].html)["model"]["weights"]
    assert data["precision"] == "float32"
    for name, shape in model.network.params.shapes:
        stored = np.frombuffer(base64.b64decode(data["arrays"][name]["data"]), "<f4").reshape(shape)
        np.testing.assert_array_equal(stored, model.network.params[name])


def test_float16_bound_is_the_largest_change_of_a_probability(models, pages):
    model = load(models["lstm"])
    page = pages["lstm-float16"][1]
    error = report.rounding_error(model.network, model.vocab, [TEXT], "float16")
    assert 0 < error < 1e-2
    assert page.bound == pytest.approx(error + report.ARITHMETIC_BOUND)
    assert report.rounding_error(model.network, model.vocab, [TEXT], "float32") == 0.0


def test_lines_mode_maps_each_line_as_an_example(models, tmp_path):
    model = load(models["names"])
    text = tmp_path / "few.txt"
    text.write_text("Anna\n\nBob\nCarla\n", encoding="utf-8")
    examples, source = report.report_text(model, str(text), "utf-8", 1)
    assert examples == ["Anna", "Bob", "Carla"] and source == "few.txt"


def test_long_text_is_cut_and_the_page_says_so(models, tmp_path):
    model = load(models["lstm"])
    text = tmp_path / "long.txt"
    text.write_text(TEXT * 100, encoding="utf-8")
    examples, source = report.report_text(model, str(text), "utf-8", 1)
    assert examples == [(TEXT * 100)[:report.TEXT_CHARS]]
    assert f"first {report.TEXT_CHARS:,} characters" in source


def test_ticks_are_round_and_cover_the_range():
    assert svg.ticks(0.13, 0.92) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.ticks(0, 1744) == [0, 500, 1000, 1500, 2000]
    assert svg.log_ticks(0.003, 0.9) == pytest.approx([0.001, 0.01, 0.1, 1.0])
    assert svg.log_ticks(0.03, 0.9) == pytest.approx([0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
    assert svg.log_ticks(1e-7, 2.0)[0] == 1e-7 and svg.log_ticks(1e-7, 2.0)[-1] == 10.0


# ---- the command --------------------------------------------------------------------------------

def test_command_writes_the_page_and_reports_it(models, tmp_path):
    out = tmp_path / "page.html"
    done = run_charlm("report", "--model", models["names"], "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["bytes"] == out.stat().st_size and facts["weights"] == "float16"
    assert facts["bound"] > report.ARITHMETIC_BOUND and "sample" in facts["text_source"]
    assert "charlm report" in out.read_text(encoding="utf-8")


def test_a_file_name_that_is_not_utf8_reaches_the_page_escaped(models, tmp_path):
    odd = os.path.join(os.fsencode(tmp_path), b"\xff.npz")
    shutil.copy(models["names"], odd)
    out = tmp_path / "page.html"
    done = subprocess.run(charlm_command() + [b"report", b"--model", odd, b"-o", bytes(out)],
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert "\\udcff.npz" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("args, code, pattern", [
    (["--model", "missing.npz"], 4, "no checkpoint at missing.npz"),
    (["--text", "missing.txt"], 3, "no such file: missing.txt"),
    (["--weights", "int8"], 2, "--weights"),
    (["-o", "no/such/folder/page.html"], 2, "cannot write no/such/folder/page.html"),
    (["-o", "."], 2, "cannot write .: it is a folder"),
])
def test_command_errors_are_one_line(models, args, code, pattern):
    if "--model" not in args:
        args = ["--model", models["rnn"]] + args
    done = run_charlm("report", *args)
    assert done.returncode == code
    assert pattern in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


# ---- in a browser -------------------------------------------------------------------------------

class Browser:
    """Headless Chromium driven over the DevTools protocol (websocket-client). Every page it opens
    records what a person would not see: console messages, uncaught exceptions, log entries and
    every request the page makes."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--remote-debugging-port=0"]

    def __init__(self, executable):
        import websocket
        self.profile = tempfile.mkdtemp(prefix="charlm-chromium-")
        self.process = subprocess.Popen(
            [executable, *self.FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in self.process.stderr:          # waits for the line that names the endpoint
            lines.append(line)
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                break
        else:
            raise RuntimeError("chromium ended without opening DevTools:\n" + "".join(lines))
        self.ws = websocket.create_connection(found.group(1), timeout=120, suppress_origin=True,
                                              enable_multithread=False)
        self.next_id = 0
        self.events = []

    def send(self, method, session=None, **params):
        """Send a command and wait for its answer; events that arrive meanwhile are kept."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method, session):
        """Wait for an event of this session."""
        while True:
            for k, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(k)
            self.events.append(json.loads(self.ws.recv()))

    def open(self, path):
        """Open a file in a new tab, with everything recorded, and wait for it to load."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session)
        self.send("Page.navigate", session, url=Path(path).resolve().as_uri())
        self.wait_for("Page.loadEventFired", session)
        return Tab(self, session, Path(path).resolve().as_uri())

    def close(self):
        self.ws.close()
        self.process.terminate()
        self.process.wait(timeout=60)
        shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    def __init__(self, browser, session, url):
        self.browser, self.session, self.url = browser, session, url

    def evaluate(self, expression):
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = self.browser.send("Runtime.evaluate", self.session, expression=expression,
                                   awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self):
        """What went wrong in this tab so far: console errors and warnings, exceptions, error
        log entries, and requests for anything but the page's own file."""
        self.evaluate("0")             # a round trip: the events before it have arrived
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event["method"], event["params"]
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log: {params['entry']['text']}")
            elif method == "Network.requestWillBeSent" and params["request"]["url"] != self.url:
                found.append(f"request: {params['request']['url']}")
        return found


def chromium():
    """The chromium executable, or a skip (a failure when CHARLM_REQUIRE_BROWSER is set)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CHARLM_REQUIRE_BROWSER"):
            pytest.fail("CHARLM_REQUIRE_BROWSER is set but `chromium` is not on PATH: install "
                        "Debian's package (apt-get install -y chromium)")
        pytest.skip("`chromium` is not on PATH (apt-get install -y chromium); set "
                    "CHARLM_REQUIRE_BROWSER=1 to make this a failure")
    pytest.importorskip("websocket", reason="websocket-client (the test extra) drives the browser")
    return found


@pytest.fixture(scope="module")
def browser():
    b = Browser(chromium())
    yield b
    b.close()


def test_the_harness_sees_a_request_and_a_console_error(browser, tmp_path):
    """The checks below can fail: a page that fetches and logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><img src="http://example.com/a.png">'
                    '<script>console.error("something broke")</script>', encoding="utf-8")
    problems = browser.open(page).problems()
    assert any(p.startswith("request: http://example.com/a.png") for p in problems), problems
    assert any("something broke" in p for p in problems), problems


@pytest.mark.parametrize("name", ["names-float16", "lstm"])
def test_page_opens_without_errors_or_requests_and_shows_every_section(browser, pages, name):
    tab = browser.open(pages[name][0])
    headings = tab.evaluate("Array.from(document.querySelectorAll('section')).map("
                            "s => [s.id, s.querySelector('h2').textContent, s.offsetHeight])")
    assert [h[0] for h in headings] == list(SECTIONS)
    assert all(height > 50 for _, _, height in headings), headings
    assert tab.evaluate("document.querySelectorAll('#surprise .map span[title]').length") > 10
    assert tab.problems() == []


@pytest.mark.parametrize("cell", CELLS + ("names",))
def test_in_page_probabilities_are_charlms(browser, models, pages, cell):
    """The page's forward pass against charlm's (the path `charlm score` takes), every
    next-character distribution along the text, float32 weights: within 1e-4. Random networks of
    each cell, and the trained one."""
    model = load(models[cell])
    tab = browser.open(pages[cell][0])
    in_page = np.array(tab.evaluate(f"charlmReport.distributions({json.dumps(TEXT)})"))
    expected = report.next_token_probabilities(model.network, model.vocab.encode(TEXT))
    assert in_page.shape == expected.shape == (len(TEXT) + 1, len(model.vocab))
    assert np.abs(in_page - expected).max() < 1e-4
    assert tab.problems() == []


def test_in_page_probabilities_match_charlm_score_per_char(browser, models, pages):
    """The probability of each character of the text, as `charlm score --per-char` prints it."""
    done = run_charlm("score", "--model", models["lstm"], "--per-char", "--json", TEXT)
    per_char = json.loads(done.stdout)["results"][0]["per_char"]
    tab = browser.open(pages["lstm"][0])
    in_page = tab.evaluate(f"charlmReport.distributions({json.dumps(TEXT)})")
    ids = load(models["lstm"]).vocab.encode(TEXT)
    for t, entry in enumerate(per_char):
        assert abs(in_page[t][ids[t]] - math.exp(entry["log_prob"])) < 1e-4, (t, entry)


def test_float16_page_within_its_stated_bound(browser, models, pages):
    """float16 weights: the JavaScript pass gives charlm's probabilities for the rounded weights
    to 1e-4, and charlm's for the checkpoint within the bound the page states."""
    path, page = pages["lstm-float16"]
    model = load(models["lstm"])
    tab = browser.open(path)
    in_page = np.array(tab.evaluate(f"charlmReport.distributions({json.dumps(TEXT)})"))
    ids = model.vocab.encode(TEXT)
    rounded = report.rounded_network(model.network, "float16")
    assert np.abs(in_page - report.next_token_probabilities(rounded, ids)).max() < 1e-4
    stated = page_data(page.html)["model"]["bound"]
    assert np.abs(in_page - report.next_token_probabilities(model.network, ids)).max() <= stated
    assert f"{stated:.1e}" in tab.evaluate("document.getElementById('sampler').textContent")


def test_in_page_sampler_draws_from_the_vocabulary_and_repeats_with_its_seed(browser, pages):
    path, _ = pages["names-float16"]
    tab = browser.open(path)
    draw = ("(async () => { document.getElementById('seed').value = '7';"
            " document.getElementById('draw').click(); await charlmReport.drawing();"
            " return document.getElementById('sampler-output').textContent; })()")
    first, second = tab.evaluate(draw), tab.evaluate(draw)
    assert first and first == second
    vocab = set(tab.evaluate("charlmReport.vocab"))
    assert set(first) <= vocab and "\n" not in first        # lines mode stops at <EOS>
    bars = tab.evaluate("document.querySelectorAll('#next-chars .bar').length")
    assert bars > 0
    assert tab.problems() == []


def test_neuron_browser_colours_the_text_by_the_unit_picked_and_names_units_on_hover(browser,
                                                                                      models, pages):
    path, page = pages["lstm"]
    tab = browser.open(path)
    spans = "document.querySelectorAll('#neuron-text span')"
    assert tab.evaluate(f"{spans}.length") == len(TEXT)
    tab.evaluate("(() => { const u = document.getElementById('unit'); u.value = '3';"
                 " u.dispatchEvent(new Event('change')); })()")
    colours = tab.evaluate(f"Array.from({spans}, s => s.style.background)")
    acts = neurons_of(models["lstm"])[-1, 0, :, 3]                # top layer, h, unit 3
    reddest = int(np.argmax(acts))
    bluest = int(np.argmin(acts))
    assert rgb(colours[reddest])[0] > rgb(colours[reddest])[2]    # more red than blue
    assert rgb(colours[bluest])[2] > rgb(colours[bluest])[0]
    tab.evaluate(f"{spans}[{reddest}].dispatchEvent(new MouseEvent('mouseover', {{bubbles: true}}))")
    listed = tab.evaluate("Array.from(document.querySelectorAll('#neuron-hover button'), "
                          "b => b.textContent)")
    assert len(listed) == 8 and all(text.startswith("unit ") for text in listed)
    ranking = page_data(page.html)["neurons"]["ranking"]
    buttons = tab.evaluate("document.querySelectorAll('#ranking button').length")
    assert buttons == len(ranking) > 0
    assert tab.problems() == []


def rgb(colour):
    """[r, g, b] of a CSS 'rgb(r, g, b)'."""
    return [int(v) for v in re.findall(r"\d+", colour)]


def neurons_of(path):
    from charlm.views import neurons
    return neurons.activations(load(path), TEXT)


def test_gradient_plot_is_views_gradients_over_the_text_s_pieces(models):
    """The page's curve (and charlm gradients' over a lines model's lines) averages the pieces
    read from the zero state pair by pair: every (t, k) pair of every piece weighs the same."""
    from charlm.views import gradients
    model = load(models["gru"])
    ids = model.vocab.encode(TEXT)
    norms, counts = gradients.mean_norms(model.network, [ids[:20], ids[20:]], report.MAX_DISTANCE)
    first, n1 = gradients.distance_norms(model.network, ids[:20], report.MAX_DISTANCE)
    second, n2 = gradients.distance_norms(model.network, ids[20:], report.MAX_DISTANCE)
    np.testing.assert_array_equal(counts, n1 + n2)
    k = 5
    assert norms[k] == pytest.approx((first[k] * n1[k] + second[k] * n2[k]) / (n1[k] + n2[k]))
    assert np.isnan(norms[len(ids) - 20]) and counts[len(ids) - 20] == 0


def test_escaped_text_is_shown_as_text(browser, pages):
    tab = browser.open(pages["lstm"][0])
    shown = tab.evaluate("document.querySelector('#surprise .map').textContent")
    assert "<b>&amp;</b>" in shown
    assert tab.evaluate("document.querySelectorAll('#surprise b').length") == 0


# ---- a word model's page ------------------------------------------------------------------------

WORD_TEXT = 'The cat sat on the mat. The dog ran to a red box!\n\nMy friend looked at "the Zork".\n'


@pytest.fixture(scope="module")
def word_pages(tmp_path_factory):
    """{name: (page path, model path)}: the pages that `charlm report` writes for a word model
    (float32 weights, WORD_TEXT as its text) and for one of lines (float16, its own sample)."""
    from test_words import write_corpus
    folder = tmp_path_factory.mktemp("word-pages")
    corpus = write_corpus(folder / "prose.txt")
    lines = folder / "lines.txt"
    lines.write_text("the cat sat\nthe dog ran\na bird flew away\nmy friend came home\n" * 30,
                     encoding="utf-8")
    text = folder / "text.txt"
    text.write_text(WORD_TEXT, encoding="utf-8")
    out = {}
    for name, source, options, report_options in (
            ("stream", corpus, ["--steps", 120, "--lr", 0.01], ["--text", text, "--weights",
                                                               "float32"]),
            ("lines", lines, ["--steps", 30, "--mode", "lines"], [])):
        model = folder / f"{name}.npz"
        done = run_charlm("train", source, "--tokens", "words", "--hidden", 32, "--layers", 1,
                          "--batch-size", 8, "--seq-len", 24, "--dropout", 0, "--out", model,
                          *options, cwd=folder)
        assert done.returncode == 0, done.stderr
        page = folder / f"{name}.html"
        done = run_charlm("report", "--model", model, "-o", page, *report_options, cwd=folder)
        assert done.returncode == 0, done.stderr
        out[name] = (page, str(model))
    return out


def draw_in_page(tab, seed, temperature, length, prime=""):
    """The text the page's sampler draws (prime included) and its message."""
    return tab.evaluate(
        "(async () => { const $ = (id) => document.getElementById(id);"
        f" $('seed').value = '{seed}'; $('temperature').value = '{temperature}';"
        f" $('length').value = '{length}'; $('prime').value = {json.dumps(prime)};"
        " $('draw').click(); await charlmReport.drawing();"
        " return [$('sampler-output').textContent, $('sampler-message').textContent]; })()")


def test_word_page_shows_the_text_token_by_token(browser, word_pages):
    from charlm.text import words
    path, _ = word_pages["stream"]
    tab = browser.open(path)
    headings = tab.evaluate("Array.from(document.querySelectorAll('section'), s => s.id)")
    assert headings == list(SECTIONS)
    spans = tab.evaluate("Array.from(document.querySelectorAll('#neuron-text span'), "
                         "s => s.textContent)")
    assert spans == [t.replace("\n", "⏎\n") for t in words.split(WORD_TEXT)]
    mapped = tab.evaluate("document.querySelectorAll('#surprise .map span[title]').length")
    assert mapped == len(words.split(WORD_TEXT))
    assert "tokens predicted" in tab.evaluate("document.getElementById('surprise').textContent")
    tab.evaluate("(() => { const u = document.getElementById('unit'); u.value = '5';"
                 " u.dispatchEvent(new Event('change')); })()")
    coloured = tab.evaluate("Array.from(document.querySelectorAll('#neuron-text span'), "
                            "s => s.style.background)")
    assert all(colour.startswith("rgb(") for colour in coloured)
    assert "length in tokens" in tab.evaluate("document.getElementById('sampler').textContent")
    tricky = "Don't go, well-known o’er 1990s!\n\n  'tis x_y Ελλάδα -a- b--c\t\r\n"
    assert tab.evaluate(f"charlmReport.split({json.dumps(tricky)})") == words.split(tricky)
    assert tab.problems() == []


def test_word_page_probabilities_are_charlms(browser, word_pages):
    path, model_path = word_pages["stream"]
    model = load(model_path)
    tab = browser.open(path)
    in_page = np.array(tab.evaluate(f"charlmReport.distributions({json.dumps(WORD_TEXT)})"))
    expected = report.next_token_probabilities(model.network, model.vocab.encode(WORD_TEXT))
    assert in_page.shape == expected.shape == (len(model.vocab.split(WORD_TEXT)) + 1,
                                               len(model.vocab))
    assert np.abs(in_page - expected).max() < 1e-4


def test_word_page_sampler_draws_tokens_that_read_back_as_drawn(browser, word_pages):
    """Hot samples: every token of the vocabulary, never <UNK>, no word after a word nor spaces
    after spaces (so the text cuts back into as many tokens as were drawn), the same with its
    seed; a prime's unknown word is read as <UNK> and named."""
    from charlm.text import words
    path, model_path = word_pages["stream"]
    vocab = load(model_path).vocab
    tab = browser.open(path)
    for seed in (1, 2, 3):
        text, message = draw_in_page(tab, seed, 2.5, 200)
        assert text and "<UNK>" not in text and message == ""
        assert len(words.split(text)) == 200
        assert all(t in vocab.index for t in words.split(text))
        assert draw_in_page(tab, seed, 2.5, 200)[0] == text
    text, message = draw_in_page(tab, 1, 1.0, 20, prime="The Zork cat")
    assert text.startswith("The Zork cat") and '"Zork"' in message and "<UNK>" in message
    for seed in range(1, 25):       # after an unknown last word, never a word: it would join it
        text, _ = draw_in_page(tab, seed, 2.5, 3, prime="The Zork")
        assert words.split(text)[:2] == ["The", " "] and words.split(text)[2] == "Zork", text
    assert "next token" in tab.evaluate("document.getElementById('next-chars').textContent")
    assert tab.problems() == []


def test_lines_word_page_samples_end_at_eos(browser, word_pages):
    from charlm.text import words
    path, model_path = word_pages["lines"]
    vocab = load(model_path).vocab
    tab = browser.open(path)
    for seed in range(1, 6):
        text, _ = draw_in_page(tab, seed, 1.0, 40)
        assert "\n" not in text and all(t in vocab.index for t in words.split(text))
    assert tab.problems() == []
