"""The drawing kernel: max-merge Gaussians into heatmap planes, in place (see :mod:`gaussdraw.ops.draw_gaussians`)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Integer arguments and pointer alignments are not specialized on: one compiled kernel
# serves every shape and stride, which lets the direct launch (gaussdraw.ops.launch) reuse it.
INT_ARGS = [
    "num_boxes", "num_planes", "height", "width", "boxes_per_sample", "planes_per_sample", "index_limit", "split",
    "stride_hn", "stride_hh", "stride_hw", "stride_cb", "stride_ct", "stride_cc", "stride_rb", "stride_rt",
    "stride_ib", "stride_it", "stride_nb",
]
POINTER_ARGS = ["heatmap_ptr", "centers_ptr", "radii_ptr", "index_ptr", "counts_ptr"]


@triton.jit(do_not_specialize=INT_ARGS, do_not_specialize_on_alignment=POINTER_ARGS)
def draw_gaussians_kernel(
    heatmap_ptr, centers_ptr, radii_ptr, index_ptr, counts_ptr,
    num_boxes, num_planes, height, width, boxes_per_sample, planes_per_sample, index_limit, split,
    stride_hn, stride_hh, stride_hw,
    stride_cb, stride_ct, stride_cc,
    stride_rb, stride_rt,
    stride_ib, stride_it,
    stride_nb,
    sigma_factor, k_scale, zero_below,
    HAS_INDEX: tl.constexpr, HAS_COUNTS: tl.constexpr, BITS: tl.constexpr,
    BOXES: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, LIMIT: tl.constexpr,
    W_CONTIGUOUS: tl.constexpr, KEEP_NAN: tl.constexpr,
):
    # One program = BOXES consecutive boxes, drawn one after the other (neighbours
    # share cache lines, so all but the first box's loads hit L1), and every split-th
    # row of BLOCK_H x BLOCK_W tiles of each box's window clipped to the map
    # (program_id(1) picks which rows). Tiles are max-merged with integer atomics on
    # the values' bits, exact for the non-negative values drawn here.
    part = tl.program_id(1)
    o_dtype = heatmap_ptr.dtype.element_ty
    o_h = tl.arange(0, BLOCK_H)
    o_w = tl.arange(0, BLOCK_W)
    for j in range(BOXES):
        box = tl.program_id(0).to(tl.int64) * BOXES + j
        b = box // boxes_per_sample
        t = box - b * boxes_per_sample
        in_grid = box < num_boxes
        radius = tl.load(radii_ptr + b * stride_rb + t * stride_rt, mask=in_grid, other=-1).to(tl.int64)
        valid = radius >= 0
        plane = b
        if HAS_INDEX:
            index = tl.load(index_ptr + b * stride_ib + t * stride_it, mask=in_grid, other=-1).to(tl.int64)
            valid = valid & (index >= 0) & (index < index_limit)
            plane = b * planes_per_sample + index
        if HAS_COUNTS:
            valid = valid & (t < tl.load(counts_ptr + b * stride_nb, mask=in_grid, other=0))
        valid = valid & (plane < num_planes)

        # Clamp to +-LIMIT (2**62) so that cx +- r cannot overflow int64 (exact below that).
        p_center = centers_ptr + b * stride_cb + t * stride_ct
        cx = tl.load(p_center, mask=in_grid, other=0).to(tl.int64)
        cy = tl.load(p_center + stride_cc, mask=in_grid, other=0).to(tl.int64)
        cx = tl.minimum(tl.maximum(cx, -LIMIT), LIMIT)
        cy = tl.minimum(tl.maximum(cy, -LIMIT), LIMIT)
        r_window = tl.minimum(tl.maximum(radius, 0), LIMIT)
        # the window clipped to the map: int32 from here on
        x_lo = tl.maximum(cx - r_window, 0).to(tl.int32)
        x_hi = tl.minimum(cx + r_window, width - 1).to(tl.int32)
        y_lo = tl.maximum(cy - r_window, 0).to(tl.int32)
        y_hi = tl.minimum(cy + r_window, height - 1).to(tl.int32)
        valid = valid & (cx + r_window >= 0) & (cx - r_window < width) & (cy + r_window >= 0) & (cy - r_window < height)
        tiles_x = tl.where(valid, tl.cdiv(x_hi - x_lo + 1, BLOCK_W), 0)
        tiles_y = tl.where(valid, tl.cdiv(y_hi - y_lo + 1, BLOCK_H), 0)

        # value = k * exp(-(dx^2 + dy^2) / (2 sigma^2)), sigma = (2r + 1) / sigma_factor
        sigma = (2.0 * radius.to(o_dtype) + 1.0) / sigma_factor  # in floats: 2r + 1 can overflow int64
        neg_inv_two_sigma_sq = -1.0 / (2.0 * sigma * sigma)
        p_plane = heatmap_ptr + plane * stride_hn
        for tile_y in range(part, tiles_y, split):
            o_y = y_lo + tile_y * BLOCK_H + o_h
            dy = (o_y - cy).to(o_dtype)
            b_gy = tl.exp(dy * dy * neg_inv_two_sigma_sq)
            m_y = o_y <= y_hi
            p_rows = p_plane + o_y * stride_hh
            for tile_x in range(0, tiles_x):
                o_x = x_lo + tile_x * BLOCK_W + o_w
                dx = (o_x - cx).to(o_dtype)
                b_g = b_gy[:, None] * tl.exp(dx * dx * neg_inv_two_sigma_sq)[None, :]
                b_g = tl.where(b_g < zero_below, 0.0, b_g) * k_scale
                m_tile = m_y[:, None] & (o_x <= x_hi)[None, :]
                if W_CONTIGUOUS:  # lets Triton see contiguous rows and coalesce the atomics
                    p_tile = p_rows[:, None] + o_x[None, :]
                else:
                    p_tile = p_rows[:, None] + (o_x * stride_hw)[None, :]
                p_bits = p_tile.to(tl.pointer_type(BITS))
                if KEEP_NAN:
                    old = tl.atomic_max(p_bits, b_g.to(o_dtype).to(BITS, bitcast=True), mask=m_tile, sem="relaxed")
                    # a NaN with its sign bit set (x86's 0/0) orders below every value as an integer:
                    # put it back, so that NaN stays NaN (as torch.max keeps it); any later max sees it again
                    old_value = old.to(o_dtype, bitcast=True)
                    tl.atomic_xchg(p_bits, old, mask=m_tile & (old_value != old_value), sem="relaxed")
                else:
                    tl.atomic_max(p_bits, b_g.to(o_dtype).to(BITS, bitcast=True), mask=m_tile, sem="relaxed")


# the heatmap's bits as an integer type, for the atomics and the NaN test
HEATMAP_BITS = {torch.float32: tl.int32, torch.float64: tl.int64}
