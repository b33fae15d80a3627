"""The report page: one self-contained HTML file about a model (``charlm report``,
docs/views-and-report.md).

Sections: the model card, the training curves, samples at a few temperatures, the surprise map of
a text, the neuron browser, the gradient-distance plot and a sampler that runs in the page. A
token is a character, or a word model's token (``charlm.text.words``): the page shows the text
token by token, and its sampler draws tokens.
Everything is computed here by charlm's own passes, except the in-page sampler: the weights are
exported into the page and ``report_assets/report.js`` runs the forward pass in JavaScript.

Nothing in the page is fetched. The style sheet and the script are read from ``report_assets``
and inlined, the plots are SVG drawn by ``views.svg``, and the data (weights included) is one JSON
object in a ``<script type="application/json">`` whose every ``<``, ``>`` and ``&`` is written as a
``\\u`` escape, so no text can close the element. A Content-Security-Policy of ``default-src
'none'`` makes the browser refuse any request the page might still try.

The text of the surprise map, the neuron browser and the gradient plot is ``--text FILE`` (its first
``TEXT_CHARS`` characters) or, without it, a sample the model draws at temperature 1: a checkpoint
records only its corpus's length and CRC, not the corpus. In lines mode each non-blank line is an
example of its own, read from the zero state, as in training and ``charlm score``.

Weights in the page: float32, or float16 by default (half the bytes). With float16 the page's
next-token probabilities differ from charlm's by the rounding of the weights; the page states
that difference, measured here along its own text with charlm's forward pass on both sets of
weights, and adds ``ARITHMETIC_BOUND`` for the page's float64 arithmetic against charlm's float32.
"""
import base64
import json
import math
import os
import shlex
import string
from dataclasses import dataclass
from html import escape
from importlib import resources

import numpy as np

from ..store import checkpoint
from ..api import Model
from ..config import recipe_text
from ..errors import CorpusError, UsageError
from ..network.engine import Engine
from ..network.stack import FlatArrays, Network
from ..text.textfile import read_text
from ..text.vocab import EOS, EOS_ID, drawable, visible
from . import curves as loss_curves
from . import gradients, neurons, svg
from .text import text_pieces

TEMPERATURES = (0.5, 0.8, 1.0)
SAMPLE_CHARS = 300             # stream mode: the length of each sample shown
SAMPLE_LINES = 8               # lines mode: samples shown per temperature
TEXT_CHARS = 1000              # the most characters of the text mapped and browsed
DEFAULT_TEXT_LINES = 40        # lines mode without --text: samples drawn for the text
PRECISIONS = {"float16": np.float16, "float32": np.float32}
ARITHMETIC_BOUND = 1e-4        # float64 arithmetic in the page against charlm's float32
SURPRISE_BINS = (1, 2, 3, 4, 6, 8, 12)   # bits: upper edges of the surprise map's colour classes
RANKED_UNITS = 12              # the neuron browser's list of units that track a feature ...
RANKED_PER_FEATURE = 2         # ... with at most this many for any one feature
MAX_DISTANCE = 100             # the gradient plot's distances: 0..MAX_DISTANCE
GRADIENT_WORK = 4e10           # multiply-adds per gradient curve, which bounds the text it reads


@dataclass
class Page:
    """A built report: its HTML and the facts the command line prints."""
    html: str
    precision: str
    bound: float               # the stated bound of the page's probabilities against charlm's
    text_source: str
    text_chars: int


def build(path, text_file=None, encoding="utf-8", precision="float16", seed=1, progress=None):
    """The report page of the checkpoint at ``path``; ``progress(message)`` hears each stage."""
    if precision not in PRECISIONS:
        raise UsageError(f"--weights must be one of {', '.join(PRECISIONS)}")
    say = progress or (lambda message: None)
    ckpt = checkpoint.load(path, with_training_state=True)
    model = Model(ckpt, path)
    model.require_left_to_right("write a report for")
    vocab = model.vocab
    say("drawing samples")
    samples = [(t, _sample(model, t, seed)) for t in TEMPERATURES]
    examples, source = report_text(model, text_file, encoding, seed)
    say("scoring the text")
    scores = model.score(examples, per_char=True)
    say("reading the neurons")
    browser = neuron_data(model, examples)
    say("measuring the gradient through time")
    gradient = gradient_plot(model, examples, seed)
    say("measuring the page's weights")
    weights = export_weights(model.network, precision)
    bound = rounding_error(model.network, model.vocab, examples, precision) + ARITHMETIC_BOUND
    data = {
        "model": {"cell": model.config.cell,
                  "hidden_size": model.config.hidden_size, "num_layers": model.config.num_layers,
                  "mode": model.config.mode, "tokens": vocab.kind, "noun": vocab.noun,
                  "split": vocab.split_js, "classes": list(vocab.classes_js),
                  "vocab": vocab.tokens, "weights": weights,
                  "drawable": drawable(vocab, model.config.mode).astype(np.uint8).tolist(),
                  "bound": bound, "labels": list(model.config.labels or [])},
        "text": {"examples": examples, "tokens": [vocab.split(ex) for ex in examples],
                 "source": source},
        "neurons": browser,
    }
    sections = {
        "title": escape(f"charlm report: {os.path.basename(path)}"),
        "heading": escape(os.path.basename(path)),
        "summary": escape(_summary(model)),
        "card": card(model, ckpt),
        "curves": curves(ckpt.training.run if ckpt.training else None, vocab.kind),
        "samples": samples_html(model, samples, seed),
        "surprise": surprise_map(scores, source, model.config.mode == "lines", vocab.noun),
        "neurons_note": escape(_neurons_note(browser)),
        "gradients": gradient,
        "precision": escape(precision),
        "bound": f"{bound:.1e}",
        "noun": vocab.noun,
    }
    html = _page(sections, data)
    return Page(html, precision, bound, source, sum(map(len, examples)))


def write(path, html):
    """Write the page atomically, with the mode of the page it replaces or 0666 less the umask
    (``charlm.store.outputs.write_atomically``)."""
    from ..store.outputs import write_atomically
    # a file name that is not UTF-8 reaches the page as surrogates: shown as \udcff escapes
    write_atomically(path, lambda f: f.write(html.encode("utf-8", "backslashreplace")))


# ---- the text ------------------------------------------------------------------------------------

def report_text(model, text_file, encoding, seed):
    """(examples, source): the text the page maps and browses, as the examples the model reads
    (one per non-blank line in lines mode, one in stream mode), at most TEXT_CHARS characters."""
    lines = model.config.mode == "lines"
    if text_file is None:
        if lines:
            drawn = model.sample(num=DEFAULT_TEXT_LINES, temperature=1.0, seed=seed)
            text = "\n".join(drawn)
        else:
            text = model.sample(length=TEXT_CHARS, temperature=1.0, seed=seed)[0]
        source = f"a sample the model drew at temperature 1 (seed {seed})"
    else:
        text = read_text(text_file, encoding)
        source = os.path.basename(text_file)
    if lines:
        examples, total, cut = [], 0, False
        for line in text.split("\n"):
            if line.strip():
                fits = total + len(line) <= TEXT_CHARS
                cut = cut or not fits
                if fits:
                    examples.append(line)
                    total += len(line)
    else:
        cut = len(text) > TEXT_CHARS
        examples = [model.vocab.whole_tokens(text[:TEXT_CHARS]) if cut else text] if text else []
    if not examples:
        raise CorpusError(f"{text_file or 'the sampled text'} has no text to show"
                          + (" (lines mode: a line of at most "
                             f"{TEXT_CHARS} characters)" if lines else ""))
    if text_file is not None and cut:
        shown = f"{sum(map(len, examples)):,} characters"
        source += (f" ({len(examples):,} of its lines, {shown}: those that fit in "
                   f"{TEXT_CHARS:,})" if lines else f" (its first {shown})")
    return examples, source


# ---- weights for the page ------------------------------------------------------------------------

def export_weights(network, precision):
    """The weights as the page reads them: each array little-endian in ``precision``, base64."""
    dtype = np.dtype(PRECISIONS[precision]).newbyteorder("<")
    p = network.params
    if precision == "float16" and np.abs(p.flat).max() > np.finfo(np.float16).max:
        raise UsageError("a weight is too large for float16; use --weights float32")
    arrays = {name: {"shape": list(shape),
                     "data": base64.b64encode(p[name].astype(dtype).tobytes()).decode("ascii")}
              for name, shape in p.shapes}
    return {"precision": precision, "arrays": arrays}


def rounded_network(network, precision):
    """The network with its weights rounded to ``precision`` (and held in float32 again)."""
    p = network.params
    flat = p.flat.astype(PRECISIONS[precision]).astype(p.flat.dtype)
    return Network(network.cell, network.vocab_size, network.hidden_size, network.num_layers,
                   FlatArrays(p.shapes, flat, dtype=flat.dtype))


def next_token_probabilities(network, ids):
    """(n + 1, V) float64: p(next token | <EOS>, ids[:t]) for t = 0..n, by charlm's forward pass."""
    engine = Engine(network)
    x = np.concatenate([[EOS_ID], ids]).astype(np.int32)[:, None]
    return np.exp(engine.log_softmax(x, engine.zero_state(1))[:, 0])


def rounding_error(network, vocab, examples, precision):
    """The largest change that storing the weights in ``precision`` makes to any next-token
    probability along the examples (0 for float32, which the checkpoint holds)."""
    if precision == "float32":
        return 0.0
    rounded = rounded_network(network, precision)
    worst = 0.0
    for text in examples:
        ids = vocab.encode(text)
        diff = next_token_probabilities(network, ids) - next_token_probabilities(rounded, ids)
        worst = max(worst, float(np.abs(diff).max()))
    return worst


# ---- sections ------------------------------------------------------------------------------------

def _summary(model):
    c = model.config
    return (f"{c.cell.upper()} {c.num_layers}x{c.hidden_size}, {model.num_parameters:,} parameters, "
            f"{len(model.vocab)} tokens, {c.mode} mode")


def card(model, ckpt):
    """The model card: what the network is, what it reads and how it was trained."""
    c = model.config
    run = ckpt.training.run if ckpt.training else None
    recipe = recipe_text(c.dropout, c.locked_dropout, c.weight_drop, c.cold_starts,
                         c.ema_decay)
    rows = [("cell", f"{c.cell.upper()}, {c.num_layers} layer{'s' * (c.num_layers > 1)} of "
                     f"{c.hidden_size} units"),
            ("parameters", f"{model.num_parameters:,}"),
            ("mode", c.mode + (" (every line an example of its own)" if c.mode == "lines"
                               else " (one long text, state carried)")),
            ("training", f"batch {c.batch_size}x{c.seq_len}, {c.optimizer} lr {c.lr:g}, "
                         f"{recipe}, clip {c.clip:g}, seed {c.seed}")]
    if run is not None:
        rows.append(("progress", f"{run.step:,} steps, {run.epochs_done:.2f} epochs, "
                                 f"{run.elapsed:,.0f} s of training, "
                                 f"{run.chars_seen:,} {model.vocab.noun}s read"))
        rows.append(("clipping", loss_curves.clipping_summary(run.clipped_steps, run.step)))
        if run.best_val_loss is not None:
            rows.append(("best validation", f"{run.best_val_loss:.4f} nats/char "
                                            f"({run.best_val_loss / math.log(2):.3f} bits/char) "
                                            f"at step {run.best_step:,}"))
        if run.corpus:
            rows.append(("corpus", f"{run.corpus.get('chars', 0):,} characters, "
                                   f"CRC-32 {run.corpus.get('crc32', 0):08x}"))
    else:
        rows.append(("progress", "no training state in this checkpoint (weights only)"))
    if c.labels:
        rows.append(("labels", ", ".join(f"{name} ({count:,})" for name, count in
                                         zip(c.labels, c.label_counts or [])) + " training examples"))
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    tokens = "".join(f'<span class="token">{escape(visible(t))}</span>' for t in model.vocab.tokens)
    return (f'<table class="card">{table}</table>'
            f'<p class="vocab-title">Vocabulary: {len(model.vocab)} tokens</p>'
            f'<div class="vocab">{tokens}</div>')


def curves(run, kind="chars"):
    """Training and validation loss against steps and against time, two SVG plots. The training
    loss is in nats per token (a word model's validation is per character: docs/words.md)."""
    if run is None or not run.history:
        return f'<p class="note">{escape(loss_curves.NO_CURVE.capitalize())}.</p>'
    s = loss_curves.series(run.history)
    minutes = s["elapsed"][-1] >= 180
    times = [t / 60 if minutes else t for t in s["elapsed"]]

    y_label = loss_curves.loss_label(kind)

    def plot(xs, x_label):
        return svg.line_plot([("training", xs, s["train_loss"]), ("validation", xs, s["val_loss"])],
                             x_label, y_label, label=f"loss against {x_label}")

    by_step, by_time = plot(s["steps"], "step"), plot(times, "minutes" if minutes else "seconds")
    best = min(run.history, key=lambda r: r.val_loss)
    return (f'<div class="plots">{by_step}{by_time}</div><p class="note">Training loss: the mean '
            f'over the steps since the previous validation. Best validation: {best.val_loss:.4f} '
            f'nats/char ({best.val_loss / math.log(2):.3f} bits/char) at step {best.step:,}, '
            f'the weights this checkpoint holds.</p>')


def _sample(model, temperature, seed):
    if model.config.mode == "lines":
        return model.sample(num=SAMPLE_LINES, temperature=temperature, seed=seed)
    return model.sample(length=SAMPLE_CHARS, temperature=temperature, seed=seed)


def samples_html(model, samples, seed):
    """The samples drawn at each temperature, with the command that draws them again."""
    lines = model.config.mode == "lines"
    blocks = []
    for temperature, texts in samples:
        option = f" --num {SAMPLE_LINES}" if lines else f" --length {SAMPLE_CHARS}"
        command = (f"charlm sample --model {shlex.quote(model.path)} --temperature {temperature:g} "
                   f"--seed {seed}{option}")
        # HTML drops a newline right after <pre>: this one, not the sample's own first one
        blocks.append(f'<div class="sample"><h3>temperature {temperature:g}</h3>'
                      f'<pre>\n{escape(chr(10).join(texts))}</pre>'
                      f'<code class="command">{escape(command)}</code></div>')
    return f'<div class="samples">{"".join(blocks)}</div>'


def surprise_map(scores, source, lines, noun="character"):
    """The text with each token (a ``noun``) coloured by its surprise -log2 p (as ``score
    --per-char``), its probability in a tooltip; the examples of lines mode side by side."""
    rows = []
    for result in scores:
        spans = []
        for token, log_prob in result.per_char:
            bits = -log_prob / math.log(2)
            level = next((k for k, edge in enumerate(SURPRISE_BINS) if bits < edge),
                         len(SURPRISE_BINS))
            tip = f"{visible(token)}  p = {math.exp(log_prob):.4f}, {bits:.2f} bits"
            shown = {"\n": "⏎\n", EOS: "∎"}.get(token, token)
            spans.append(f'<span class="s{level}" title="{escape(tip)}">{escape(shown)}</span>')
        figure = "" if lines else f'<span class="bpc">{result.bits_per_char:.2f} bits/char</span>'
        rows.append(f'<p class="map">{"".join(spans)}{figure}</p>')
    total_bits = -sum(r.log2_prob for r in scores)
    tokens = sum(r.num_tokens for r in scores)
    chars = sum(len(r.text) + lines for r in scores)      # an <EOS> counts as one (docs/words.md)
    edges = (0,) + SURPRISE_BINS
    legend = "".join(f'<span class="s{k}">{lo}{f"–{hi}" if hi else "+"}</span>' for k, (lo, hi)
                     in enumerate(zip(edges, SURPRISE_BINS + (None,))))
    key = "∎ end of line (&lt;EOS&gt;), predicted too" if lines else "⏎ newline"
    return (f'<p class="note">Text: {escape(source)}. {tokens:,} {noun}s predicted, '
            f'{total_bits / chars:.3f} bits/char. Hover a {noun} for its probability.</p>'
            f'<div class="legend">surprise (bits) {legend} <span class="key">{key}</span></div>'
            f'<div class="maps{" lines" * lines}">{"".join(rows)}</div>')


def neuron_data(model, examples):
    """What the neuron browser shows: the top layer's h after each token of the examples
    (quantised to int8 over its largest magnitude: 1/127 of it is the step), the units that best
    track a feature of the text (``neurons.rank_units``), and the series of those among them that
    are not top-layer h units."""
    acts = np.concatenate([neurons.activations(model, ex) for ex in examples], axis=2)  # (L,S,n,H)
    per_example = [neurons.features(model.vocab.split(ex), model.vocab.kind) for ex in examples]
    feats = {name: np.concatenate([f[name] for f in per_example]) for name in per_example[0]}
    ranking = neurons.rank_units(acts, feats, top=RANKED_UNITS, per_feature=RANKED_PER_FEATURE)
    top = len(acts) - 1
    extra = [dict(layer=r["layer"], state=r["state"], unit=r["unit"],
                  **_quantised(acts[r["layer"], neurons.STATE_NAMES.index(r["state"]), :, r["unit"]]))
             for r in ranking if (r["layer"], r["state"]) != (top, "h")]
    return {"layer": top, "state": "h", "hidden": int(acts.shape[-1]),
            **_quantised(acts[top, 0]), "extra": extra, "ranking": ranking,
            "colours": [neurons.NEGATIVE, neurons.NEUTRAL, neurons.POSITIVE]}


def _quantised(values):
    """{"scale", "data"}: values / scale * 127 rounded to int8, base64; scale = max |value|."""
    scale = float(np.abs(values).max()) or 1.0
    q = np.rint(np.asarray(values, np.float64) / scale * 127).astype(np.int8)
    return {"scale": scale, "data": base64.b64encode(q.tobytes()).decode("ascii")}


def _neurons_note(browser):
    if not browser["ranking"]:
        return "No unit moves with any feature of this text."
    best = browser["ranking"][0]
    return (f"Best tracker here: layer {best['layer']} {best['state']} unit {best['unit']} follows "
            f"\u201c{best['feature']}\u201d (correlation {best['correlation']:+.2f}).")


def gradient_plot(model, examples, seed):
    """The norm of dL_t/dh_(t-k) against k (``views.gradients``), for this model and for the same
    network freshly initialised, over the start of the text: as many tokens as GRADIENT_WORK
    multiply-adds allow (about 2 K G H^2 per token)."""
    c, net, noun = model.config, model.network, model.vocab.noun
    per_token = 2 * MAX_DISTANCE * net.cell.gates * c.hidden_size ** 2
    budget = max(MAX_DISTANCE + 1, int(GRADIENT_WORK // per_token))
    lines = c.mode == "lines"           # each example ends with its <EOS>, as text_pieces reads it
    texts, used = [], 0
    for ids in text_pieces(model, "\n".join(examples) + "\n" * lines):
        if used < budget:
            texts.append(ids[:budget - used])
            used += len(texts[-1])
    fresh = gradients.fresh_network(c.cell, net.vocab_size, c.hidden_size, c.num_layers, seed)
    series = [(label, *gradients.mean_norms(network, texts, MAX_DISTANCE)) for label, network in
              (("this model", net), (f"freshly initialised (seed {seed})", fresh))]
    distances = list(range(MAX_DISTANCE + 1))
    plot = svg.line_plot([(label, distances, norms.tolist()) for label, norms, _ in series],
                         f"distance k ({noun}s)", "mean ‖∂L(t) / ∂h(t−k)‖", log_y=True,
                         width=640, height=320, label="gradient norm against distance")
    counts = series[0][2]
    reach = int(np.flatnonzero(counts)[-1])
    return (f'{plot}<p class="note">How much the loss at a {noun} depends on the top layer\'s '
            f'output k {noun}s earlier: the norm of the gradient, averaged over the {used:,} '
            f'{noun}s of the text read for it (k up to {reach}, fewer positions at larger k), '
            f'float64. A curve that falls fast is a network that forgets fast.</p>')


# ---- the page ------------------------------------------------------------------------------------

def _asset(name):
    return resources.files("charlm.views").joinpath("report_assets", name).read_text("utf-8")


def json_for_script(data):
    """JSON that is safe inside a <script> element: no '<', '>' or '&' appears literally, so no
    text in it can end the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The page's head names its generator: a file holding this is a page charlm wrote, which
# `charlm report -o` may replace without --force.
GENERATOR = '<meta name="generator" content="charlm report">'


def written_by_charlm(path):
    """Whether the file at path is a page that charlm report wrote (its head names charlm as its
    generator, in the first few kilobytes)."""
    try:
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def _page(sections, data):
    script = _asset("report.js")
    if "</script" in script.lower():
        raise ValueError("report.js must not contain '</script'")
    page = string.Template(_asset("page.html"))
    return page.substitute(sections, generator=GENERATOR, css=_asset("report.css"), script=script,
                           data=json_for_script(data))
