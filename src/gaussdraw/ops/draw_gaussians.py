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
and a vectorized torch kernel (:mod:`.draw_gaussians_torch`, registered for CPU, usable
on any device). Eager
CUDA calls from :mod:`gaussdraw.draw` launch the Triton kernel directly; the
registered op serves torch.compile, opcheck and the other paths.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from ..dispatch import Implementations
from ._triton import Launcher, check_device, jit, tl, triton
from .draw_gaussians_torch import draw_gaussians_torch

# ----------------------------------------------------------------------------
# Triton kernel
# ----------------------------------------------------------------------------

# Integer arguments and pointer alignments are not specialized on: one compiled kernel
# serves every shape and stride, which lets the launcher below reuse it directly.
_INT_ARGS = [
    "num_boxes", "num_planes", "height", "width", "boxes_per_sample", "planes_per_sample", "index_limit", "split",
    "stride_hn", "stride_hh", "stride_hw", "stride_cb", "stride_ct", "stride_cc", "stride_rb", "stride_rt",
    "stride_ib", "stride_it", "stride_nb",
]
_POINTER_ARGS = ["heatmap_ptr", "centers_ptr", "radii_ptr", "index_ptr", "counts_ptr"]


@jit(do_not_specialize=_INT_ARGS, do_not_specialize_on_alignment=_POINTER_ARGS)
def _draw_gaussians_kernel(
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


# Heatmap dtypes the Triton kernel merges in place (by 32/64-bit integer atomics);
# 16-bit heatmaps go through an fp32 copy.
NATIVE_DTYPES = (torch.float32, torch.float64)

# Launch-shape overrides, for benchmarking variants: {"boxes": int, "split": int, "warps": int,
# "keep_nan": bool (False: a plain atomic max, which loses a NaN whose sign bit is set)}.
TUNING: dict = {}


@functools.cache
def _num_sms(device_index) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _launch_shape(num_boxes: int, height: int, width: int, device: torch.device):
    """(BOXES, split, BLOCK_H, BLOCK_W), from sizes alone (no values are read).

    Chosen from ``gaussdraw bench --variants`` on an H100 (benchmarks/NOTES.md): one
    box per program; the windows' rows of tiles split over up to 8 programs only when
    programs are few (< 16 per SM) and the map is tall (>= 16 rows of tiles), where
    large windows would otherwise make a long tail."""
    return _launch_shape_cached(
        num_boxes, height, width, device.type, device.index, TUNING.get("boxes"), TUNING.get("split")
    )


@functools.lru_cache(maxsize=1024)
def _launch_shape_cached(num_boxes, height, width, device_type, device_index, boxes, split):
    sms = _num_sms(device_index) if device_type == "cuda" else 132
    block_h = min(16, triton.next_power_of_2(max(height, 1)))
    block_w = min(32, triton.next_power_of_2(max(width, 1)))
    boxes = boxes or 1
    programs = -(-num_boxes // boxes)
    tile_rows = -(-height // block_h)
    if split is None:  # the interpreter runs programs one by one: keep them few there
        few_programs_tall_map = device_type == "cuda" and programs < sms * 16 and tile_rows >= 16
        split = min(8, tile_rows // 4) if few_programs_tall_map else 1
    return boxes, split, block_h, block_w


def launch(
    heatmap, plane_stride, num_planes,
    centers, centers_strides, radii, radii_strides, index, index_strides, counts, counts_stride,
    num_samples, boxes_per_sample, planes_per_sample, sigma_factor, k_scale, plane_shape=None, bind=False,
    keep_nan=True,
):
    """Launch the Triton kernel on an fp32/fp64 ``heatmap`` whose (N, H, W) planes are
    ``plane_stride`` apart; boxes (b, t) of the (num_samples, boxes_per_sample) grid
    are read through the given strides (the op's docstring says what each is).
    ``plane_shape`` (H, W): ``heatmap`` is a flat buffer that starts with contiguous planes.
    ``bind``: return a :class:`~gaussdraw.ops._triton.Relaunch` of this launch for new
    (heatmap, centers, radii, index or radii, counts or radii) of the same layout, or None.
    ``keep_nan``: keep a NaN already in the heatmap (an atomic max that returns the old
    value, 10–45% more kernel time where windows are large); False for heatmaps that
    gaussdraw zeroed itself."""
    if plane_shape is None:
        height, width = heatmap.shape[-2:]
        row_stride, column_stride = heatmap.stride()[-2:]
    else:
        (height, width), row_stride, column_stride = plane_shape, plane_shape[1], 1
    num_boxes = num_samples * boxes_per_sample
    if num_boxes == 0 or num_planes * height * width == 0:
        return None
    device = heatmap.device
    boxes, split, block_h, block_w = _launch_shape(num_boxes, height, width, device)
    grid = (-(-num_boxes // boxes), split)
    args = (
        heatmap, centers, radii, index if index is not None else radii, counts if counts is not None else radii,
        num_boxes, num_planes, height, width, boxes_per_sample, planes_per_sample,
        num_planes if planes_per_sample == 0 else planes_per_sample, split,
        plane_stride, row_stride, column_stride, *centers_strides, *radii_strides, *index_strides, counts_stride,
        sigma_factor, k_scale, _EPS[heatmap.dtype],
    )
    constexprs = dict(
        HAS_INDEX=index is not None, HAS_COUNTS=counts is not None, BOXES=boxes,
        BITS=tl.int32 if heatmap.dtype == torch.float32 else tl.int64,  # the heatmap's bits, for the NaN test
        BLOCK_H=block_h, BLOCK_W=block_w, LIMIT=2**62, W_CONTIGUOUS=column_stride == 1,
        KEEP_NAN=TUNING.get("keep_nan", keep_nan),
    )
    warps = _warps(height, width, num_boxes, num_planes)
    if device.type == "cuda" and type(heatmap) is torch.Tensor and type(centers) is torch.Tensor:
        return _launch_kernel(grid, args, constexprs, warps, specialization=_specialization(args),
                              bind=5 if bind and not TUNING else 0)
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        _draw_gaussians_kernel[grid](*args, **constexprs, num_warps=warps)
    return None


_EPS = {dtype: torch.finfo(dtype).eps for dtype in (torch.float32, torch.float64)}
_launch_kernel = Launcher(_draw_gaussians_kernel)


def _specialization(args):
    """The kernel does not specialize on integer values or alignments: its compiled form
    depends on the dtypes, and on whether every integer fits in 32 bits. None (Triton's
    full key) where one does not, as then each integer's own size class counts."""
    ints = args[5:24]  # every integer argument, num_boxes .. stride_nb
    if -(2**31) <= min(ints) and max(ints) < 2**31:
        return args[0].dtype, args[1].dtype, args[2].dtype, args[3].dtype, args[4].dtype
    return None


def _warps(height: int, width: int, num_boxes: int, num_planes: int) -> int:
    """2 warps; 1 where windows are small: on small maps (<= 64 x 64: windows are
    clipped to the map) and where there are many boxes per pixel (>= 1 per 100: most
    must be small). From the H100 variant grid in benchmarks/NOTES.md."""
    small = height * width <= 4096 or num_boxes >= 0.01 * num_planes * height * width
    return TUNING.get("warps") or (1 if small else 2)


def draw_gaussians_triton(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale):
    """Triton implementation of the op. 16-bit heatmaps are drawn through an fp32
    copy: rounding is monotonic, so max-merging in fp32 and rounding once gives the
    same result as rounding each value and merging in 16 bits."""
    check_device(heatmap.device)
    work = heatmap if heatmap.dtype in NATIVE_DTYPES else heatmap.float()
    launch(
        work, work.stride(0), work.shape[0],
        centers, centers.stride(), radii, radii.stride(),
        index, index.stride() if index is not None else (0, 0),
        counts, counts.stride(0) if counts is not None else 0,
        radii.shape[0], radii.shape[1], planes_per_sample, float(sigma_factor), float(k_scale),
    )
    if work is not heatmap:
        heatmap.copy_(work)


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------

@torch.library.custom_op("gaussdraw::draw_gaussians", mutates_args={"heatmap"})
def draw_gaussians_op(
    heatmap: torch.Tensor,
    centers: torch.Tensor,
    radii: torch.Tensor,
    index: torch.Tensor | None,
    counts: torch.Tensor | None,
    planes_per_sample: int,
    sigma_factor: float,
    k_scale: float,
    use_triton: bool,
) -> None:
    """The op as torch.compile and the dispatcher see it: opaque, mutating ``heatmap``;
    the Triton kernel or the torch kernel, as ``use_triton`` says (:mod:`gaussdraw.dispatch`).
    (As a ``triton_op``, traced into by Inductor, the batched form drew wrong values on an
    H100 with torch 2.11 / Triton 3.6, so the kernel stays opaque.)"""
    DRAW_GAUSSIANS.pick(use_triton)(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale)


@draw_gaussians_op.register_fake
def _draw_gaussians_fake(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale,
                         use_triton):
    return None  # writes heatmap in place; shapes and devices are unchanged


DRAW_GAUSSIANS = Implementations(triton=draw_gaussians_triton, torch=draw_gaussians_torch,
                                 registered=draw_gaussians_op)
