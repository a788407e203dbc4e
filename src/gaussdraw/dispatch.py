"""The one rule that decides what runs a public op.

Every public function asks :func:`route` once and runs its op through :func:`run`:

- ``backend="torch"``: the torch implementation, on any device, eager or compiled;
- ``backend="triton"``: the Triton kernels (CUDA tensors; CPU tensors only in Triton's
  interpreter, ``TRITON_INTERPRET=1``); an error where they cannot run;
- ``backend="auto"``: the Triton kernels on CUDA tensors where Triton is installed, else torch.

Eager calls run the chosen implementation directly. While ``torch.compile`` traces a call,
the op registered with ``torch.library`` runs instead, with the same choice passed as its
``use_triton`` argument: the compiler sees one opaque op, and the rule is the same.

Example:
    >>> route("auto", torch.device("cpu"))
    Route(use_triton=False, traced=False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from .ops._triton import HAVE_TRITON, require_triton

BACKENDS = ("auto", "triton", "torch")


class Route(NamedTuple):
    """What runs: the Triton kernels (else torch), and whether through the registered op
    (while ``torch.compile`` traces the call)."""

    use_triton: bool
    traced: bool


@dataclass
class Implementations:
    """An op's implementations: ``triton`` and ``torch`` take the same arguments; ``registered``
    (the ``torch.library`` op) takes them followed by ``use_triton`` and runs :meth:`pick`'s
    choice, as an eager call does."""

    triton: Callable
    torch: Callable
    registered: Callable

    def pick(self, use_triton: bool) -> Callable:
        return self.triton if use_triton else self.torch


def check_backend(backend) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")


def uses_triton(backend: str, device: torch.device) -> bool:
    """Whether ``backend`` runs the Triton kernels on tensors of ``device`` (module docstring)."""
    return backend == "triton" or (backend == "auto" and device.type == "cuda" and HAVE_TRITON)


def route(backend: str, device: torch.device) -> Route:
    """The route of a call with ``backend`` on tensors of ``device``; ``ValueError`` for an unknown
    backend, ``RuntimeError`` for ``"triton"`` without Triton installed. Whether Triton can run on
    ``device`` is checked when its kernels launch."""
    check_backend(backend)
    if backend == "triton":
        require_triton()
    return Route(uses_triton(backend, device), torch.compiler.is_compiling())


def run(op: Implementations, chosen: Route, *args):
    """Run ``op``'s implementation that ``chosen`` names on ``args``."""
    if chosen.traced:
        return op.registered(*args, chosen.use_triton)
    return op.pick(chosen.use_triton)(*args)
