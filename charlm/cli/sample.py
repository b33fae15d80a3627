"""``charlm sample``: generate text from a checkpoint (see :func:`charlm.generation.sampler.sample`), search
for the most probable continuations (``--beam``, :mod:`charlm.generation.beam`), choose characters by hand
(``--interactive``, :mod:`charlm.generation.interactive`) and check samples against the training text
(``--corpus``, ``--novelty``, ``--novel``: :mod:`charlm.generation.novelty`)."""
import sys

import click

from .common import compile_notice, model_option, print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm sample                              # one sample from charlm.npz
  charlm sample --num 10 --temperature 0.8   # ten, a little more conservative
  charlm sample --model shakespeare.npz --prime "ROMEO:" --length 500
  charlm sample --temperature 0              # greedy: always the most probable character
  charlm sample --top-p 0.9 --seed 7 --json  # nucleus sampling, reproducible, as JSON
  charlm sample --beam 8 --prime "ROMEO:"    # the 8 most probable continuations found
  charlm sample --beam 4 --num 1 --length-penalty 1   # the best by log P per character
  charlm sample --stop "\\n\\n" --num 3        # each sample ends at its first blank line
  charlm sample --stop . --stop "!" --keep-stop      # one sentence, its full stop kept
  charlm sample --interactive                # choose each next character yourself
  charlm sample --num 10 --novelty           # mark samples copied from the training corpus
  charlm sample --num 10 --novel --corpus names.txt   # ten names not in names.txt
  charlm sample --label poetry --num 5       # five texts of a label (a model trained --labels)
  charlm sample --match "K[a-z]{4,7}a" --num 10      # ten names of that shape (docs/patterns.md)
"""


@click.command(epilog=EXAMPLES)
@model_option()
@click.option("--length", type=int, default=None, metavar="N",
              help="Most tokens generated per sample: characters, or for a word model words, "
                   "punctuation marks and runs of whitespace.  [default: 200; 1000 when "
                   "stopping at <EOS>]")
@click.option("--temperature", type=float, default=1.0, show_default=True, metavar="T",
              help="Divides the logits: below 1 more conservative, above 1 more surprising; "
                   "0 is greedy (always the most probable character).")
@click.option("--top-k", type=int, default=0, show_default=True, metavar="K",
              help="Draw only among the K most probable characters (0: all).")
@click.option("--top-p", type=float, default=1.0, show_default=True, metavar="P",
              help="Nucleus sampling: then draw only among the most probable characters that "
                   "together hold probability P of what is left, in (0, 1] (1: all).")
@click.option("--prime", default="", metavar="TEXT",
              help="Text to start from: read by the model, then continued. Every character must "
                   "be in the model's vocabulary (an unknown one is an error).")
@click.option("--num", type=int, default=None, metavar="N",
              help="Number of samples, drawn together as one batch; with --beam, how many of "
                   "the best continuations to print.  [default: 1; with --beam, all K]")
@click.option("--seed", type=int, default=None, metavar="N",
              help="Random seed: the same seed gives the same samples.  [default: random]")
@click.option("--stop-at-eos/--no-stop-at-eos", default=None,
              help="End a sample at <EOS> (the end of a line in lines mode).  [default: on in "
                   "lines mode, off in stream mode; when off, a drawn <EOS> is written as a "
                   "newline]")
@click.option("--beam", type=int, default=None, metavar="K",
              help="Beam search: keep the K most probable continuations at each step instead of "
                   "drawing, and print the best found, most probable first, with log P in nats "
                   "(1 is greedy decoding). Deterministic: --temperature, --top-k, --top-p and "
                   "--seed do not apply.")
@click.option("--length-penalty", type=float, default=0.0, show_default=True, metavar="ALPHA",
              help="With --beam, rank continuations by log P / n^ALPHA, n their characters "
                   "(0: by log P, which favours short ones; 1: by log P per character).")
@click.option("--stop", multiple=True, metavar="STR",
              help="End each sample at the first occurrence of STR in its generated text "
                   "(repeatable: the first of any). The stop string is cut from the sample "
                   "unless --keep-stop. Backslash escapes such as \\n are read.")
@click.option("--keep-stop", is_flag=True,
              help="Keep the stop string at the end of the sample.")
@click.option("--interactive", is_flag=True,
              help="Choose each next character yourself from the model's most probable ones "
                   "(keys: 1-9 pick, d draw one, r draw a run, u undo, +/- temperature, q quit "
                   "and print the text). Needs a terminal.")
@click.option("--corpus", "corpus_path", default=None, metavar="PATH",
              help="Check each sample against this text (implies --novelty).")
@click.option("--novelty", is_flag=True,
              help="Mark each sample that appears in the training text (the checkpoint's own "
                   "corpus, or --corpus): lines mode, as a whole line; stream mode, the length "
                   "of the longest substring it shares with it.")
@click.option("--novel", is_flag=True,
              help="Keep drawing until --num samples are new (not in the training text; "
                   "distinct), up to 100 draws per sample asked for (at least 1,000).")
@click.option("--label", default=None, metavar="NAME",
              help="Generate text of this label, for a model trained with labels (<any>: no "
                   "label; docs/labels.md).")
@click.option("--match", default=None, metavar="REGEX",
              help="Every sample (the prime included) is a full match of this regular "
                   "expression: each step draws only among the characters that can still lead "
                   "to a match within --length (docs/patterns.md).")
@click.option("--exact", is_flag=True,
              help="With --match, lines mode: score every match (at most 10,000) and draw from "
                   "the model's probability of the text given that it matches.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"samples": [...]}, the text generated after the prime; with --beam '
                   'also "log_probs" and "ended" (and "scores" with --length-penalty), with a '
                   'corpus check "novelty", with --novel "drawn" (the samples drawn).')
@reports_errors
def sample(model_path, length, temperature, top_k, top_p, prime, num, seed, stop_at_eos, beam,
           length_penalty, stop, keep_stop, interactive, corpus_path, novelty, novel, label,
           match, exact, as_json):
    """Generate text from a trained model. A single sample streams as it is generated;
    several are printed one after another (one per line when each is a single line)."""
    from ..api import load
    from ..generation.beam import warm_up as warm_up_beam
    from .warmup import warm_up_sampling
    from ..generation.options import SamplingOptions, refuse_for_exact
    stops = [unescape(s) for s in stop] or None
    model = load(model_path)
    model.require_left_to_right("sample from")
    if model.vocab.kind == "words":
        name_unknown_prime(model, prime)
    options = dict(length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                   prime=prime, stop_at_eos=stop_at_eos, stop=stops, keep_stop=keep_stop)
    if label is not None:
        options["label"] = label
    if match is not None:
        options["match"] = match
    if exact:
        refuse_for_exact(match, [(interactive, "--interactive"), (novel, "--novel")])
    refuse_combinations(beam, num, stops, interactive, novel, as_json, corpus_path, novelty,
                        top_k, top_p)
    checked = SamplingOptions.checked(model, num=num, seed=seed, beam=beam,
                                      length_penalty=length_penalty, exact=exact, **options)
    if interactive:
        from .warmup import warm_up_forward
        from ..generation.interactive import run_interactive
        with compile_notice():
            warm_up_forward(model.network)
        run_interactive(model, prime=prime, temperature=temperature, seed=seed,
                        stop_at_eos=checked.stop_at_eos, label=label, match=checked.match,
                        length=checked.length if length is not None or match else None)
        return
    check = None
    if corpus_path is not None or novelty or novel:
        from ..generation.novelty import reference
        check = reference(model, corpus_path)
    with compile_notice():
        if beam is None:
            warm_up_sampling(model.network, num or 1)
        else:
            warm_up_beam(model.network)
    if beam is not None:
        from ..generation.beam import search
        results = search(model, checked)
        print_beams(model, results, prime, length_penalty, check, as_json)
        return
    if novel:
        print_novel(model, check, num or 1, seed, options, as_json)
        return
    if exact:
        options["exact"] = True
    print_drawn(model, check, num or 1, seed, options, as_json)


def print_drawn(model, check, num, seed, options, as_json):
    """Draw num samples and print them: as JSON, marked by the corpus check when there is one,
    else as text (a single sample streams as it is drawn)."""
    prime = options["prime"]
    if as_json:
        texts = model.sample(num=num, seed=seed, **options)
        data = {"samples": texts}
        if check is not None:
            data["novelty"] = [check.check(t, prime).to_json() for t in texts]
        print_json(data)
    elif check is not None:
        texts = model.sample(num=num, seed=seed, **options)
        print_texts([prime + t for t in texts], [check.check(t, prime) for t in texts])
    elif num == 1 and not options.get("exact"):
        stream_one(model, seed, options)
    else:
        print_texts([prime + t for t in model.sample(num=num, seed=seed, **options)])


def name_unknown_prime(model, prime):
    """A word model: name on stderr, once, the tokens of the prime read as <UNK>."""
    unknown = model.vocab.unknown(prime)
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:20]) + (", ..." if len(unknown) > 20 else "")
        print(f"note: --prime has {len(unknown)} token(s) not in the model's vocabulary, read as "
              f"<UNK>: {shown}", file=sys.stderr)


def unescape(text):
    """A --stop value with its backslash escapes read (\\n, \\t, \\\\, \\uXXXX), so that a
    newline can be given on the command line."""
    if "\\" not in text:
        return text
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        from ..errors import UsageError
        raise UsageError(f"--stop {text!r}: a bad backslash escape ({e.reason})") from None


def refuse_combinations(beam, num, stops, interactive, novel, as_json, corpus_path, novelty,
                        top_k, top_p):
    """Raise UsageError for options that contradict each other on the command line (those that
    --beam and --exact refuse are refused by
    :meth:`charlm.generation.options.SamplingOptions.checked`)."""
    from ..errors import UsageError
    if interactive:
        given = [name for name, on in (("--beam", beam is not None), ("--num", num is not None),
                                       ("--stop", bool(stops)),
                                       ("--json", as_json), ("--novel", novel),
                                       ("--novelty", novelty or corpus_path is not None),
                                       ("--top-k", top_k != 0), ("--top-p", top_p != 1.0))
                 if on]
        if given:
            raise UsageError(f"{given[0]} does not apply to --interactive, where you choose "
                             "each character")
        if not sys.stdin.isatty():
            raise UsageError("--interactive needs a terminal: standard input is not one "
                             "(run it in a terminal, without a pipe or redirection)")
    if novel and beam is not None:
        raise UsageError("--novel draws samples until enough are new; --beam draws none "
                         "(use --novelty to mark which beam results are in the corpus)")


def stream_one(model, seed, options):
    """Print one sample as it is generated, the prime first; returns its text after the prime."""
    prime = options["prime"]
    pieces = model.stream(seed=seed, **options)
    write(prime)
    text = "".join(write(piece) for piece in pieces)
    if not (prime + text).endswith("\n"):
        write("\n")
    return text


def write(text):
    sys.stdout.write(text)
    sys.stdout.flush()
    return text


def print_texts(texts, novelties=None):
    """Samples one per line when each is a single line, else separated by blank lines; each
    with its novelty, if given (dim: after a single line, on a line of its own after a longer
    text)."""
    several = any("\n" in t.rstrip("\n") for t in texts)
    shown = []
    for k, text in enumerate(texts):
        text = text.rstrip("\n")
        if novelties is not None:
            note = click.style(f"[{novelty_note(novelties[k])}]", dim=True)
            text += ("\n" if several else "  ") + note
        shown.append(text)
    click.echo(("\n\n" if several else "\n").join(shown))


def print_beams(model, results, prime, length_penalty, check, as_json):
    """Beam results, best first: JSON, or each with its log P (and its score, if normalised)."""
    novelties = [check.check(r.text, prime) for r in results] if check is not None else None
    if as_json:
        data = {"samples": [r.text for r in results], "log_probs": [r.log_prob for r in results],
                "ended": [r.ended for r in results]}
        if length_penalty:
            data["scores"] = [r.score for r in results]
        if novelties is not None:
            data["novelty"] = [n.to_json() for n in novelties]
        print_json(data)
        return
    single_lines = all("\n" not in (prime + r.text).rstrip("\n") for r in results)
    for k, r in enumerate(results):
        figures = f"log P {r.log_prob:8.3f}"
        if length_penalty:
            figures += f"  score {r.score:8.4f}"
        unusual = {"stop": "stop string", "length": "cut by --length", "eos": "<EOS>"}[r.ended]
        if r.ended == "stop" or (r.ended == "eos") == (model.config.mode == "stream"):
            figures += f"  ({unusual})"
        if novelties is not None:
            figures += "  " + novelty_note(novelties[k])
        text = (prime + r.text).rstrip("\n")
        if single_lines:
            click.echo(click.style(figures, dim=True) + "  " + text)
        else:
            click.echo(click.style(f"-- {k + 1}. {figures.strip()}", dim=True))
            click.echo(text + ("\n" if k + 1 < len(results) else ""))


def novelty_note(novelty):
    if novelty.longest_shared is None:
        return "in the corpus" if novelty.in_corpus else "new"
    if novelty.in_corpus:
        return "in the corpus"
    return f"longest shared with the corpus: {novelty.longest_shared} characters"


def print_novel(model, check, num, seed, options, as_json):
    """--novel: samples drawn until num are new; a warning on stderr if the cap came first."""
    from ..generation.novelty import novel_samples
    texts, novelties, drawn, copied = novel_samples(model, check, num, seed=seed, **options)
    if len(texts) < num:
        repeated = drawn - len(texts) - copied          # new, but drawn before
        why = ("its training text" if copied >= repeated else
               "its own samples (the same ones over and over)")
        click.echo(click.style("warning: ", fg="yellow", bold=True)
                   + f"only {len(texts)} of {num} samples were new after {drawn:,} draws: the "
                   f"model mostly repeats {why} (try a higher --temperature)", err=True)
    if as_json:
        print_json({"samples": texts, "novelty": [n.to_json() for n in novelties],
                    "drawn": drawn})
        return
    prime = options["prime"]
    print_texts([prime + t for t in texts], novelties)
