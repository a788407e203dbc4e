"""Keypoint decoding on the GPU: each refinement's time (CUDA-graph replay, as the bench's graph_time) for
the launch shapes of ``DecodeLaunchShape``, against the read-once floor (the previous kernel, timed beside
them on 2026-12-03: results/h200-2026-12-03-evening-kp-decode-sweep.txt);
WholeBody float32 swept first (the target), then float16 and COCO with the leading shapes.

    PYTHONPATH=src python benchmarks/keypoint_decode_profile.py [--quick]

One line a variant: ``µs  ×floor  shape``; "DIFFERS" where the result is not the torch path's (scores
exact, keypoints within 1e-3 px). The last lines: the best shape of each refinement on WholeBody float32.
"""

import sys
import time

import torch

from gaussdraw.bench.keypoint_decode import DECODE_CONFIGS, pose_heatmaps  # noqa: E402
from gaussdraw.bench.timing import copy_bandwidth, graph_time  # noqa: E402
from gaussdraw.ops.keypoint_decode import (REFINE_MODES, DecodeLaunchShape, keypoint_decode_torch,  # noqa: E402
                                           keypoint_decode_triton)

MAXIMUM_SHAPES = [  # (maps, block, warps) of the maximum pass; registers a thread on sm_90 in NOTES.md
    (1, 2048, 4), (1, 1024, 2), (1, 4096, 4), (1, 4096, 8), (1, 8192, 8), (2, 4096, 8), (4, 2048, 8), (2, 1024, 4)]
STEP_SHAPES = [(16, 4), (8, 2), (4, 1), (32, 4), (16, 2), (8, 1)]  # (step_maps, step_warps), split only


def label(shape: DecodeLaunchShape, refine: int) -> str:
    text = f"maps {shape.maps} block {shape.block} warps {shape.warps}"
    if refine >= 2:
        text += " fused" if shape.fused else f" + step maps {shape.step_maps} warps {shape.step_warps}"
    return text + (" (default)" if shape == DecodeLaunchShape() else "")


def variants(refine: int, full: bool) -> list:
    """(label, function of the heatmaps) to time for one refinement: each launch shape."""
    shapes = []
    for maps, block, warps in MAXIMUM_SHAPES if full else MAXIMUM_SHAPES[:3]:
        for fused in ((True, False) if refine >= 2 else (True,)):
            shapes.append(DecodeLaunchShape(maps=maps, block=block, warps=warps, fused=fused))
    if refine >= 2:
        shapes += [DecodeLaunchShape(fused=False, step_maps=step_maps, step_warps=step_warps)
                   for step_maps, step_warps in (STEP_SHAPES if full else STEP_SHAPES[:3])]
    out = []
    for shape in dict.fromkeys(shapes):  # distinct, in order
        out.append((label(shape, refine), lambda h, s=shape: keypoint_decode_triton(h, refine, 11, shape=s)))
    return out


def profile(name: str, dtype: torch.dtype, full: bool, bandwidth: float, best: dict) -> None:
    heat = pose_heatmaps(DECODE_CONFIGS[name], "cuda").to(dtype)
    floor = heat.numel() * heat.element_size() / bandwidth * 1e6
    print(f"{name} {tuple(heat.shape)} {dtype}: read-once floor {floor:.1f} us", flush=True)
    for refine, code in REFINE_MODES.items():
        want = keypoint_decode_torch(heat, code, 11)
        for label, fn in variants(code, full):
            got = fn(heat)
            same = torch.equal(got[1], want[1]) and bool(((got[0] - want[0]).abs() <= 1e-3).all())
            us = graph_time(lambda f=fn: f(heat)) * 1e6
            print(f"  {str(refine):8s} {us:7.1f} us {us / floor:5.2f}x  {label}{'' if same else '  DIFFERS'}",
                  flush=True)
            key = (name, str(dtype), str(refine))
            if same and us < best.get(key, (float("inf"),))[0]:
                best[key] = (us, us / floor, label)
        if code >= 2:  # one map of noise: clamps bite, its program blurs the whole map for the rescale
            clamped = heat.clone()
            clamped[0, 1] = torch.randn(heat.shape[2:], device="cuda").to(dtype)
            us = graph_time(lambda: keypoint_decode_triton(clamped, code, 11)) * 1e6
            print(f"  {str(refine):8s} {us:7.1f} us {us / floor:5.2f}x  default, one map blurred whole", flush=True)


def main() -> None:
    quick = "--quick" in sys.argv
    start = time.perf_counter()
    bandwidth = copy_bandwidth(torch.device("cuda"))
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; copy bandwidth {bandwidth / 1e12:.2f} TB/s")
    best: dict = {}
    runs = [("wholebody", torch.float32, not quick), ("wholebody", torch.float16, False),
            ("coco", torch.float32, False)]
    for name, dtype, full in runs[:1] if quick else runs:
        profile(name, dtype, full, bandwidth, best)
        print(f"  ({time.perf_counter() - start:.0f} s so far)", flush=True)
    print("best shapes:")
    for (name, dtype, refine), (us, ratio, label) in best.items():
        print(f"  {name} {dtype} {refine:8s} {us:7.1f} us {ratio:5.2f}x  {label}")


if __name__ == "__main__":
    main()
