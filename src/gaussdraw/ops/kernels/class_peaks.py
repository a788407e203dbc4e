"""The per-class peaks kernels (CenterPoint's two-stage top-k); see :mod:`gaussdraw.ops.class_peaks`."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import first_k, ordered_bits, store_peaks, suppressed_values


@triton.jit
def class_top_kernel(heat_ptr, keys_ptr, classes, height, width, per_class_k,
                     KERNEL: tl.constexpr, BLOCK: tl.constexpr, BITS: tl.constexpr):
    """One program a (sample, class) plane: its ``per_class_k`` best peaks (equal values at the last
    place: the smallest pixels), written as int64 keys in ascending pixel order at
    keys[sample, class * per_class_k:...]."""
    plane = tl.program_id(0).to(tl.int64)
    pixel = tl.arange(0, BLOCK)
    valid = pixel < height * width
    values = suppressed_values(heat_ptr, plane * height * width, pixel // width, pixel % width, valid, height, width,
                               KERNEL)
    order = ordered_bits(values)
    chosen, at = first_k(order, valid, per_class_k, BITS)
    flat = (plane % classes) * height * width + pixel
    wide = (order.to(tl.int64) << 32) | (0xFFFFFFFF - flat)
    tl.store(keys_ptr + plane * per_class_k + at, wide, mask=chosen)


@triton.jit
def class_select_kernel(keys_ptr, best_ptr, scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr, per_sample, k,
                        plane, width, BLOCK: tl.constexpr, KEEP: tl.constexpr, BITS: tl.constexpr):
    """One program a sample: the k best of its classes' keys (stored in ascending index order, so equal
    values at the k-th place are taken smallest index first), sorted and written out."""
    sample = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    valid = lanes < per_sample
    wide = tl.load(keys_ptr + sample * per_sample + lanes, mask=valid, other=-9223372036854775808)
    chosen, at = first_k((wide >> 32).to(tl.int32), valid, k, BITS)
    tl.store(best_ptr + sample * KEEP + at, wide, mask=chosen)
    tl.debug_barrier()  # the chosen keys, stored by every thread, read back in sorting lanes
    keep = tl.arange(0, KEEP)
    best = tl.load(best_ptr + sample * KEEP + keep, mask=keep < k, other=-9223372036854775808)
    best = tl.sort(best, descending=True)
    store_peaks(best, keep < k, sample * k, scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr, plane, width)
