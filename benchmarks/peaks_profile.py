"""Where heatmap_peaks' GPU time goes, launch by launch (CUDA-graph replay), with the read-once floor; then
CenterPoint's two-stage top-k (per_class_k = k: the one-stage path) against compiled mmdet3d ``_topk``, and
the two per-class kernels (the path for per_class_k < k). One GPU call:

    PYTHONPATH=src python benchmarks/peaks_profile.py [--quick]

--quick: the default launch shape only (the sweep of launch shapes comes last otherwise).
"""

import argparse
import dataclasses
import sys

import torch
import triton

from gaussdraw import heatmap_peaks
from gaussdraw.bench.decode import peak_inputs
from gaussdraw.bench.timing import copy_bandwidth, graph_time
from gaussdraw.ops import class_peaks, peaks
from gaussdraw.reference import centerpoint_topk_composed, heatmap_peaks_composed

sys.path.insert(0, __file__.rsplit("/", 1)[0])

cdiv = triton.cdiv
SWEEP = (dict(programs=16), dict(programs=32), dict(programs=100), dict(candidate_warps=4), dict(candidate_warps=8),
         dict(shuffle=True), dict(strips=1), dict(strips=4), dict(rows=8), dict(rows=32), dict(rows=8, strips=4),
         dict(chunk=512))


def us(fn):
    return graph_time(fn) * 1e6


def new_stages(heat, k, kernel, shape: peaks.PeaksLaunchShape):
    """The four launches of ops/peaks.py's peaks_triton, each a callable, and the outputs they fill."""
    batch, classes, height, width = heat.shape
    shape = peaks.launch_shape(shape, classes, height, width, k, kernel)
    steps, outputs = peaks.peaks_launches(heat, k, kernel, shape)
    for step in steps.values():
        step()
    per_sample = classes * cdiv(height, shape.group) * cdiv(width, shape.block_w)
    programs = peaks.candidate_programs(shape, k)
    print(f"    {shape}: {per_sample} groups a sample, {programs} candidate programs a sample")
    return steps, outputs


def profile_path(heat, k, kernel, floor, shape, reference, label):
    """Each launch of the four-launch path, the whole path, and whether it gives the reference's results."""
    print(f"  new path {label}:")
    steps, outputs = new_stages(heat, k, kernel, shape)
    for name, fn in steps.items():
        print(f"    {name}: {us(fn):.1f} us", flush=True)
    whole = us(lambda: peaks.peaks_triton(heat, k, kernel, shape=shape))
    same = all(torch.equal(a, b) for a, b in zip(outputs, reference))
    print(f"    whole: {whole:.1f} us = {whole / floor:.2f}x the floor; same as heatmap_peaks' torch backend: {same}")


def centernet(sweep, shape=(32, 80, 128, 128), k=100, kernel=3):
    heat = peak_inputs(shape, "cuda")
    floor = heat.numel() * heat.element_size() / copy_bandwidth("cuda") * 1e6
    print(f"centernet {shape}, k={k}, kernel={kernel}: read-once floor {floor:.1f} us (copy bandwidth); "
          f"torch.amax over the map (a read) {us(lambda: torch.amax(heat)):.1f} us")
    reference = heatmap_peaks(heat, k, kernel, backend="torch")
    if not torch.equal(reference[0], heatmap_peaks_composed(heat, k, kernel)[0]):
        print("  (the torch backend's scores differ from mmdet's composition)")
    for changes in SWEEP if sweep else ({},):
        shape = dataclasses.replace(peaks.TILE_BOUND, **changes)
        profile_path(heat, k, kernel, floor, shape, reference, changes or "default")
    if not sweep:
        print(f"  heatmap_peaks (public, default): {us(lambda: heatmap_peaks(heat, k, kernel)):.1f} us")


def centerpoint(shape, k=500, per_class_k=500):
    heat = peak_inputs(shape, "cuda")
    batch, classes, height, width = heat.shape
    floor = heat.numel() * heat.element_size() / copy_bandwidth("cuda") * 1e6
    print(f"centerpoint {shape}, k={k}, per_class_k={per_class_k}: read-once floor {floor:.1f} us")
    compiled = torch.compile(centerpoint_topk_composed)
    compiled(heat, k)
    print(f"  mmdet3d _topk eager {us(lambda: centerpoint_topk_composed(heat, k)):.1f} us, "
          f"compiled {us(lambda: compiled(heat, k)):.1f} us")
    reference = heatmap_peaks(heat, k, 1, per_class_k=per_class_k, backend="torch")
    if peaks.launch_shape(peaks.TILE_BOUND, classes, height, width, k) is None:
        print("  fewer groups than k: the per-class kernels")
    else:
        profile_path(heat, k, 1, floor, peaks.TILE_BOUND, reference, "(per_class_k >= k: the one-stage path)")
    steps, _ = class_peaks.class_peaks_launches(heat, k, 1, per_class_k)
    top, select = steps.values()
    print(f"  two per-class kernels (the path for per_class_k < k): per-class {us(top):.1f} us, "
          f"select {us(select):.1f} us")
    ours = heatmap_peaks(heat, k, kernel=1, per_class_k=per_class_k)
    print(f"  heatmap_peaks (public): {us(lambda: heatmap_peaks(heat, k, 1, per_class_k=per_class_k)):.1f} us; "
          f"scores equal mmdet3d: {torch.equal(ours.scores, centerpoint_topk_composed(heat, k)[0])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default launch shape only (no sweep)")
    parser.add_argument("--sweep-only", action="store_true", help="the sweep of launch shapes alone")
    args = parser.parse_args()
    if not args.sweep_only:
        centernet(sweep=False)  # the default first: the targets before the sweep
        for shape in ((4, 10, 128, 128), (4, 2, 128, 128)):
            centerpoint(shape)
    if not args.quick:
        print("sweep of launch shapes (centernet):")
        centernet(sweep=True)
