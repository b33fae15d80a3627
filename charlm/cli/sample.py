"""``charlm sample``: generate text from a checkpoint (see :func:`charlm.sampler.sample`)."""
import click

from .common import MODEL_HELP, compile_notice, print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm sample                              # one sample from charlm.npz
  charlm sample --num 10 --temperature 0.8   # ten, a little more conservative
  charlm sample --model shakespeare.npz --prime "ROMEO:" --length 500
  charlm sample --temperature 0              # greedy: always the most probable character
  charlm sample --top-p 0.9 --seed 7 --json  # nucleus sampling, reproducible, as JSON
"""


@click.command(epilog=EXAMPLES)
@click.option("--model", "model_path", default="charlm.npz", show_default=True, metavar="PATH",
              help=MODEL_HELP)
@click.option("--length", type=int, default=None, metavar="N",
              help="Most characters generated per sample.  [default: 200; 1000 when stopping "
                   "at <EOS>]")
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
@click.option("--num", type=int, default=1, show_default=True, metavar="N",
              help="Number of samples, drawn together as one batch.")
@click.option("--seed", type=int, default=None, metavar="N",
              help="Random seed: the same seed gives the same samples.  [default: random]")
@click.option("--stop-at-eos/--no-stop-at-eos", default=None,
              help="End a sample at <EOS> (the end of a line in lines mode).  [default: on in "
                   "lines mode, off in stream mode; when off, a drawn <EOS> is written as a "
                   "newline]")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"samples": [...]}, the text generated after the prime.')
@reports_errors
def sample(model_path, length, temperature, top_k, top_p, prime, num, seed, stop_at_eos, as_json):
    """Generate text from a trained model. A single sample streams as it is generated;
    several are printed one after another (one per line when each is a single line)."""
    import sys

    from ..api import load
    from ..compile import warm_up_sampling
    from ..sampler import check_options
    model = load(model_path)
    model.require_left_to_right("sample from")
    options = dict(num=num, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                   prime=prime, stop_at_eos=stop_at_eos, seed=seed)
    check_options(model, **options)
    with compile_notice():
        warm_up_sampling(model.network)
    if as_json:
        print_json({"samples": model.sample(**options)})
        return
    if num == 1:
        ends_line = [not prime or prime.endswith("\n")]

        def write(text):
            sys.stdout.write(text)
            sys.stdout.flush()
            ends_line[0] = text.endswith("\n")

        write(prime)
        model.sample(**options, on_text=write)
        if not ends_line[0]:
            write("\n")
        return
    texts = [prime + text for text in model.sample(**options)]
    separator = "\n\n" if any("\n" in t.rstrip("\n") for t in texts) else "\n"
    click.echo(separator.join(t.rstrip("\n") for t in texts))
