"""The allocating op for the batched format: write each heatmap tile once.

``render_heatmaps_batched`` could zero a new heatmap and then draw into it; on
large heatmaps both passes cost about as much as the memory they touch. Here one
program owns one (H, W) tile of one plane (b, c): it scans sample b's boxes, keeps
the running max of those that overlap its tile in registers, and stores the tile
once, zeros included. Same values as ``draw_gaussians`` on a zero heatmap.
"""

from __future__ import annotations

import contextlib

import torch

from ._triton import check_device, jit, tl

BLOCK_H, BLOCK_W = 32, 64
MAX_PLANES = 65535  # planes go on grid axis 1


@jit
def _render_gaussians_kernel(
    out_ptr, centers_ptr, radii_ptr, labels_ptr, counts_ptr,
    num_classes, height, width, boxes_per_sample, tiles_x,
    stride_cb, stride_ct, stride_cc,
    stride_rb, stride_rt,
    stride_lb, stride_lt,
    stride_nb,
    sigma_factor, k_scale, zero_below,
    HAS_LABELS: tl.constexpr, HAS_COUNTS: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):
    # One program = one BLOCK_H x BLOCK_W tile of plane b * C + c; it gathers the
    # overlapping boxes of sample b (of class c) and stores the tile once.
    tile = tl.program_id(0)
    plane = tl.program_id(1).to(tl.int64)
    b = plane // num_classes
    c = plane - b * num_classes
    tile_y = tile // tiles_x
    y0 = tile_y * BLOCK_H
    x0 = (tile - tile_y * tiles_x) * BLOCK_W
    o_y = y0 + tl.arange(0, BLOCK_H)
    o_x = x0 + tl.arange(0, BLOCK_W)
    o_dtype = out_ptr.dtype.element_ty
    b_acc = tl.zeros([BLOCK_H, BLOCK_W], dtype=o_dtype)

    count = boxes_per_sample
    if HAS_COUNTS:
        count = tl.minimum(tl.load(counts_ptr + b * stride_nb).to(tl.int32), boxes_per_sample)
    for t in range(0, count):
        take = True
        if HAS_LABELS:
            take = tl.load(labels_ptr + b * stride_lb + t * stride_lt) == c
        if take:
            radius = tl.load(radii_ptr + b * stride_rb + t * stride_rt).to(tl.int64)
            p_center = centers_ptr + b * stride_cb + t * stride_ct
            cx = tl.load(p_center).to(tl.int64)
            cy = tl.load(p_center + stride_cc).to(tl.int64)
            # does the window [c - r, c + r] meet this tile? (no overflow: r, c < 2**62 after clamping)
            r = tl.minimum(radius, 2**62)
            cx = tl.minimum(tl.maximum(cx, -(2**62)), 2**62)
            cy = tl.minimum(tl.maximum(cy, -(2**62)), 2**62)
            meets = (radius >= 0) & (cx + r >= x0) & (cx - r < x0 + BLOCK_W) & (cy + r >= y0) & (cy - r < y0 + BLOCK_H)
            if meets:
                sigma = (2 * radius + 1).to(o_dtype) / sigma_factor
                neg_inv_two_sigma_sq = -1.0 / (2.0 * sigma * sigma)
                dy = o_y - cy
                dx = o_x - cx
                fy = dy.to(o_dtype)
                fx = dx.to(o_dtype)
                b_g = tl.exp(fy * fy * neg_inv_two_sigma_sq)[:, None] * tl.exp(fx * fx * neg_inv_two_sigma_sq)[None, :]
                b_g = tl.where(b_g < zero_below, 0.0, b_g) * k_scale
                m_window = ((dy >= -r) & (dy <= r))[:, None] & ((dx >= -r) & (dx <= r))[None, :]
                b_acc = tl.maximum(b_acc, tl.where(m_window, b_g.to(o_dtype), 0.0))

    m_map = (o_y < height)[:, None] & (o_x < width)[None, :]
    p_out = out_ptr + plane * height * width + o_y[:, None] * width + o_x[None, :]
    tl.store(p_out, b_acc, mask=m_map)


def render_gaussians_triton(out, centers, radii, labels, counts, num_classes, sigma_factor, k_scale):
    """Fill a new contiguous fp32/fp64 ``out`` (B * C, H, W) in one pass.

    Boxes: ``centers`` (B, T, 2), ``radii`` (B, T), ``labels`` (B, T) or None (then C = 1),
    ``counts`` (B,) or None (all T valid). Returns False (and writes nothing) when the
    planes do not fit the launch grid; the caller then zero-fills and draws."""
    check_device(out.device)
    planes, height, width = out.shape
    if planes > MAX_PLANES or out.dtype not in (torch.float32, torch.float64) or not out.is_contiguous():
        return False
    if out.numel() == 0:
        return True
    tiles_x = -(-width // BLOCK_W)
    grid = (tiles_x * -(-height // BLOCK_H), planes)
    labels_arg = labels if labels is not None else radii
    counts_arg = counts if counts is not None else radii
    with torch.cuda.device(out.device) if out.device.type == "cuda" else contextlib.nullcontext():
        _render_gaussians_kernel[grid](
            out, centers, radii, labels_arg, counts_arg,
            num_classes, height, width, radii.shape[1], tiles_x,
            *centers.stride(), *radii.stride(),
            *(labels.stride() if labels is not None else (0, 0)),
            counts.stride(0) if counts is not None else 0,
            float(sigma_factor), float(k_scale), torch.finfo(out.dtype).eps,
            HAS_LABELS=labels is not None, HAS_COUNTS=counts is not None,
            BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W, num_warps=4,
        )
    return True
