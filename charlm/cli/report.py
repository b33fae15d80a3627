"""``charlm report``: one self-contained HTML page about a model (see :mod:`charlm.views.report`)."""
import click

from .common import consoles, model_option, print_json, refuse_given, reports_errors

EXAMPLES = """
\b
Examples:
  charlm report                                  # charlm.npz -> report.html
  charlm report --model shakespeare.npz --text act5.txt -o shakespeare.html
  charlm report --weights float32                # the exact weights (twice the size)
  charlm report --json | jq .bytes
"""


@click.command(epilog=EXAMPLES)
@model_option()
@click.option("--text", "text_path", default=None, metavar="FILE",
              help="Text for the surprise map, the neuron browser and the gradient plot (its first "
                   "1,000 characters; lines mode: its lines).  [default: a sample the model draws "
                   "at temperature 1]")
@click.option("--encoding", default="utf-8", show_default=True, metavar="NAME",
              help="Encoding of --text.")
@click.option("-o", "--out", default="report.html", show_default=True, metavar="PATH",
              help="The page to write. An existing file is replaced only if it is a page charlm "
                   "report wrote, or with --force; never the checkpoint or --text read.")
@click.option("--force", is_flag=True, help="Replace an existing -o that charlm did not write.")
@click.option("--weights", "precision", type=click.Choice(["float16", "float32"]),
              default="float16", show_default=True,
              help="How the page stores the weights of its sampler: float16 is half the size and "
                   "moves its probabilities by the rounding (the page states by how much); "
                   "float32 agrees with charlm score to 1e-4.")
@click.option("--seed", type=int, default=1, show_default=True, metavar="N",
              help="Seed of the samples shown (and of the default text).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"path", "bytes", "weights", "bound", "text_source", "text_chars"}.')
@reports_errors
def report(model_path, text_path, encoding, out, force, precision, seed, as_json):
    """Write one HTML page about a model that opens in any browser, offline: the model card, the
    training curves, samples, the surprise map of a text, the neuron browser, the gradient
    through time, and a sampler that runs in the page. Nothing in it is fetched."""
    import os

    from ..errors import UsageError
    from ..store import outputs
    from ..views.report import build, write, written_by_charlm
    # refused before the work, not after it
    if text_path is None:
        refuse_given(["encoding"], "--text FILE")
    outputs.check_writable(out, "-o", "report.html")
    outputs.refuse_inputs(out, "-o", [(model_path, "the checkpoint"),
                                      (text_path, "the --text file")])
    if os.path.exists(out) and not force and not written_by_charlm(out):
        raise UsageError(f"-o {out} exists and is not a page charlm report wrote: add --force to "
                         "replace it, or choose another -o")
    _, err = consoles()
    if as_json or not err.is_terminal:
        page = build(model_path, text_path, encoding, precision, seed)
    else:
        with err.status("reading the model") as status:
            page = build(model_path, text_path, encoding, precision, seed,
                         progress=lambda message: status.update(message))
    write(out, page.html)
    size = os.path.getsize(out)
    if as_json:
        print_json({"path": out, "bytes": size, "weights": page.precision, "bound": page.bound,
                    "text_source": page.text_source, "text_chars": page.text_chars})
        return
    click.echo(f"Wrote {out} ({size / 1e6:.1f} MB, weights in {page.precision}: the page's "
               f"probabilities within {page.bound:.1e} of charlm score). Open it in a browser.")
