"""Optional Triton import, and how a kernel runs on the device of its tensors.

Triton is optional: without it the torch kernels serve every device. A kernel
decorated with ``@triton.jit`` compiles for CUDA tensors. Kernels run on CPU
tensors only in Triton's interpreter (slow, for tests), which ``TRITON_INTERPRET=1``
selects when it is set before Triton is imported.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None
    tl = None

HAVE_TRITON = triton is not None


def jit(fn=None, **options):
    """``triton.jit`` when Triton is installed, else the plain function (never launched)."""
    if fn is None:
        return lambda f: jit(f, **options)
    return triton.jit(fn, **options) if HAVE_TRITON else fn


def require_triton() -> None:
    if not HAVE_TRITON:
        raise RuntimeError(
            "backend='triton' needs the 'triton' package (pip install triton); "
            "use backend='torch' or backend='auto' instead"
        )


def interpreting() -> bool:
    """Whether ``@triton.jit`` kernels run in Triton's interpreter (TRITON_INTERPRET=1 at import)."""
    return HAVE_TRITON and type(_probe).__name__ == "InterpretedFunction"


def check_device(device: torch.device) -> None:
    """Raise unless Triton kernels can run on tensors of ``device``."""
    require_triton()
    if device.type == "cpu" and not interpreting():
        raise RuntimeError(
            "backend='triton' on CPU tensors runs in Triton's interpreter, which must be chosen "
            "before triton is imported: set TRITON_INTERPRET=1 in the environment; "
            "or use backend='torch' (the CPU path)"
        )
    if device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"backend='triton' supports CUDA and CPU tensors; got {device.type}")


@jit
def _probe():
    pass
