"""charlm: character-level recurrent language models, compiled with Numba."""
