"""The Triton kernels, one module per op, and :mod:`.common`'s helpers shared among them.

Each module imports Triton: an op (:mod:`gaussdraw.ops`) imports its kernel module when its
Triton path first runs, so that ``import gaussdraw`` and the CPU path never import Triton.
Kernels launch through :func:`gaussdraw.ops.launch.launch`, their arguments by keyword.
"""
