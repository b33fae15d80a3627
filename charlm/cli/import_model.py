"""``charlm import``: a PyTorch state dict in ``.safetensors`` as a charlm checkpoint
(see :mod:`charlm.export.torch_state`)."""
import click

from .common import print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm import names.safetensors                # -> names.npz (vocabulary from its metadata)
  charlm import gpu.safetensors -o gpu.npz --vocab vocab.json --mode lines
  charlm sample --model gpu.npz --num 5
"""


@click.command("import", epilog=EXAMPLES)
@click.argument("file")
@click.option("-o", "--out", default=None, metavar="MODEL",
              help="The checkpoint to write.  [default: FILE with the extension .npz]")
@click.option("--vocab", default=None, metavar="FILE",
              help="A JSON list of the tokens in id order (\"<EOS>\", \"<UNK>\", then one "
                   "character each), or an object with a \"vocab\" list.  [default: the file's "
                   "metadata]")
@click.option("--mode", type=click.Choice(["stream", "lines"]), default=None,
              help="How the model reads text (see charlm train --help).  [default: the file's "
                   "metadata, else stream]")
@click.option("--force", is_flag=True, help="Replace MODEL if it exists.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"path", "cell", "hidden_size", "num_layers", "mode", "vocab_size"}.')
@reports_errors
def import_model(file, out, vocab, mode, force, as_json):
    """Make a charlm checkpoint of FILE, the state dict of a PyTorch nn.Embedding (optional) +
    nn.RNN (tanh) or nn.LSTM + nn.Linear with the keys embed.weight, rnn.*, out.weight and
    out.bias (see docs/export.md), in .safetensors. sample, score, fill, info and report then use
    it. A file written by charlm export comes back with the same weights, bit for bit."""
    import os

    from ..export import import_checkpoint
    if out is None:
        out = os.path.splitext(file)[0] + ".npz"
    ckpt = import_checkpoint(file, vocab=vocab, mode=mode, out=out, force=force)
    c = ckpt.config
    if as_json:
        print_json({"path": out, "cell": c.cell, "hidden_size": c.hidden_size,
                    "num_layers": c.num_layers, "mode": c.mode, "vocab_size": len(ckpt.vocab)})
        return
    click.echo(f"Wrote {out}: {c.cell} {c.num_layers}x{c.hidden_size}, {c.mode} mode, "
               f"{len(ckpt.vocab)} tokens.")
