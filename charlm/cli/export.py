"""``charlm export``: a model as an ONNX or PyTorch file (see :mod:`charlm.export`)."""
import click

from ..export.files import FORMATS
from .common import DEFAULT_MODEL, print_json, reports_errors

EXAMPLES = """
\b
Examples:
  charlm export                                  # charlm.npz -> charlm.onnx
  charlm export names.npz -o names.onnx          # for onnxruntime (Python, C++, the web ...)
  charlm export names.npz -o names.safetensors   # a PyTorch state dict (nn.RNN / nn.LSTM)
  charlm export names.npz -o model.bin --to torch
  charlm export names.npz -o names.onnx --force  # replace an earlier export
"""


@click.command(epilog=EXAMPLES)
@click.argument("model", default=DEFAULT_MODEL, required=False)
@click.option("-o", "--out", default=None, metavar="FILE",
              help="The file to write (an existing one only with --force).  [default: MODEL "
                   "with the format's extension]")
@click.option("--to", "to", type=click.Choice(list(FORMATS)), default=None,
              help="onnx: standard RNN/GRU/LSTM operators; torch: a .safetensors state dict of "
                   "nn.Embedding + nn.RNN/nn.LSTM + nn.Linear.  [default: from the extension of "
                   "-o FILE; onnx without -o]")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--json", "as_json", is_flag=True, help='Print {"path", "format", "bytes"}.')
@reports_errors
def export(model, out, to, force, as_json):
    """Write the model MODEL in a format other runtimes read. ONNX: inputs "tokens" (batch, time)
    int64 and the states "h" (and "c") (layers, batch, hidden); outputs "log_probs" (batch,
    time, vocab) and "h_out" (and "c_out"); the vocabulary and mode in the metadata property
    "charlm". PyTorch: the state dict of the module docs/export.md builds, with the vocabulary in
    the file's metadata (a GRU cannot be one: PyTorch's nn.GRU computes another GRU). The
    exported model's log-probabilities agree with charlm score to 1e-5."""
    import os

    from ..export import export as export_model
    from ..export.files import claim_export
    from ..store.checkpoint import load, require_file
    require_file(model)        # a mistyped MODEL is named as such, not by its default output
    if out is None:
        out = os.path.splitext(model)[0] + FORMATS[to or "onnx"]
    fmt = claim_export(out, to, force, model)       # before the checkpoint is read
    ckpt = load(model)
    export_model(ckpt, out, fmt, source=model, force=force)
    size = os.path.getsize(out)
    if as_json:
        print_json({"path": out, "format": fmt, "bytes": size})
        return
    c = ckpt.config
    click.echo(f"Wrote {out} ({fmt}, {size / 1e3:,.0f} kB): {c.cell} {c.num_layers}x"
               f"{c.hidden_size}, {c.mode} mode, {len(ckpt.vocab)} tokens.")
