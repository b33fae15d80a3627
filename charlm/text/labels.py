"""Labelled corpora: every example carries a label, which the model reads at every step.

A labelled example is trained as lines mode trains a line (``<EOS> c1 .. cn`` -> ``c1 .. cn
<EOS>``), with the label as a second one-hot input beside each character: its vector, added to
layer 0's pre-activations at every step, is the row of ``layers.0.W_x`` of the label's token
(:func:`labelled_ids` gives the input ids that carry it, :mod:`charlm.network.inputs` reads them).
The model gives P(text | label). A share ``HIDDEN_SHARE`` of the examples, drawn anew for every
batch from (seed, epoch, batch), is read with its label hidden, as in an unlabelled model. Used
without a label (``<any>``), a labelled model is therefore a model of the whole corpus.

Label tokens are ``<label:NAME>`` (:func:`charlm.text.vocab.is_label`), after the characters (or
the words, :mod:`charlm.text.words`) in the vocabulary, in the order of ``Config.labels`` (the
names sorted). They are never read as a token, never a target, never drawn
(:func:`charlm.text.vocab.drawable`); their columns of ``out.W`` and entries of ``out.b`` are
never a target, so training drives their logits down as it does ``<UNK>``'s.

Two ways to give a labelled corpus (``charlm train``):

- ``CORPUS --labels``: each line ``LABEL<TAB>TEXT`` (the first tab splits it); a blank line is
  skipped; a line without a tab, with an empty label or with no text is refused with its number.
- ``--label NAME=FILE`` (repeatable): every non-blank line of FILE is an example of NAME.

A labelled corpus is read into memory (it is not prepared on disk) and trains in lines mode. With
``--tokens words``, :class:`charlm.text.wordcorpus.WordCorpus` cuts its texts into words and
passes on its ``labels`` and ``line_labels``, what :func:`label_lines` reads beside the lines'
spans.
"""

import numpy as np

from ..errors import CorpusError, UsageError
from .corpus import Corpus, LineBatches, fingerprint
from .corpus import read_corpus as read_plain
from .textfile import read_text
from .vocab import LABEL_PREFIX, Vocab, is_label

HIDDEN_SHARE = 0.1      # examples read with the label hidden: what the <any> label is
ANY = "<any>"           # no label: the text read as an unlabelled model reads it


def token(name):
    """The vocabulary entry of label name."""
    return f"{LABEL_PREFIX}{name}>"


def tokens(names):
    """The label tokens of names, in order: what follows the text's tokens (characters or words)
    in a labelled model's vocabulary."""
    return [token(name) for name in names]


def fit(names, counts, vocab_tokens):
    """Whether a model's labels (``Config.labels``) and their training counts fit its vocabulary:
    the vocabulary's label tokens are those of the labels, in order, with one count (a whole
    number >= 0) each. A model without labels has no counts; its vocabulary may still hold label
    tokens (an export of a labelled model imported without its labels: the <any> model)."""
    if names is None:
        return counts is None
    return (all(isinstance(n, str) for n in names)
            and tokens(names) == [t for t in vocab_tokens if is_label(t)]
            and isinstance(counts, list) and len(counts) == len(names)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts))


# ---- reading ------------------------------------------------------------------------------------

def parse(text, source, purpose="learn from"):
    """[(label, text)] of the ``LABEL<TAB>TEXT`` lines of text; blank lines skipped. Raises
    CorpusError naming source and the line for a line without a tab, an empty label or no text,
    and one saying there is nothing to ``purpose`` for a text without such a line."""
    pairs = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        label, tab, body = line.partition("\t")
        label = label.strip()
        if not tab:
            raise CorpusError(f"{source}, line {number}: no tab; a labelled corpus holds "
                              "LABEL<TAB>TEXT lines")
        if not label:
            raise CorpusError(f"{source}, line {number}: the label before the tab is empty")
        if label == ANY:
            raise CorpusError(f"{source}, line {number}: {ANY} is reserved (it means no label)")
        if not body.strip():
            raise CorpusError(f"{source}, line {number}: label {label!r} but no text after the tab")
        pairs.append((label, body))
    if not pairs:
        raise CorpusError(f"{source} has no LABEL<TAB>TEXT line: there is nothing to {purpose}")
    return pairs


def read_labelled(path, encoding="utf-8"):
    """The :class:`LabelledCorpus` of a file of ``LABEL<TAB>TEXT`` lines."""
    if path is None:
        raise UsageError("--labels reads LABEL<TAB>TEXT lines from CORPUS: give the corpus file "
                         "(e.g. charlm train corpus.tsv --labels)")
    text = read_text(path, encoding)
    return LabelledCorpus(parse(text, path), str(path), text)


def parse_label_options(values):
    """[(name, path)] of ``--label NAME=FILE`` values, or UsageError naming the bad one."""
    pairs = []
    for value in values:
        name, eq, path = value.partition("=")
        name = name.strip()
        if not eq or not path:
            raise UsageError(f"--label {value!r}: give NAME=FILE, e.g. --label poetry=verse.txt")
        if not name or name == ANY:
            raise UsageError(f"--label {value!r}: the label name is "
                             f"{'empty' if not name else 'reserved (it means no label)'}")
        if name in dict(pairs):
            raise UsageError(f"--label {name} is given twice: one file per label")
        pairs.append((name, path))
    if len(pairs) < 2:
        raise UsageError("--label NAME=FILE needs two labels or more (one file each) to tell apart")
    return pairs


def read_label_files(pairs, encoding="utf-8"):
    """The :class:`LabelledCorpus` of ``--label NAME=FILE`` pairs: each non-blank line of FILE is
    an example of NAME, the files read in the order given (which --resume needs again: it is the
    order of the examples)."""
    examples, texts = [], []
    for name, path in pairs:
        text = read_plain(path, encoding).text
        texts.append(f"{name}\0{text}")
        examples += [(name, line) for line in text.split("\n") if line.strip()]
    return LabelledCorpus(examples, ", ".join(path for _, path in pairs), "\0".join(texts))


def labelled_option(labels_flag, label_values, distributed=False):
    """What ``charlm train --labels`` and ``--label NAME=FILE`` ask for, as ``labelled`` of
    :func:`read_corpus` (None: an unlabelled corpus)."""
    if labels_flag and label_values:
        raise UsageError("give either CORPUS --labels (LABEL<TAB>TEXT lines) or --label NAME=FILE "
                         "for each label, not both")
    labelled = True if labels_flag else parse_label_options(label_values) if label_values else None
    if labelled and distributed:
        raise UsageError("a labelled corpus trains in one process: run it without mpiexec")
    return labelled


def read_corpus(corpus, labelled, encoding="utf-8"):
    """The :class:`LabelledCorpus` that ``charlm train`` asks for: ``labelled`` is True for CORPUS
    of ``LABEL<TAB>TEXT`` lines, or the [(name, file)] of ``--label NAME=FILE``."""
    if labelled is True:
        return read_labelled(corpus, encoding)
    if corpus is not None:
        raise UsageError("give either CORPUS --labels (LABEL<TAB>TEXT lines) or --label NAME=FILE "
                         "for each label, not both")
    return read_label_files(list(labelled), encoding)


def lines_mode(mode, bidirectional=False):
    """The mode of a labelled run: lines, whatever --mode says unless it says stream."""
    if bidirectional:
        raise UsageError("--bidirectional does not train a labelled model: drop one of them")
    if mode == "stream":
        raise UsageError("a labelled corpus trains in lines mode (each example starts from its "
                         "label): drop --mode stream")
    return "lines"


def check_resume(out, config, corpus):
    """Raise UsageError if --resume continues a labelled run without its labels or the reverse."""
    if bool(config.labels) != isinstance(corpus, LabelledCorpus):
        raise UsageError(f"--resume: {out} was trained " + (
            "on a labelled corpus: give it as before (CORPUS --labels, or the same --label "
            "NAME=FILE options)" if config.labels else "without labels: drop --labels and --label"))


class LabelledCorpus(Corpus):
    """A labelled corpus in memory: ``text`` holds the examples' texts, one a line (what
    :class:`charlm.text.corpus.Corpus` reads for the vocabulary, ids and lines), ``labels`` the
    sorted label names, ``line_labels`` (n,) the label id of each line."""

    def __init__(self, examples, name, source_text):
        super().__init__("\n".join(body for _, body in examples), name)
        self.labels = sorted({label for label, _ in examples})
        index = {label: k for k, label in enumerate(self.labels)}
        self.line_labels = np.array([index[label] for label, _ in examples], np.int64)
        self._fingerprint = fingerprint(source_text)

    def detect_mode(self):
        return "lines", "a labelled corpus: one example per line"

    def vocab(self, min_count=1, mode="lines"):
        chars = Vocab.from_text(self.text, min_count, "lines")
        return Vocab(chars.tokens + tokens(self.labels))

    def fingerprint(self):
        """The whole file's (labels included), so that --resume recognises it."""
        return self._fingerprint


# ---- training -----------------------------------------------------------------------------------

def labelled_ids(ids, label_rows, V):
    """ids (T, B) with column b reading label token ``label_rows[b]`` at every step (0: none): an
    input id i reads token ``i % V`` and the label whose token is ``i // V``
    (:mod:`charlm.network.inputs`)."""
    return (np.asarray(ids, np.int64) + V * np.asarray(label_rows, np.int64)[None, :]).astype(
        np.int32)


def label_rows(vocab, labels):
    """(K,) int32 token ids of the labels, in id order: the rows of W_x that are their vectors."""
    return np.array([vocab.tokens.index(token(name)) for name in labels], np.int32)


class LabelledLines(list):
    """Lines' token ids (a list of arrays) with ``rows``, the label token of each (0: none)."""

    def __init__(self, lines, rows):
        super().__init__(lines)
        self.rows = np.asarray(rows, np.int32)


class LabelledLineBatches(LineBatches):
    """:class:`charlm.text.corpus.LineBatches` whose examples read their label at every step
    (input ids of :func:`labelled_ids`), but for a share HIDDEN_SHARE of them drawn from
    (seed, epoch, batch), read without."""

    def __init__(self, lines_ids, rows, vocab_size, batch_size, seq_len, seed):
        super().__init__(lines_ids, batch_size, seq_len, seed)
        self.rows, self.V = np.asarray(rows, np.int32), vocab_size

    def batch(self, epoch, index):
        chunks = super().batch(epoch, index)
        chosen = self._order[1][index * self.B:(index + 1) * self.B]
        rows = self.rows[chosen]
        hidden = np.random.default_rng([self.seed, epoch, index, 0x1ABE1]).random(len(chosen))
        rows[hidden < HIDDEN_SHARE] = 0
        return [(labelled_ids(x, rows, self.V), y) for x, y in chunks]


def label_lines(config, corpus, vocab, train, val, train_rows, val_rows):
    """A lines-mode dataset's (config, train, val) made labelled: config records the labels and
    their training counts, train reads each example with its label (:class:`LabelledLineBatches`)
    and val with its own label always (validation measures P(text | label)). corpus gives
    ``labels`` (the names) and ``line_labels`` (the label id of each line of its ``line_spans``);
    train_rows and val_rows are the lines each part holds."""
    from dataclasses import replace
    # an input id is token + V * label token (labelled_ids), below V ** 2, and ids are int32:
    # V <= 46,340, room for any character vocabulary and four times the default word vocabulary
    if len(vocab) ** 2 >= 2 ** 31:
        fewer = ("--vocab-size N keeps fewer words" if vocab.kind == "words" else
                 "--min-count folds rare characters into <UNK>")
        raise UsageError(f"a labelled model reads at most 46,340 tokens; this corpus has "
                         f"{len(vocab):,} ({fewer})")
    rows = label_rows(vocab, corpus.labels)[corpus.line_labels]
    counts = np.bincount(corpus.line_labels[train_rows], minlength=len(corpus.labels))
    config = replace(config, labels=list(corpus.labels), label_counts=counts.tolist())
    train = LabelledLineBatches(train.lines, rows[train_rows], len(vocab), train.B, train.T,
                                train.seed)
    val = LabelledLines(val, rows[val_rows][:len(val)])
    return config, train, val


# ---- using a labelled model ---------------------------------------------------------------------

def require_labels(model, action):
    """Raise UsageError unless model (a :class:`charlm.api.Model`) was trained with labels."""
    if not model.config.labels:
        raise UsageError(f"{model.path or 'this model'} was trained without labels: {action} "
                         "needs a model trained on a labelled corpus (charlm train corpus.tsv "
                         "--labels)")


def known(model):
    return ", ".join(model.config.labels) + f" (or {ANY})"


def label_row(model, label):
    """The label a generation or a score reads at every step, as its token id (its row of W_x):
    0 for no label (None or ``<any>``). UsageError for a label on a model trained without labels,
    or a label the model does not know (the message lists those it knows)."""
    if label is None:
        return 0
    require_labels(model, "--label")
    if label == ANY:
        return 0
    if label not in model.config.labels:
        raise UsageError(f"--label {label!r}: the model knows no such label; it knows "
                         f"{known(model)}")
    return model.vocab.tokens.index(token(label))
