"""Where heatmap_peaks' GPU time goes, old path against new, stage by stage (CUDA-graph replay), with the
read-once floor; then CenterPoint's per-class top-k, old (two torch.topk + the order kernel) against new
(two kernels) and against compiled mmdet3d ``_topk``. One GPU call:

    PYTHONPATH=src python benchmarks/peaks_profile.py
"""

import sys

import torch
import triton

from gaussdraw import heatmap_peaks
from gaussdraw.bench.decode import peak_inputs
from gaussdraw.bench.timing import copy_bandwidth, graph_time
from gaussdraw.ops import class_peaks, peaks
from gaussdraw.ops.kernels import class_peaks as class_kernels
from gaussdraw.ops.kernels import peaks as kernels
from gaussdraw.ops.launch import launch
from gaussdraw.reference import centerpoint_topk_composed, heatmap_peaks_composed

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _peaks_old import old_peaks  # noqa: E402

cdiv = triton.cdiv


def us(fn):
    return graph_time(fn) * 1e6


def new_stages(heat, k, kernel, shape: peaks.PeaksLaunchShape):
    """The new path's four launches, each a callable (ops/peaks.py's peaks_triton, split)."""
    batch, classes, height, width = heat.shape
    tiles_w, groups_h = cdiv(width, shape.block_w), cdiv(height, shape.group)
    per_sample = classes * groups_h * tiles_w
    group_max = torch.empty((batch, per_sample), dtype=torch.int32, device="cuda")
    bound, group_count, count = (torch.empty(batch, dtype=torch.int32, device="cuda") for _ in range(3))
    groups = torch.empty((batch, per_sample), dtype=torch.int32, device="cuda")
    capacity = min(classes * height * width, max(shape.capacity[0] * k, shape.capacity[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device="cuda")
    outputs = [torch.empty((batch, k), dtype=heat.dtype, device="cuda")]
    outputs += [torch.empty((batch, k), dtype=torch.int64, device="cuda") for _ in range(4)]
    sizes = dict(height=height, width=width, tiles_w=tiles_w, groups_h=groups_h, KERNEL=kernel,
                 GROUP=shape.group, BLOCK_W=shape.block_w)
    programs = shape.programs or min(max(k // 2, 16), 256)
    keep = triton.next_power_of_2(k)
    steps = {
        "group maxima (one pass)": lambda: launch(
            kernels.group_max_kernel, (cdiv(height, shape.rows) * tiles_w, batch * classes), num_warps=shape.warps,
            heat_ptr=heat, group_max_ptr=group_max, ROWS=shape.rows, **sizes),
        "bound + group list": lambda: launch(
            kernels.bound_kernel, (batch,), num_warps=4 if per_sample <= 4096 else 8, group_max_ptr=group_max,
            bound_ptr=bound, groups_ptr=groups, group_count_ptr=group_count, count_ptr=count, per_sample=per_sample,
            k=k, BLOCK=triton.next_power_of_2(per_sample)),
        "candidates (listed groups; count reset by bound)": lambda: (count.zero_(), launch(
            kernels.candidates_kernel, (programs, batch), num_warps=shape.warps, heat_ptr=heat, bound_ptr=bound,
            groups_ptr=groups, group_count_ptr=group_count, candidates_ptr=candidates, count_ptr=count,
            classes=classes, per_sample=per_sample, capacity=capacity, programs=programs, **sizes)),
        "select + outputs": lambda: launch(
            kernels.select_kernel, (batch,), num_warps=8, heat_ptr=heat, candidates_ptr=candidates, count_ptr=count,
            scores_ptr=outputs[0], labels_ptr=outputs[1], ys_ptr=outputs[2], xs_ptr=outputs[3],
            indices_ptr=outputs[4], classes=classes, height=height, width=width, capacity=capacity, k=k,
            KERNEL=kernel, KEEP=keep, CHUNK=max(shape.chunk or 512, 2 * keep)),
    }
    for step in steps.values():
        step()
    print(f"    groups listed per sample: {group_count.tolist()[:6]} ..., candidates: {count.tolist()[:6]} ...")
    return steps, outputs


def centernet(shape=(32, 80, 128, 128), k=100, kernel=3):
    heat = peak_inputs(shape, "cuda")
    floor = heat.numel() * heat.element_size() / copy_bandwidth("cuda") * 1e6
    print(f"centernet {shape}, k={k}, kernel={kernel}: read-once floor {floor:.1f} us (copy bandwidth); "
          f"torch.amax over the map (a read) {us(lambda: torch.amax(heat)):.1f} us")
    stages = {}
    old = old_peaks(heat, k, kernel, stages=stages)
    print("  old path (tile-bound, before):")
    for name, fn in stages.items():
        print(f"    {name}: {us(fn):.1f} us", flush=True)
    print(f"    whole: {us(lambda: old_peaks(heat, k, kernel)):.1f} us")
    reference = heatmap_peaks_composed(heat, k, kernel)
    default = peaks.TILE_BOUND
    for changes in ({}, dict(warps=1), dict(warps=4), dict(rows=16), dict(rows=64), dict(group=4), dict(group=16),
                    dict(programs=32), dict(programs=128)):
        shape = peaks.PeaksLaunchShape(**{**default.__dict__, **changes})
        print(f"  new path {changes or 'default'} ({shape}):")
        steps, outputs = new_stages(heat, k, kernel, shape)
        for name, fn in steps.items():
            print(f"    {name}: {us(fn):.1f} us", flush=True)
        whole = us(lambda: peaks.peaks_triton(heat, k, kernel, shape=shape))
        same = all(torch.equal(a, b) for a, b in zip(outputs, old)) and torch.equal(outputs[0], reference[0])
        print(f"    whole: {whole:.1f} us = {whole / floor:.2f}x the floor; same as old and mmdet: {same}")
    print(f"  heatmap_peaks (public, default): {us(lambda: heatmap_peaks(heat, k, kernel)):.1f} us")


def centerpoint(shape, k=500, per_class_k=500):
    heat = peak_inputs(shape, "cuda")
    batch, classes, height, width = heat.shape
    print(f"centerpoint {shape}, k={k}, per_class_k={per_class_k}:")
    compiled = torch.compile(centerpoint_topk_composed)
    compiled(heat, k)
    print(f"  mmdet3d _topk eager {us(lambda: centerpoint_topk_composed(heat, k)):.1f} us, "
          f"compiled {us(lambda: compiled(heat, k)):.1f} us")
    first = lambda: torch.topk(heat.reshape(batch, classes, -1), per_class_k)  # noqa: E731
    class_scores, class_flat = first()

    def second():
        scores, pick = torch.topk(class_scores.reshape(batch, -1), k)
        return scores, torch.gather(class_flat.reshape(batch, -1), 1, pick) + pick // per_class_k * height * width

    scores, flat = second()
    print(f"  old: topk per class {us(first):.1f} us, topk of those + gather {us(second):.1f} us, order kernel "
          f"{us(lambda: peaks.order_peaks_triton(scores, flat, height * width, width)):.1f} us")
    keys = torch.empty((batch, classes * per_class_k), dtype=torch.int64, device="cuda")
    keep = triton.next_power_of_2(k)
    best = torch.empty((batch, keep), dtype=torch.int64, device="cuda")
    outs = [torch.empty((batch, k), dtype=heat.dtype, device="cuda")] + [
        torch.empty((batch, k), dtype=torch.int64, device="cuda") for _ in range(4)]
    block, block2 = triton.next_power_of_2(height * width), triton.next_power_of_2(classes * per_class_k)
    for warps in (None, 4, 8, 16, 32):
        top = lambda w=warps: launch(  # noqa: E731
            class_kernels.class_top_kernel, (batch * classes,), num_warps=w or class_peaks._warps(block), heat_ptr=heat,
            keys_ptr=keys, classes=classes, height=height, width=width, per_class_k=per_class_k, KERNEL=1, BLOCK=block)
        select = lambda w=warps: launch(  # noqa: E731
            class_kernels.class_select_kernel, (batch,), num_warps=w or class_peaks._warps(max(block2, keep)),
            keys_ptr=keys, best_ptr=best, scores_ptr=outs[0], labels_ptr=outs[1], ys_ptr=outs[2], xs_ptr=outs[3],
            indices_ptr=outs[4], per_sample=classes * per_class_k, k=k, plane=height * width, width=width,
            BLOCK=block2, KEEP=keep)
        print(f"  new, warps {warps or 'default'}: per-class kernel {us(top):.1f} us, select kernel {us(select):.1f} us")
    ours = heatmap_peaks(heat, k, kernel=1, per_class_k=per_class_k)
    print(f"  new whole (heatmap_peaks): {us(lambda: heatmap_peaks(heat, k, 1, per_class_k=per_class_k)):.1f} us; "
          f"scores equal mmdet3d: {torch.equal(ours.scores, centerpoint_topk_composed(heat, k)[0])}")


if __name__ == "__main__":
    centernet()
    for shape in ((4, 10, 128, 128), (4, 2, 128, 128)):
        centerpoint(shape)
