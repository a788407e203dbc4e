"""The CenterPoint candidates kernel (see :mod:`gaussdraw.ops.centerpoint_candidates`)."""

from __future__ import annotations

import triton
import triton.language as tl

from .common import inside_center_range


@triton.jit
def centerpoint_candidates_kernel(gathered_ptr, dims_ptr, yaw_ptr, scores_ptr, xs_ptr, ys_ptr, labels_ptr,
                                  offsets_ptr, boxes_ptr, valid_ptr, out_labels_ptr, k, channels, tasks,
                                  out_size_factor, voxel_x, voxel_y, origin_x, origin_y, bounds_ptr,
                                  threshold, HAS_RANGE: tl.constexpr, HAS_THRESHOLD: tl.constexpr,
                                  COLUMNS: tl.constexpr, BLOCK: tl.constexpr):
    # one program = BLOCK candidates of one problem (sample x task): its boxes, validity and global labels
    problem = tl.program_id(1).to(tl.int64)
    o_k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m_k = o_k < k
    p_reg = gathered_ptr + problem * channels * k + o_k  # channel c of candidate i at + c * k
    xs = tl.load(xs_ptr + problem * k + o_k, mask=m_k, other=0).to(tl.float32)
    ys = tl.load(ys_ptr + problem * k + o_k, mask=m_k, other=0).to(tl.float32)
    # mmdet3d's order of float32 operations; the launch turns fused multiply-adds off
    x = (xs + tl.load(p_reg, mask=m_k, other=0.0)) * out_size_factor * voxel_x + origin_x
    y = (ys + tl.load(p_reg + k, mask=m_k, other=0.0)) * out_size_factor * voxel_y + origin_y
    z = tl.load(p_reg + 2 * k, mask=m_k, other=0.0)
    p_box = boxes_ptr + (problem * k + o_k) * COLUMNS
    tl.store(p_box, x, mask=m_k)
    tl.store(p_box + 1, y, mask=m_k)
    tl.store(p_box + 2, z, mask=m_k)
    for d in tl.static_range(3):
        tl.store(p_box + 3 + d, tl.load(dims_ptr + (problem * 3 + d) * k + o_k, mask=m_k, other=0.0), mask=m_k)
    tl.store(p_box + 6, tl.load(yaw_ptr + problem * k + o_k, mask=m_k, other=0.0), mask=m_k)
    for v in tl.static_range(COLUMNS - 7):
        tl.store(p_box + 7 + v, tl.load(p_reg + (8 + v) * k, mask=m_k, other=0.0), mask=m_k)
    valid = m_k
    if HAS_RANGE:  # float32 bounds, as mmdet3d's tensor of post_center_range
        valid = inside_center_range(valid, x, y, z, bounds_ptr)
    if HAS_THRESHOLD:
        valid = valid & (tl.load(scores_ptr + problem * k + o_k, mask=m_k, other=0.0) > threshold)
    tl.store(valid_ptr + problem * k + o_k, valid.to(tl.int8), mask=m_k)
    offset = tl.load(offsets_ptr + problem % tasks)
    label = tl.load(labels_ptr + problem * k + o_k, mask=m_k, other=0)
    tl.store(out_labels_ptr + problem * k + o_k, label + offset, mask=m_k)
