"""A test kernel around ops/kernels/common.py's selection helpers (imported by tests/test_selection.py inside its
tests, so that collecting the tests does not import Triton)."""

import triton
import triton.language as tl

from gaussdraw.ops.kernels.common import first_k, kth_largest_by_digits


@triton.jit
def selection_kernel(keys_ptr, valid_ptr, chosen_ptr, at_ptr, kth_ptr, n, k,
                     BLOCK: tl.constexpr, BITS: tl.constexpr):
    """One program: the k-th largest of the valid keys (invalid ones padded at -2^31) and first_k's
    (chosen, position) of each lane."""
    lanes = tl.arange(0, BLOCK)
    inside = lanes < n
    keys = tl.load(keys_ptr + lanes, mask=inside, other=-2147483648)
    valid = inside & (tl.load(valid_ptr + lanes, mask=inside, other=0) != 0)
    tl.store(kth_ptr, kth_largest_by_digits(tl.where(valid, keys, -2147483648), k, BITS))
    chosen, at = first_k(keys, valid, k, BITS)
    tl.store(chosen_ptr + lanes, chosen.to(tl.int32), mask=inside)
    tl.store(at_ptr + lanes, at, mask=inside)
