"""Ways to find a plane's k best keys in one program, timed on CenterPoint's planes (nuScenes: 10 class
planes a sample, k = 500): the measurement behind ``kth_largest_by_digits``' packed 2-bit rounds. One GPU call:

    PYTHONPATH=src python benchmarks/plane_top_variants.py

Plane top-k methods (each: load, the k-th largest key, the first k in pixel order, stored):
  bisect    32 rounds, one count a round (kth_largest: the decode's top kernel);
  digits2   16 rounds of 3 counts, a (4, n) comparison reduced on axis 1;
  packed2   16 rounds of 3 counts packed in one int64 sum (21 bits a count: kth_largest_by_digits, BITS=2);
  radix8    4 rounds of an 8-bit digit: tl.histogram of 512 bins (the digit where the key's higher bits
            equal the prefix found, 256 where they are above, 257 below).
"""

import torch
import triton
import triton.language as tl

from gaussdraw.bench.timing import graph_time
from gaussdraw.ops.kernels.common import kth_largest, kth_largest_by_digits, ordered_bits

LOWEST = tl.constexpr(-2147483648)


@triton.jit
def kth_by_four_rows(keys, k):
    digits = tl.arange(0, 4).to(tl.int64)
    found = tl.sum(keys * 0, axis=0).to(tl.int64) - 2147483648
    for shift in tl.static_range(30, -1, -2):
        trials = (found + (digits << shift)).to(tl.int32)
        counts = tl.sum((keys[None, :] >= trials[:, None]).to(tl.int32), axis=1)
        found = found + (tl.max(tl.where(counts >= k, digits, 0), axis=0) << shift)
    return found.to(tl.int32)


@triton.jit
def kth_radix(keys, k):
    u = keys.to(tl.int64) + 2147483648  # [0, 2^32): the order as unsigned
    lanes = tl.arange(0, 512)
    prefix = tl.sum(keys * 0, axis=0).to(tl.int64)
    for shift in tl.static_range(24, -1, -8):
        high = u >> (shift + 8)
        digit = (u >> shift) & 255
        bins = tl.where(high == prefix, digit, tl.where(high > prefix, 256, 257)).to(tl.int32)
        h = tl.histogram(bins, 512)
        above = tl.sum(tl.where(lanes == 256, h, 0), axis=0)
        matched = tl.where(lanes < 256, h, 0)
        suffix = tl.sum(matched, axis=0) - tl.cumsum(matched, axis=0) + matched  # count(digit >= lane)
        d = tl.max(tl.where((lanes < 256) & (above + suffix >= k), lanes, 0), axis=0)
        prefix = prefix * 256 + d
    return (prefix - 2147483648).to(tl.int32)


@triton.jit
def plane_top_kernel(heat_ptr, keys_ptr, plane, k, BLOCK: tl.constexpr, METHOD: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)
    pixel = tl.arange(0, BLOCK)
    valid = pixel < plane
    values = tl.load(heat_ptr + p * plane + pixel, mask=valid, other=0.0)
    keys = tl.where(valid, ordered_bits(values), LOWEST)
    if METHOD == 0:
        kth = kth_largest(keys, k)
    elif METHOD == 1:
        kth = kth_by_four_rows(keys, k)
    elif METHOD == 2:
        kth = kth_largest_by_digits(keys, k, 2)
    else:
        kth = kth_radix(keys, k)
    above = valid & (keys > kth)
    equal = (valid & (keys == kth)).to(tl.int32)
    room = k - tl.sum(above.to(tl.int32), axis=0)
    chosen = (above | ((equal > 0) & (tl.cumsum(equal, axis=0) <= room))).to(tl.int32)
    at = tl.cumsum(chosen, axis=0) - chosen
    wide = (keys.to(tl.int64) << 32) | (0xFFFFFFFF - pixel.to(tl.int64))
    tl.store(keys_ptr + p * k + at, wide, mask=chosen > 0)


def plane_tops():
    k = 500
    for side in (128, 180):
        for planes in (10, 40):
            plane = side * side
            heat = torch.randn((planes, plane), device="cuda") - 2.0
            expected = torch.sort(torch.topk(heat, k, dim=1).values, dim=1).values
            block = triton.next_power_of_2(plane)
            for method, name in enumerate(("bisect", "digits2", "packed2", "radix8")):
                for warps in (16, 32):
                    keys = torch.full((planes, k), -1, dtype=torch.int64, device="cuda")
                    fn = lambda: plane_top_kernel[(planes,)](heat, keys, plane, k, BLOCK=block, METHOD=method,  # noqa
                                                             num_warps=warps)
                    try:
                        fn()
                        bits = (keys >> 32).to(torch.int32)
                        bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).view(torch.float32)
                        same = torch.equal(torch.sort(bits, dim=1).values, expected)
                        print(f"{side}x{side}, {planes} planes, {name}, {warps} warps: "
                              f"{graph_time(fn) * 1e6:.1f} us; same: {same}", flush=True)
                    except Exception as error:
                        print(f"{side}x{side}, {planes} planes, {name}, {warps} warps: failed: "
                              f"{type(error).__name__}: {str(error)[:200]}", flush=True)


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    plane_tops()
