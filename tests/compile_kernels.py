"""Compile the kernels for an H100 (sm_90) without a GPU, with Triton's own compiler.

Run as a script, without TRITON_INTERPRET (the interpreter accepts code the compiler
rejects, such as non-constexpr globals). Prints one line per kernel; exits non-zero on
the first kernel that does not compile, or on a target kernel (rounded as the references
round) that contains a fused multiply-add.
"""

from __future__ import annotations

import sys

import triton
from triton.backends.compiler import GPUTarget

import triton.language as tl

from gaussdraw.ops.kernels import (centernet_targets, centerpoint_merge, centerpoint_targets, centerpoint_tasks,
                                   circle_nms, class_peaks, draw_gaussians, keypoint_decode, keypoint_heatmaps,
                                   local_maximum, peaks, rotated_nms)

FLOATS = {"sigma_factor", "k_scale", "zero_below", "width_ratio", "height_ratio", "one_minus", "one_plus", "minus_two_o", "o_minus_one", "sixteen_o", "eight_o",
          "range_x", "range_y", "voxel_x", "voxel_y", "out_size_factor", "udp_eps"}
POINTERS = {"centers_ptr": "*i64", "radii_ptr": "*i64", "index_ptr": "*i64", "labels_ptr": "*i64", "counts_ptr": "*i64", "scratch_ptr": "*i32", "counters_ptr": "*i32",
            "table_ptr": "*i32", "ind_ptr": "*i64", "mask_ptr": "*u8", "order_ptr": "*i64", "kept_ptr": "*i64",
            "kept_count_ptr": "*i64", "keys_ptr": "*i64", "tile_max_ptr": "*i32", "bound_ptr": "*i32",
            "candidates_ptr": "*i64", "count_ptr": "*i32", "best_ptr": "*i64", "group_max_ptr": "*i32",
            "groups_ptr": "*i32", "group_count_ptr": "*i32"}
PEAKS_OUT = {"scores_ptr": "*fp32", "labels_ptr": "*i64", "ys_ptr": "*i64", "xs_ptr": "*i64", "indices_ptr": "*i64"}
DECODE = {"centers_ptr": "*fp32"}  # circle NMS takes float centers
TASK_MAPS = {f"{name}{slot}": "*fp32" for name in ("heat", "reg", "hei", "dim", "rot", "vel") for slot in range(6)}
TASKS = {**TASK_MAPS, "origin_x": "fp32", "origin_y": "fp32", "threshold": "fp32", "boxes_ptr": "*fp32"}
TASK_CONSTEXPRS = dict(HAS_RANGE=True, HAS_THRESHOLD=True, NORM_BBOX=True, COLUMNS=9, BLOCK=1024, KEEP=512,
                       KEEP_DIMS=9, BITS=2)
KERNELS = [  # (kernel, constexprs, compiled without fused multiply-adds[, pointer types])
    (draw_gaussians.draw_gaussians_kernel,
     dict(HAS_INDEX=True, HAS_COUNTS=True, BITS=tl.int32, BOXES=1, BLOCK_H=16, BLOCK_W=32, LIMIT=2**62,
          W_CONTIGUOUS=True, KEEP_NAN=True), False),
    (centernet_targets.centernet_boxes_kernel, dict(HAS_COUNTS=True, BLOCK=64), True),
    (centernet_targets.centernet_regress_kernel, dict(HAS_COUNTS=True, BLOCK=64, COUNT_BLOCK=1024), True),
    (centerpoint_targets.centerpoint_assign_kernel,
     dict(HAS_COUNTS=True, HAS_VELOCITY=True, NORM_BBOX=True, COLUMNS=10, BLOCK=64), True),
    (circle_nms.circle_nms_kernel, dict(BLOCK=128), True, DECODE),
    (circle_nms.order_keys_kernel, dict(BLOCK=1024), False),
    (local_maximum.local_maximum_kernel, dict(KERNEL=3, BLOCK_H=16, BLOCK_W=64), False),
    (peaks.group_max_kernel, dict(KERNEL=3, ROWS=16, STRIPS=2, GROUP=8, BLOCK_W=128, SHUFFLE=False), False),
    (peaks.group_max_kernel, dict(KERNEL=3, ROWS=16, STRIPS=2, GROUP=8, BLOCK_W=128, SHUFFLE=True), False),
    (peaks.group_max_kernel, dict(KERNEL=1, ROWS=16, STRIPS=2, GROUP=1, BLOCK_W=128, SHUFFLE=False), False),
    (peaks.bound_kernel, dict(BLOCK=2048, BITS=2), False),
    (peaks.bound_kernel, dict(BLOCK=16384, BITS=1), False),
    (peaks.candidates_kernel, dict(KERNEL=3, GROUP=8, BLOCK_W=128), False),
    (peaks.candidates_kernel, dict(KERNEL=1, GROUP=1, BLOCK_W=128), False),
    (peaks.select_kernel, dict(KERNEL=3, KEEP=128, CHUNK=512), False, PEAKS_OUT),
    (peaks.order_kernel, dict(KEEP=512), False, {**PEAKS_OUT, "flat_ptr": "*i64"}),
    (class_peaks.class_top_kernel, dict(KERNEL=1, BLOCK=4096, BITS=1), False),
    (class_peaks.class_top_kernel, dict(KERNEL=3, BLOCK=4096, BITS=1), False),
    (centerpoint_tasks.centerpoint_top_kernel, dict(BLOCK=4096, BITS=1), False, TASK_MAPS),
    # NATIVE_MATH=False (tl.exp, the interpreter's sort) is the interpreter's variant
    (centerpoint_tasks.centerpoint_task_candidates_kernel, dict(TASK_CONSTEXPRS, NATIVE_MATH=True), True, TASKS),
    (centerpoint_merge.centerpoint_merge_kernel, dict(TASKS=6, BLOCK_T=8, COLUMNS=9, BLOCK_C=16, BLOCK_P=64), True,
     {"kept_counts_ptr": "*i64", "out_labels_ptr": "*i64", "out_counts_ptr": "*i64"}),
    (class_peaks.class_select_kernel, dict(BLOCK=2048, KEEP=512, BITS=2), False, PEAKS_OUT),
    (rotated_nms.suppression_bits_kernel, dict(ROWS=8, WORD=64), True, {"geometry_ptr": "*fp32",
                                                                         "bits_ptr": "*i64"}),
    (rotated_nms.suppression_bits_kernel, dict(ROWS=8, WORD=64), True, {"geometry_ptr": "*fp64",
                                                                         "bits_ptr": "*i64"}),
    (rotated_nms.greedy_walk_kernel, dict(WORDS=16, WORD=64, BLOCK=128), False, {"bits_ptr": "*i64"}),
    *((keypoint_heatmaps.keypoint_heatmaps_kernel, dict(METHOD=method, SIGMA_MODE=sigma_mode, HEIGHT=96, WIDTH=72, BLOCK=2048), True,
       {"keypoints_ptr": keypoints, "sigma_ptr": "*fp64" if sigma_mode else "*i64", "sigma_bits": "i64"})
      for method, sigma_mode, keypoints in [(0, 0, "*fp32"), (1, 0, "*fp16"), (2, 0, "*fp64"), (0, 1, "*fp32"),
                                            (2, 2, "*fp32")]),
    (keypoint_decode.keypoint_maximum_kernel, dict(REFINE=2, KSIZE=11, REGION=16, TILE_W=16, MAPS=1, BLOCK=2048),
     False),
    (keypoint_decode.keypoint_maximum_kernel, dict(REFINE=3, KSIZE=17, REGION=32, TILE_W=16, MAPS=2, BLOCK=4096),
     False, {"heat_ptr": "*fp16", "scores_ptr": "*fp16"}),
    (keypoint_decode.keypoint_maximum_kernel, dict(REFINE=1, KSIZE=11, REGION=16, TILE_W=16, MAPS=4, BLOCK=1024),
     False, {"heat_ptr": "*fp64", "scores_ptr": "*fp64"}),
    (keypoint_decode.keypoint_step_kernel, dict(REFINE=2, KSIZE=11, REGION=16, TILE_W=16, MAPS=16), False),
    (keypoint_decode.keypoint_step_kernel, dict(REFINE=3, KSIZE=11, REGION=16, TILE_W=16, MAPS=8), False,
     {"heat_ptr": "*fp16", "scores_ptr": "*fp16"}),
]


def signature(kernel, constexprs, pointers=None):
    def kind(name):
        if name in constexprs:
            return "constexpr"
        if name in (pointers or {}):
            return pointers[name]
        if name.endswith("_ptr"):
            return POINTERS.get(name, "*fp32")
        return "fp32" if name in FLOATS else "i32"

    return {name: kind(name) for name in kernel.arg_names}


def main() -> int:
    for kernel, constexprs, unfused, *pointers in KERNELS:
        source = triton.compiler.ASTSource(fn=kernel, signature=signature(kernel, constexprs, *pointers),
                                           constexprs=constexprs)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                  options={"enable_fp_fusion": not unfused, "num_warps": 4})
        ptx = compiled.asm["ptx"]
        fused = [line.strip() for line in ptx.splitlines() if line.strip().startswith(("fma.rn.f32", "fma.rn.f64"))]
        print(f"{kernel.fn.__name__}: {len(ptx.splitlines())} PTX lines, {len(fused)} fused multiply-adds")
        if fused and unfused:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
