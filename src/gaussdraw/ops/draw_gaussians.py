"""The drawing op: max-merge Gaussians into heatmaps, in place.

One op, ``gaussdraw::draw_gaussians``, serves both public input formats. Its boxes
come as a (B, Tmax) grid: box (b, t) has center ``centers[b, t]`` (x, y), radius
``radii[b, t]``, and draws into heatmap plane ``b * planes_per_sample + index[b, t]``
(``index`` absent: plane ``b``). It is valid when ``t < counts[b]`` (``counts``
absent: always), ``radius >= 0`` and ``0 <= index < index_limit``; invalid boxes
are skipped, so no input writes outside the heatmap.

- the concatenated format is B = 1, ``index`` = heatmap indices, ``planes_per_sample`` = 0;
- the batched format is ``index`` = labels (or absent), ``planes_per_sample`` = C (or 1).

Two kernels implement it: a Triton kernel (CUDA, or Triton's interpreter on CPU)
and a vectorized torch kernel (registered for CPU, usable on any device).
"""

from __future__ import annotations

import torch
from torch.library import wrap_triton

from ._triton import HAVE_TRITON, check_device, jit, tl, triton

# ----------------------------------------------------------------------------
# Triton kernel
# ----------------------------------------------------------------------------


@jit
def _draw_gaussians_kernel(
    heatmap_ptr, centers_ptr, radii_ptr, index_ptr, counts_ptr,
    num_planes, height, width, boxes_per_sample, planes_per_sample, index_limit,
    stride_hn, stride_hh, stride_hw,
    stride_cb, stride_ct, stride_cc,
    stride_rb, stride_rt,
    stride_ib, stride_it,
    stride_nb,
    sigma_factor, k_scale, zero_below,
    HAS_INDEX: tl.constexpr, HAS_COUNTS: tl.constexpr, BITS: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, LIMIT: tl.constexpr = 2**62,
):
    # One program = one box: it walks the box's window, clipped to the map, in
    # BLOCK_H x BLOCK_W tiles and max-merges each tile with integer atomics on the
    # values' bits (exact for the non-negative values drawn here).
    pid = tl.program_id(0).to(tl.int64)
    b = pid // boxes_per_sample
    t = pid - b * boxes_per_sample

    radius = tl.load(radii_ptr + b * stride_rb + t * stride_rt).to(tl.int64)
    valid = radius >= 0
    plane = b
    if HAS_INDEX:
        index = tl.load(index_ptr + b * stride_ib + t * stride_it).to(tl.int64)
        valid = valid & (index >= 0) & (index < index_limit)
        plane = b * planes_per_sample + index
    if HAS_COUNTS:
        valid = valid & (t < tl.load(counts_ptr + b * stride_nb))
    valid = valid & (plane < num_planes)

    # Clamp to +-2**62 so that cx +- r cannot overflow int64 (exact below that).
    cx = tl.load(centers_ptr + b * stride_cb + t * stride_ct).to(tl.int64)
    cy = tl.load(centers_ptr + b * stride_cb + t * stride_ct + stride_cc).to(tl.int64)
    cx = tl.minimum(tl.maximum(cx, -LIMIT), LIMIT)
    cy = tl.minimum(tl.maximum(cy, -LIMIT), LIMIT)
    r_window = tl.minimum(tl.maximum(radius, 0), LIMIT)
    x_lo = tl.maximum(cx - r_window, 0)
    x_hi = tl.minimum(cx + r_window, width - 1)
    y_lo = tl.maximum(cy - r_window, 0)
    y_hi = tl.minimum(cy + r_window, height - 1)
    tiles_x = tl.where(valid & (x_hi >= x_lo), tl.cdiv(x_hi - x_lo + 1, BLOCK_W), 0)
    tiles_y = tl.where(valid & (y_hi >= y_lo), tl.cdiv(y_hi - y_lo + 1, BLOCK_H), 0)

    # value = k * exp(-(dx^2 + dy^2) / (2 sigma^2)), sigma = (2r + 1) / sigma_factor
    o_dtype = heatmap_ptr.dtype.element_ty
    diameter = (2 * radius + 1).to(o_dtype)
    sigma = diameter / sigma_factor
    neg_inv_two_sigma_sq = -1.0 / (2.0 * sigma * sigma)

    p_plane = heatmap_ptr + plane * stride_hn
    o_h = tl.arange(0, BLOCK_H)
    o_w = tl.arange(0, BLOCK_W)
    for tile_y in range(0, tiles_y):
        o_y = y_lo + tile_y * BLOCK_H + o_h
        dy = (o_y - cy).to(o_dtype)
        b_gy = tl.exp(dy * dy * neg_inv_two_sigma_sq)
        m_y = o_y <= y_hi
        for tile_x in range(0, tiles_x):
            o_x = x_lo + tile_x * BLOCK_W + o_w
            dx = (o_x - cx).to(o_dtype)
            b_gx = tl.exp(dx * dx * neg_inv_two_sigma_sq)
            b_g = b_gy[:, None] * b_gx[None, :]
            b_g = tl.where(b_g < zero_below, 0.0, b_g) * k_scale
            m_tile = m_y[:, None] & (o_x <= x_hi)[None, :]
            p_tile = p_plane + o_y[:, None] * stride_hh + o_x[None, :] * stride_hw
            tl.atomic_max(
                p_tile.to(tl.pointer_type(BITS)),
                b_g.to(o_dtype).to(BITS, bitcast=True),
                mask=m_tile,
                sem="relaxed",
            )


_BITS_OF = {torch.float32: "int32", torch.float64: "int64"}


def _tile_shape(height: int, width: int) -> tuple[int, int]:
    """Tile of the window a program handles per step, from the map size alone."""
    block_w = min(32, triton.next_power_of_2(max(width, 1)))
    block_h = min(16, triton.next_power_of_2(max(height, 1)))
    return block_h, block_w


def _launch_triton(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    """Launch the Triton kernel. ``heatmap`` is fp32 or fp64 here."""
    num_planes, height, width = heatmap.shape
    num_samples, boxes_per_sample = radii.shape
    if num_samples * boxes_per_sample == 0 or heatmap.numel() == 0:
        return
    index_limit = num_planes if planes_per_sample == 0 else planes_per_sample
    block_h, block_w = _tile_shape(height, width)
    bits = tl.int32 if heatmap.dtype == torch.float32 else tl.int64
    zero_below = torch.finfo(heatmap.dtype).eps
    index_arg = index if index is not None else radii
    counts_arg = counts if counts is not None else radii
    wrap_triton(_draw_gaussians_kernel)[(num_samples * boxes_per_sample,)](
        heatmap, centers, radii, index_arg, counts_arg,
        num_planes, height, width, boxes_per_sample, planes_per_sample, index_limit,
        *heatmap.stride(), *centers.stride(), *radii.stride(),
        *(index.stride() if index is not None else (0, 0)),
        counts.stride(0) if counts is not None else 0,
        float(sigma_factor), float(k_scale), float(zero_below),
        HAS_INDEX=index is not None, HAS_COUNTS=counts is not None, BITS=bits,
        BLOCK_H=block_h, BLOCK_W=block_w,
        num_warps=4,
    )


def draw_gaussians_triton(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    """Triton implementation. 16-bit heatmaps are drawn through an fp32 copy:
    rounding is monotonic, so max-merging in fp32 and rounding once gives the same
    result as rounding each value and merging in 16 bits."""
    check_device(heatmap.device)
    if heatmap.dtype in _BITS_OF:
        _launch_triton(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale)
        return
    work = heatmap.float()
    _launch_triton(work, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale)
    heatmap.copy_(work)


# ----------------------------------------------------------------------------
# torch kernel
# ----------------------------------------------------------------------------


def _valid_boxes(heatmap, centers, radii, index, counts, planes_per_sample):
    """Flat per-box tensors of the boxes that draw at least one pixel."""
    num_planes, height, width = heatmap.shape
    num_samples, boxes_per_sample = radii.shape
    device = radii.device
    radius = radii.long()
    sample = torch.arange(num_samples, device=device).unsqueeze(1).expand(num_samples, boxes_per_sample)
    valid = radius >= 0
    if index is None:
        plane = sample
    else:
        label = index.long()
        limit = num_planes if planes_per_sample == 0 else planes_per_sample
        valid &= (label >= 0) & (label < limit)
        plane = sample * planes_per_sample + label
    if counts is not None:
        position = torch.arange(boxes_per_sample, device=device).unsqueeze(0)
        valid &= position < counts.long().unsqueeze(1)
    valid &= plane < num_planes

    limit = 2**62  # so that cx +- r cannot overflow int64, as in the Triton kernel
    cx = centers[..., 0].long().clamp(-limit, limit)
    cy = centers[..., 1].long().clamp(-limit, limit)
    r_window = radius.clamp(0, limit)
    x_lo, x_hi = (cx - r_window).clamp(min=0), (cx + r_window).clamp(max=width - 1)
    y_lo, y_hi = (cy - r_window).clamp(min=0), (cy + r_window).clamp(max=height - 1)
    valid &= (x_hi >= x_lo) & (y_hi >= y_lo)

    keep = valid.reshape(-1).nonzero().squeeze(1)
    return {
        name: value.reshape(-1)[keep]
        for name, value in dict(
            plane=plane, radius=radius, cx=cx, cy=cy, x_lo=x_lo, x_hi=x_hi, y_lo=y_lo, y_hi=y_hi
        ).items()
    }


def draw_gaussians_torch(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    """Vectorized torch implementation (no loop over boxes).

    Boxes are grouped by the power of two d that covers their clipped window (a loop
    over at most log2(max(H, W)) + 2 sizes, not over boxes). A group's boxes draw a
    (min(d, H), min(d, W)) grid each, anchored at the clipped window's corner;
    columns and rows past the window repeat its last one, which max-merges to the
    same result. Memory and time follow the drawn pixels (at most 4x, for rounding). The Gaussian is
    separable: one exp per row and column, one multiply per pixel.
    """
    num_planes, height, width = heatmap.shape
    if radii.numel() == 0 or heatmap.numel() == 0:
        return
    boxes = _valid_boxes(heatmap, centers, radii, index, counts, planes_per_sample)
    if boxes["plane"].numel() == 0:
        return

    compute_dtype = torch.float64 if heatmap.dtype == torch.float64 else torch.float32
    zero_below = torch.finfo(heatmap.dtype).eps
    work = heatmap if heatmap.is_contiguous() else heatmap.contiguous()
    flat = work.view(-1)

    # window sizes rounded up to powers of two: at most log2(max(H, W)) + 2 groups
    span = torch.maximum(boxes["x_hi"] - boxes["x_lo"], boxes["y_hi"] - boxes["y_lo"]) + 1
    size = torch.pow(2, torch.ceil(torch.log2(span.double()))).long()
    for d in torch.unique(size).tolist():
        in_group = (size == d).nonzero().squeeze(1)
        g = {name: value[in_group] for name, value in boxes.items()}
        d_h, d_w = min(d, height), min(d, width)
        xs = torch.minimum(g["x_lo"].unsqueeze(1) + torch.arange(d_w, device=flat.device), g["x_hi"].unsqueeze(1))
        ys = torch.minimum(g["y_lo"].unsqueeze(1) + torch.arange(d_h, device=flat.device), g["y_hi"].unsqueeze(1))
        sigma = (2 * g["radius"] + 1).to(compute_dtype) / sigma_factor
        neg_inv_two_sigma_sq = (-1.0 / (2.0 * sigma * sigma)).unsqueeze(1)
        gx = torch.exp((xs - g["cx"].unsqueeze(1)).to(compute_dtype).square() * neg_inv_two_sigma_sq)
        gy = torch.exp((ys - g["cy"].unsqueeze(1)).to(compute_dtype).square() * neg_inv_two_sigma_sq)
        # The smallest value a box draws is at its window's far corner.
        needs_threshold = bool(((gx.amin(1) * gy.amin(1)) < zero_below).any())
        if not needs_threshold:
            gy = gy * k_scale
        values = gy.unsqueeze(2) * gx.unsqueeze(1)
        if needs_threshold:
            values = values.masked_fill_(values < zero_below, 0.0).mul_(k_scale)
        rows = g["plane"].unsqueeze(1) * (height * width) + ys * width
        flat_index = rows.unsqueeze(2) + xs.unsqueeze(1)
        flat.scatter_reduce_(0, flat_index.view(-1), values.view(-1).to(heatmap.dtype), "amax")

    if work is not heatmap:
        heatmap.copy_(work)


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------

# The torch kernel as an opaque op, so that traced CPU graphs can call it.
@torch.library.custom_op("gaussdraw::draw_gaussians_torch", mutates_args={"heatmap"})
def draw_gaussians_torch_op(
    heatmap: torch.Tensor,
    centers: torch.Tensor,
    radii: torch.Tensor,
    index: torch.Tensor | None,
    counts: torch.Tensor | None,
    planes_per_sample: int,
    sigma_factor: float,
    k_scale: float,
) -> None:
    draw_gaussians_torch(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale)


def _draw_gaussians(
    heatmap: torch.Tensor,
    centers: torch.Tensor,
    radii: torch.Tensor,
    index: torch.Tensor | None,
    counts: torch.Tensor | None,
    planes_per_sample: int,
    sigma_factor: float,
    k_scale: float,
) -> None:
    # Eager CPU calls reach the CPU kernel registered below; this body also runs when
    # torch.compile traces the op, on any device.
    if heatmap.device.type == "cuda":
        draw_gaussians_triton(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale)
    else:
        draw_gaussians_torch_op(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale)


if HAVE_TRITON:
    draw_gaussians_op = torch.library.triton_op("gaussdraw::draw_gaussians", _draw_gaussians, mutates_args={"heatmap"})
else:  # pragma: no cover
    draw_gaussians_op = torch.library.custom_op("gaussdraw::draw_gaussians", _draw_gaussians, mutates_args={"heatmap"})


@draw_gaussians_op.register_kernel("cpu")
def _draw_gaussians_cpu(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    draw_gaussians_torch(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale)


@draw_gaussians_op.register_fake
def _draw_gaussians_fake(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    return None  # writes heatmap in place; shapes and devices are unchanged


@draw_gaussians_torch_op.register_fake
def _draw_gaussians_torch_fake(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    return None
