"""Optional Triton: whether it is installed, whether kernels run in its interpreter, and whether they
can run on a device. Importing this module does not import Triton.

Triton is optional: without it the torch kernels serve every device. The Triton kernels live in
:mod:`gaussdraw.ops.kernels`, one module per op, which import Triton; an op imports its kernel
module when its Triton path first runs, so that ``import gaussdraw`` and the CPU path never pay
for Triton's import (~0.15–0.25 s) and the kernels' set-up (another ~0.1 s). Kernels compile for
CUDA tensors; they run on CPU tensors only in Triton's interpreter (slow, for tests), which
``TRITON_INTERPRET=1`` selects when set before Triton makes the kernels.
"""

from __future__ import annotations

import importlib.util
import os

import torch

HAVE_TRITON = importlib.util.find_spec("triton") is not None


def require_triton() -> None:
    if not HAVE_TRITON:
        raise RuntimeError(
            "backend='triton' needs the 'triton' package (pip install triton); "
            "use backend='torch' or backend='auto' instead"
        )


def interpreting() -> bool:
    """Whether Triton kernels run in Triton's interpreter (``TRITON_INTERPRET=1``), as Triton itself
    reads it (``triton.knobs.runtime.interpret``; the environment on a Triton without knobs). Asking
    imports Triton."""
    if not HAVE_TRITON:
        return False
    import triton

    runtime = getattr(getattr(triton, "knobs", None), "runtime", None)
    if runtime is not None and hasattr(runtime, "interpret"):
        return bool(runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on")


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


def next_power_of_2(n: int) -> int:
    """The smallest power of 2 >= ``n`` (``n`` >= 1), as ``triton.next_power_of_2``."""
    return 1 << (n - 1).bit_length()


def digit_bits(block: int, num_warps: int) -> int:
    """Bits a round of a k-th-largest search over ``block`` int32 keys (``kth_largest_by_digits``'s BITS)
    in a program of ``num_warps`` warps: 2 (16 rounds of three counts packed in one sum) where a thread
    holds at most 16 keys, where a round costs its reduction's latency; else 1 (32 rounds of bisection:
    one comparison a key a round). On the H200, CenterPoint's per-class top kernel (32 keys a thread) ran
    the whole decode in 80.7 us with bisection, 93.2 with the packed digits."""
    return 2 if block <= 16 * 32 * num_warps else 1


def cdiv(a: int, b: int) -> int:
    """``a / b`` rounded up, as ``triton.cdiv``."""
    return -(-a // b)
