"""Numba kernels: pure functions over arrays, no Python objects and no I/O.

Import the submodule you need (``recurrent``, ``loss``, ``optim``, ``sampling``); importing this
package alone compiles nothing.
"""
