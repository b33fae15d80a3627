"""Numba kernels: pure functions over arrays, no Python objects and no I/O.

- ``cells``, ``activations``: each cell's element-wise update and the gate non-linearities;
- ``recurrent``: the sequence pass of one layer, forward and backward through time (training,
  scoring, validation and the views all run it);
- ``stack_step``: one step of the whole stack for generation (sampling and beam search run it);
- ``barrier``: where the workers that split a step's hidden units meet (generation's step and
  the sequence pass of one sequence);
- ``draw``, ``beam_steps``: the sampling loop and the beam-search loop around that step;
- ``loss``: the softmax, written once, and the losses built on it;
- ``linalg``, ``optim``, ``dropout``, ``adapt``, ``tokens``: products, optimizer updates, dropout
  masks, dynamic evaluation's update, and text to ids at memory speed;
- ``codes``: the number of each cell inside the kernels that run every cell.

Import the submodule you need; importing this package alone compiles nothing. Nothing here
imports from the rest of charlm.
"""
