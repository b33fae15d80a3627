"""``python -m charlm``: the same as the ``charlm`` command."""
from .cli import main

main(prog_name="charlm")
