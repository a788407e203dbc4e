"""The drawing op: max-merge Gaussians into heatmaps, in place.

One op, ``gaussdraw::draw_gaussians``, serves both public input formats. Its boxes
come as a (B, Tmax) grid: box (b, t) has center ``centers[b, t]`` (x, y), radius
``radii[b, t]``, and draws into heatmap plane ``b * planes_per_sample + index[b, t]``
(``index`` absent: plane ``b``). It is valid when ``t < counts[b]`` (``counts``
absent: always), ``radius >= 0`` and ``0 <= index < index_limit``; invalid boxes
are skipped, so no input writes outside the heatmap.

- the concatenated format is B = 1, ``index`` = heatmap indices, ``planes_per_sample`` = 0;
- the batched format is ``index`` = labels (or absent), ``planes_per_sample`` = C (or 1).

Two kernels implement it: a Triton kernel (:mod:`.kernels.draw_gaussians`; CUDA, or
Triton's interpreter on CPU) and a vectorized torch kernel (:mod:`.draw_gaussians_torch`,
any device). Eager calls run the one :mod:`gaussdraw.dispatch` picks (eager CUDA calls from
:mod:`gaussdraw.draw` launch the Triton kernel directly, and repeat that launch for calls of
the same layout); the registered op, whose ``use_triton`` makes the same pick, serves
torch.compile and opcheck.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from ..dispatch import Implementations
from ._triton import check_device, next_power_of_2
from .draw_gaussians_torch import draw_gaussians_torch

# ----------------------------------------------------------------------------
# Triton launch (the kernel: kernels/draw_gaussians.py)
# ----------------------------------------------------------------------------

# Heatmap dtypes the Triton kernel merges in place (by 32/64-bit integer atomics);
# 16-bit heatmaps go through an fp32 copy.
NATIVE_DTYPES = (torch.float32, torch.float64)
# the kernel's arguments that a relaunch (gaussdraw.draw_plans) takes anew
RELAUNCHED = ("heatmap_ptr", "centers_ptr", "radii_ptr", "index_ptr", "counts_ptr")


@dataclasses.dataclass(frozen=True)
class DrawLaunchShape:
    """A launch shape for the draw kernel, for benchmarks and tests; None: the chosen one.

    boxes: boxes per program; split: programs over each window's rows of tiles; warps;
    keep_nan: False takes a plain atomic max, which loses a NaN whose sign bit is set."""

    boxes: int | None = None
    split: int | None = None
    warps: int | None = None
    keep_nan: bool | None = None


CHOSEN = DrawLaunchShape()


@functools.cache
def _num_sms(device_index) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def launch_shape(num_boxes: int, height: int, width: int, device: torch.device, shape: DrawLaunchShape = CHOSEN):
    """(BOXES, split, BLOCK_H, BLOCK_W), from sizes alone (no values are read).

    Chosen from ``gaussdraw bench --variants`` on an H100 (benchmarks/NOTES.md): one
    box per program; the windows' rows of tiles split over up to 8 programs only when
    programs are few (< 16 per SM) and the map is tall (>= 16 rows of tiles), where
    large windows would otherwise make a long tail. ``shape`` overrides boxes and split."""
    return _launch_shape_cached(num_boxes, height, width, device.type, device.index, shape.boxes, shape.split)


@functools.lru_cache(maxsize=1024)
def _launch_shape_cached(num_boxes, height, width, device_type, device_index, boxes, split):
    sms = _num_sms(device_index) if device_type == "cuda" else 132
    block_h = min(16, next_power_of_2(max(height, 1)))
    block_w = min(32, next_power_of_2(max(width, 1)))
    boxes = boxes or 1
    programs = -(-num_boxes // boxes)
    tile_rows = -(-height // block_h)
    if split is None:  # the interpreter runs programs one by one: keep them few there
        few_programs_tall_map = device_type == "cuda" and programs < sms * 16 and tile_rows >= 16
        split = min(8, tile_rows // 4) if few_programs_tall_map else 1
    return boxes, split, block_h, block_w


def launch(
    heatmap, *, plane_stride, num_planes, centers, centers_strides, radii, radii_strides, index=None,
    index_strides=(0, 0), counts=None, counts_stride=0, num_samples, boxes_per_sample, planes_per_sample,
    sigma_factor, k_scale, plane_shape=None, bind=False, keep_nan=True, shape: DrawLaunchShape = CHOSEN,
):
    """Launch the Triton kernel on an fp32/fp64 ``heatmap`` whose (N, H, W) planes are
    ``plane_stride`` apart (N = ``num_planes``); boxes (b, t) of the (num_samples,
    boxes_per_sample) grid are read through the given strides (the op's docstring says
    what each input is). ``plane_shape`` (H, W): ``heatmap`` is a flat buffer that starts
    with contiguous planes. ``bind``: return a :class:`~gaussdraw.ops.launch.Relaunch` of
    this launch for new (heatmap, centers, radii, index or radii, counts or radii) of the
    same layout, or None. ``keep_nan``: keep a NaN already in the heatmap (an atomic max
    that returns the old value, 10–45% more kernel time where windows are large); False
    for heatmaps that gaussdraw zeroed itself. ``shape``: a launch shape other than the
    chosen one (then no relaunch)."""
    from .kernels.draw_gaussians import HEATMAP_BITS, draw_gaussians_kernel
    from .launch import launch as launch_kernel

    if plane_shape is None:
        height, width = heatmap.shape[-2:]
        row_stride, column_stride = heatmap.stride()[-2:]
    else:
        (height, width), row_stride, column_stride = plane_shape, plane_shape[1], 1
    num_boxes = num_samples * boxes_per_sample
    if num_boxes == 0 or num_planes * height * width == 0:
        return None
    device = heatmap.device
    boxes, split, block_h, block_w = launch_shape(num_boxes, height, width, device, shape)
    sizes = dict(
        num_boxes=num_boxes, num_planes=num_planes, height=height, width=width, boxes_per_sample=boxes_per_sample,
        planes_per_sample=planes_per_sample, index_limit=num_planes if planes_per_sample == 0 else planes_per_sample,
        split=split, stride_hn=plane_stride, stride_hh=row_stride, stride_hw=column_stride,
        stride_cb=centers_strides[0], stride_ct=centers_strides[1], stride_cc=centers_strides[2],
        stride_rb=radii_strides[0], stride_rt=radii_strides[1], stride_ib=index_strides[0],
        stride_it=index_strides[1], stride_nb=counts_stride,
    )
    has_index, has_counts = index is not None, counts is not None
    index, counts = index if has_index else radii, counts if has_counts else radii  # (unread)
    return launch_kernel(
        draw_gaussians_kernel, (-(-num_boxes // boxes), split),
        num_warps=shape.warps or launch_warps(height, width, num_boxes, num_planes),
        specialization=_specialization(sizes.values(), heatmap, centers, radii, index, counts),
        relaunch=RELAUNCHED if bind and shape is CHOSEN else (),
        heatmap_ptr=heatmap, centers_ptr=centers, radii_ptr=radii, index_ptr=index, counts_ptr=counts, **sizes,
        sigma_factor=sigma_factor, k_scale=k_scale, zero_below=_EPS[heatmap.dtype],
        HAS_INDEX=has_index, HAS_COUNTS=has_counts, BITS=HEATMAP_BITS[heatmap.dtype],
        BOXES=boxes, BLOCK_H=block_h, BLOCK_W=block_w, LIMIT=2**62, W_CONTIGUOUS=column_stride == 1,
        KEEP_NAN=keep_nan if shape.keep_nan is None else shape.keep_nan,
    )


_EPS = {dtype: torch.finfo(dtype).eps for dtype in (torch.float32, torch.float64)}


def _specialization(ints, *tensors):
    """The kernel does not specialize on integer values or alignments: its compiled form
    depends on the dtypes, and on whether every integer fits in 32 bits. None (Triton's
    full key) where one does not, as then each integer's own size class counts."""
    ints = tuple(ints)
    if -(2**31) <= min(ints) and max(ints) < 2**31:
        return tuple(tensor.dtype for tensor in tensors)
    return None


def launch_warps(height: int, width: int, num_boxes: int, num_planes: int) -> int:
    """2 warps; 1 where windows are small: on small maps (<= 64 x 64: windows are
    clipped to the map) and where there are many boxes per pixel (>= 1 per 100: most
    must be small). From the H100 variant grid in benchmarks/NOTES.md."""
    small = height * width <= 4096 or num_boxes >= 0.01 * num_planes * height * width
    return 1 if small else 2


def draw_gaussians_triton(heatmap, centers, radii, index, counts, planes_per_sample, sigma_factor, k_scale, *,
                          shape: DrawLaunchShape = CHOSEN):
    """Triton implementation of the op. 16-bit heatmaps are drawn through an fp32
    copy: rounding is monotonic, so max-merging in fp32 and rounding once gives the
    same result as rounding each value and merging in 16 bits. ``shape``: a launch
    shape other than the chosen one (benchmarks, tests)."""
    check_device(heatmap.device)
    work = heatmap if heatmap.dtype in NATIVE_DTYPES else heatmap.float()
    launch(
        work, plane_stride=work.stride(0), num_planes=work.shape[0],
        centers=centers, centers_strides=centers.stride(), radii=radii, radii_strides=radii.stride(),
        index=index, index_strides=index.stride() if index is not None else (0, 0),
        counts=counts, counts_stride=counts.stride(0) if counts is not None else 0,
        num_samples=radii.shape[0], boxes_per_sample=radii.shape[1], planes_per_sample=planes_per_sample,
        sigma_factor=float(sigma_factor), k_scale=float(k_scale), shape=shape,
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
