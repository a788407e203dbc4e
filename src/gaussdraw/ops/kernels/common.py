"""``@triton.jit`` helpers shared by several kernels.

- per-box arithmetic of the target-assignment kernels (:mod:`gaussdraw.ops._box_math` says how it
  rounds: float32 operations in the references' order, ``div_rn``, ``sqrt_rn``, kernels compiled
  without fused multiply-adds);
- the int32 order of float32 scores (:mod:`gaussdraw.ops._sort_keys` makes the same keys in torch);
- mmdet's local maximum at a set of pixels (the local-maximum and peaks kernels).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _probe():
    pass


INTERPRETED = type(_probe).__name__ == "InterpretedFunction"  # TRITON_INTERPRET=1 when the kernels were made


# ----------------------------------------------------------------------------
# per-box arithmetic (target assignment)
# ----------------------------------------------------------------------------


@triton.jit
def sample_block(blocks_per_sample, BLOCK: tl.constexpr):
    """(sample b, as int64; positions t, (BLOCK,)) of this program when each program takes BLOCK
    consecutive boxes of one sample (``blocks_per_sample`` programs a sample)."""
    pid = tl.program_id(0)
    b = (pid // blocks_per_sample).to(tl.int64)
    t = (pid % blocks_per_sample) * BLOCK + tl.arange(0, BLOCK)
    return b, t


@triton.jit
def is_finite(x):
    return x - x == 0.0  # inf - inf and NaN - NaN are NaN


@triton.jit
def cornernet_radius(height, width, one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o):
    """mmdet3d 1.x ``gaussian_radius((height, width), o)`` (the original CornerNet formula)."""
    b1 = height + width
    c1 = tl.div_rn(width * height * one_minus, one_plus)
    r1 = (b1 + tl.sqrt_rn(b1 * b1 - 4.0 * c1)) * 0.5
    b2 = 2.0 * (height + width)
    c2 = one_minus * width * height
    r2 = (b2 + tl.sqrt_rn(b2 * b2 - 16.0 * c2)) * 0.5
    b3 = minus_two_o * (height + width)
    c3 = o_minus_one * width * height
    r3 = (b3 + tl.sqrt_rn(b3 * b3 - sixteen_o * c3)) * 0.5
    return tl.minimum(tl.minimum(r1, r2), r3)


@triton.jit
def mmdet_radius(height, width, one_minus, one_plus, minus_two_o, o_minus_one, sixteen_o, eight_o):
    """mmdet 3.x ``gaussian_radius((height, width), o)`` (the corrected formula)."""
    b1 = height + width
    c1 = tl.div_rn(width * height * one_minus, one_plus)
    r1 = (b1 - tl.sqrt_rn(b1 * b1 - 4.0 * c1)) * 0.5
    b2 = 2.0 * (height + width)
    c2 = one_minus * width * height
    r2 = (b2 - tl.sqrt_rn(b2 * b2 - 16.0 * c2)) * 0.125
    b3 = minus_two_o * (height + width)
    c3 = o_minus_one * width * height
    r3 = tl.div_rn(b3 + tl.sqrt_rn(b3 * b3 - sixteen_o * c3), eight_o)
    return tl.minimum(tl.minimum(r1, r2), r3)


@triton.jit
def truncated_radius(radius, valid, least):
    """max(least, int(radius)) as int32 where ``valid`` (radius finite and >= 0 there), else -1."""
    r = tl.minimum(tl.where(valid, radius, 0.0), 1073741824.0).to(tl.int32)  # MAX_RADIUS
    return tl.where(valid, tl.maximum(r, least), -1)


# ----------------------------------------------------------------------------
# ordering keys (peaks, circle NMS)
# ----------------------------------------------------------------------------


@triton.jit
def inside_center_range(valid, x, y, z, bounds_ptr):
    """``valid`` where (x, y, z) lies in mmdet3d's post_center_range (float32 [x0, y0, z0, x1, y1, z1] at
    ``bounds_ptr``, bounds included)."""
    x0, y0, z0 = tl.load(bounds_ptr), tl.load(bounds_ptr + 1), tl.load(bounds_ptr + 2)
    x1, y1, z1 = tl.load(bounds_ptr + 3), tl.load(bounds_ptr + 4), tl.load(bounds_ptr + 5)
    return valid & (x >= x0) & (y >= y0) & (z >= z0) & (x <= x1) & (y <= y1) & (z <= z1)


@triton.jit
def ordered_bits(values):
    """The int32 ``order`` of float32 ``values`` (as :func:`gaussdraw.ops._sort_keys.score_keys` makes it)."""
    values = tl.where(values == 0.0, 0.0, values)
    values = tl.where(values != values, float("nan"), values)
    bits = values.to(tl.int32, bitcast=True)
    return tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


# ----------------------------------------------------------------------------
# local maximum (local-maximum and peaks kernels)
# ----------------------------------------------------------------------------


@triton.jit
def suppressed_values(heat_ptr, base, y, x, inside, height, width, KERNEL: tl.constexpr):
    """``heat * (window max == heat)`` in float32 at pixels (y, x) (tensors of any one shape) of the
    plane starting at ``base``, where ``inside``; the window clipped to the map."""
    heat = tl.load(heat_ptr + base + y * width + x, mask=inside, other=0.0).to(tl.float32)
    window_max = tl.full(heat.shape, float("-inf"), tl.float32)
    pad: tl.constexpr = (KERNEL - 1) // 2
    for dy in tl.static_range(KERNEL):
        for dx in tl.static_range(KERNEL):
            ny = y + (dy - pad)
            nx = x + (dx - pad)
            reach = inside & (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
            near = tl.load(heat_ptr + base + ny * width + nx, mask=reach, other=float("-inf")).to(tl.float32)
            window_max = tl.maximum(window_max, near, propagate_nan=tl.PropagateNan.ALL)
    return heat * (window_max == heat).to(tl.float32)


@triton.jit
def window_row(heat_ptr, base, y, x, height, width):
    """(heat, max of heat at x - 1, x, x + 1) in float32 on row ``y`` (a scalar) at columns ``x``
    (BLOCK_W,) of the plane starting at ``base``: -inf outside the map, as max-pooling pads. Three
    loads a pixel (the shifted two from the cache); the 3 x 3 window is three such rows' maxima."""
    rows = y + 0 * x  # a row of y: Triton's interpreter cannot mix a scalar and a block of masks
    row_ok = (rows >= 0) & (rows < height)
    at = heat_ptr + base + y * width + x
    heat = tl.load(at, mask=row_ok & (x < width), other=float("-inf")).to(tl.float32)
    left = tl.load(at - 1, mask=row_ok & (x >= 1) & (x <= width), other=float("-inf")).to(tl.float32)
    right = tl.load(at + 1, mask=row_ok & (x + 1 < width), other=float("-inf")).to(tl.float32)
    return heat, tl.maximum(tl.maximum(left, heat, propagate_nan=tl.PropagateNan.ALL), right,
                            propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def max3(a, b, c):
    """The largest of three; NaN where any is NaN (as max-pooling)."""
    return tl.maximum(tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL), c, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def quad_rows(heat_ptr, base, y, first, height, width, KERNEL: tl.constexpr, SHUFFLE: tl.constexpr = False):
    """(heat, max of heat at x - 1, x, x + 1) in float32, each (S, Q, 4), on rows ``y`` (S,) at columns
    ``first[:, None] + (0, 1, 2, 3)`` (``first``: (Q,)): four consecutive columns a thread, read as one
    16-byte load where the row is aligned,
    plus the two neighbours beyond the four (two scalar loads, from the cache; SHUFFLE: from the next and
    previous threads by warp shuffles, loaded at the tile's ends only); the shifted values come from the
    four in registers. -inf outside the map, as max-pooling pads. KERNEL 1: the heat twice, one load."""
    x = first[:, None] + tl.arange(0, 4)[None, :]
    rows = y[:, None, None] + 0 * x[None, :, :]
    row_ok = (rows >= 0) & (rows < height)
    at = heat_ptr + base + rows * width + x[None, :, :]
    heat = tl.load(at, mask=row_ok & (x[None, :, :] < width), other=float("-inf")).to(tl.float32)
    if KERNEL == 1:
        return heat, heat
    even, odd = tl.split(tl.reshape(heat, (heat.shape[0], heat.shape[1], 2, 2)))  # columns 0, 2 and 1, 3
    c0, c2 = tl.split(even)
    c1, c3 = tl.split(odd)
    first = first[None, :] + 0 * y[:, None]  # (S, Q)
    first_ok = (y[:, None] >= 0) & (y[:, None] < height)
    row_at = heat_ptr + base + y[:, None] * width + first
    left_ok = first_ok & (first >= 1) & (first <= width)
    right_ok = first_ok & (first + 4 < width)
    if SHUFFLE:  # inside the tile: the previous / next thread's four (warp shuffles); only the ends loaded
        quad = tl.arange(0, heat.shape[1])[None, :] + 0 * y[:, None]
        last: tl.constexpr = heat.shape[1] - 1
        left = tl.where(quad == 0, tl.load(row_at - 1, mask=left_ok & (quad == 0), other=float("-inf")).to(tl.float32),
                        tl.gather(c3, tl.maximum(quad - 1, 0), axis=1))
        right = tl.where(quad == last, tl.load(row_at + 4, mask=right_ok & (quad == last), other=float("-inf")),
                         tl.gather(c0, tl.minimum(quad + 1, last), axis=1)).to(tl.float32)
        right = tl.where(right_ok, right, float("-inf"))
    else:  # two more loads, from the cache
        left = tl.load(row_at - 1, mask=left_ok, other=float("-inf")).to(tl.float32)
        right = tl.load(row_at + 4, mask=right_ok, other=float("-inf")).to(tl.float32)
    m0, m1, m2, m3 = max3(left, c0, c1), max3(c0, c1, c2), max3(c1, c2, c3), max3(c2, c3, right)
    row_max = tl.reshape(tl.join(tl.join(m0, m2), tl.join(m1, m3)), heat.shape)
    return heat, row_max


@triton.jit
def peak_of_rows(heat, above, middle, below):
    """mmdet's ``heat * (window max == heat)`` from the row maxima ``above``, ``middle``, ``below``
    (:func:`window_row`) of a 3 x 3 window; NaN anywhere in the window makes its max NaN."""
    window_max = tl.maximum(tl.maximum(above, middle, propagate_nan=tl.PropagateNan.ALL), below,
                            propagate_nan=tl.PropagateNan.ALL)
    return heat * (window_max == heat).to(tl.float32)


# ----------------------------------------------------------------------------
# selection (peaks)
# ----------------------------------------------------------------------------


@triton.jit
def kth_largest(keys, k):
    """The ``k``-th largest of int32 ``keys`` (1-d; padding at -2^31, below every real key; k at most
    the number of real keys), by bisection on its bits: 32 counts, no sort."""
    found = tl.sum(keys * 0, axis=0).to(tl.int64) - 2147483648  # count(keys >= found) >= k throughout
    for bit in tl.static_range(31, -1, -1):
        trial = found + (1 << bit)
        enough = tl.sum((keys >= trial.to(tl.int32)).to(tl.int32), axis=0) >= k
        found = tl.where(enough, trial, found)
    return found.to(tl.int32)


@triton.jit
def kth_largest_by_digits(keys, k, BITS: tl.constexpr):
    """:func:`kth_largest` (BITS = 1) or by 2-bit digits (BITS = 2): 16 rounds, each of three trial values
    whose counts share one int64 sum (21 bits a count: up to 2^21 - 1 keys), half the dependent
    reductions for three comparisons a key a round. (H200, a 128 x 128 plane a program of 16 warps:
    38.5 us packed, 46.3 with the three counts as a (4, n) comparison reduced on one axis, 48.5 for
    bisection written as a (2, n) one. Plain bisection was not in that run: the whole CenterPoint decode,
    whose top kernels hold 32 keys a thread, was faster with it than with packed digits, 80.7 against
    93.2 us, in two runs of one day; benchmarks/NOTES.md.)"""
    tl.static_assert(BITS == 1 or BITS == 2, "BITS is 1 or 2")
    tl.static_assert(keys.shape[0] < 2097152, "the packed counts hold up to 2^21 - 1 keys")
    if BITS == 1:
        return kth_largest(keys, k)
    found = tl.sum(keys * 0, axis=0).to(tl.int64) - 2147483648  # count(keys >= found) >= k throughout
    for shift in tl.static_range(30, -1, -2):  # found's lower bits are zero: found + 3 << shift fits int32
        packed = ((keys >= (found + (1 << shift)).to(tl.int32)).to(tl.int64) +
                  ((keys >= (found + (2 << shift)).to(tl.int32)).to(tl.int64) << 21) +
                  ((keys >= (found + (3 << shift)).to(tl.int32)).to(tl.int64) << 42))
        counts = tl.sum(packed, axis=0)
        digit = tl.where((counts >> 42) >= k, 3,
                         tl.where(((counts >> 21) & 0x1FFFFF) >= k, 2, tl.where((counts & 0x1FFFFF) >= k, 1, 0)))
        found = found + (digit.to(tl.int64) << shift)
    return found.to(tl.int32)


@triton.jit
def first_k(keys, valid, k, BITS: tl.constexpr):
    """(chosen, position among the chosen) of 1-d int32 ``keys``: the ``k`` largest where ``valid``, equal
    keys at the k-th place taken in lane order (lanes in ascending index: the smallest indices); the k-th
    largest found BITS bits a round (:func:`kth_largest_by_digits`; the launcher's ``digit_bits``)."""
    keys = tl.where(valid, keys, -2147483648)
    kth = kth_largest_by_digits(keys, k, BITS)
    above = valid & (keys > kth)
    equal = (valid & (keys == kth)).to(tl.int32)
    room = k - tl.sum(above.to(tl.int32), axis=0)
    chosen = (above | ((equal > 0) & (tl.cumsum(equal, axis=0) <= room))).to(tl.int32)
    return chosen > 0, tl.cumsum(chosen, axis=0) - chosen


@triton.jit
def store_peaks(keys, valid, row, scores_ptr, labels_ptr, ys_ptr, xs_ptr, indices_ptr, plane, width):
    """Splits int64 keys ``(order(score) << 32) | (0xFFFFFFFF - flat)`` into a row of the five outputs
    (score in the output's dtype, class, y, x, pixel index) at ``row + lane`` where ``valid``."""
    ordered = (keys >> 32).to(tl.int32)
    bits = tl.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    flat = 0xFFFFFFFF - (keys & 0xFFFFFFFF)
    index = flat % plane
    lanes = row + tl.arange(0, keys.shape[0])
    tl.store(scores_ptr + lanes, bits.to(tl.float32, bitcast=True).to(scores_ptr.dtype.element_ty), mask=valid)
    tl.store(labels_ptr + lanes, flat // plane, mask=valid)
    tl.store(indices_ptr + lanes, index, mask=valid)
    tl.store(ys_ptr + lanes, index // width, mask=valid)
    tl.store(xs_ptr + lanes, index % width, mask=valid)
