"""charlm's version: what ``charlm --version`` prints and exported files record."""
__version__ = "0.1.0"
