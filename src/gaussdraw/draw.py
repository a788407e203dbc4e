"""Public drawing functions: argument checks, input forms, dispatch to a backend."""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

from .checks import check_index_tensor, raise_first, resolve_validate, screened
from .dispatch import Route, check_backend, route, run
from .draw_plans import layout, planned, ragged_layout, relaunched, remember, written
from .inputs import Batch, Field, batch_inputs, is_numbers, python_tensor
from .ops.draw_gaussians import DRAW_GAUSSIANS, NATIVE_DTYPES, launch
from .ragged import RaggedLike, device_of, is_ragged

# Above this, 1 / (2 sigma^2) overflows float32 for small radii (NaN at the center); far above any use.
MAX_SIGMA_FACTOR = 1e9
HEATMAP_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ----------------------------------------------------------------------------
# argument checks (no host sync) and value checks (sync on GPU)
# ----------------------------------------------------------------------------


def _check_options(diameter_to_sigma_factor, k_scale, backend) -> None:
    check_backend(backend)
    for name, value in (("diameter_to_sigma_factor", diameter_to_sigma_factor), ("k_scale", k_scale)):
        if type(value) not in (float, int) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            hint = ""
            if isinstance(value, (torch.Tensor, list, tuple)) or is_ragged(value):
                hint = ("; per-box inputs after radii go by keyword: draw_heatmap_batched(heatmap, centers, radii, "
                        "labels=labels)")
            raise TypeError(f"{name} must be a Python number; got {type(value).__name__}{hint}")
    if not (math.isfinite(diameter_to_sigma_factor) and 0 < diameter_to_sigma_factor <= MAX_SIGMA_FACTOR):
        raise ValueError(f"diameter_to_sigma_factor must be in (0, {MAX_SIGMA_FACTOR:g}] (sigma = diameter / it; "
                         f"mmdet uses 6); got {diameter_to_sigma_factor}")
    if not (math.isfinite(k_scale) and k_scale >= 0):
        raise ValueError(f"k_scale must be finite and >= 0 (values are max-merged); got {k_scale}")


def _check_heatmap(heatmap, min_dim: int, max_dim: int | None = None, k_scale: float = 1.0) -> None:
    if not isinstance(heatmap, torch.Tensor):
        raise TypeError(f"heatmap must be a torch.Tensor; got {type(heatmap).__name__}")
    if heatmap.dtype not in HEATMAP_DTYPES:
        raise TypeError(f"heatmap must be float16, bfloat16, float32 or float64; got {heatmap.dtype}")
    dim = heatmap.dim()
    if dim < min_dim or (max_dim is not None and dim > max_dim):
        want = f"{min_dim}" if max_dim == min_dim else f"at least {min_dim}"
        raise ValueError(f"heatmap must have {want} dimensions; got shape {tuple(heatmap.shape)}")
    if _overlaps(heatmap):
        raise ValueError(
            f"heatmap's elements overlap in memory (shape {tuple(heatmap.shape)}, strides {heatmap.stride()}, "
            "as from expand() or as_strided()); drawing in place needs one element per pixel: pass "
            "heatmap.contiguous() and copy the result back"
        )
    if k_scale > torch.finfo(heatmap.dtype).max:
        raise ValueError(f"k_scale must be at most the largest {heatmap.dtype} ({torch.finfo(heatmap.dtype).max:g}), "
                         f"the peak value drawn; got {k_scale}")
    if heatmap.requires_grad:
        raise ValueError(
            "heatmap requires grad: drawing writes it in place, which autograd cannot differentiate; "
            "draw into a tensor that does not require grad (targets are constants), e.g. heatmap.detach()"
        )


def _check_batched_dims(heatmap, classwise: bool, name: str) -> None:
    """A (B, H, W) heatmap without labels, (B, C, H, W) with them; ``name``: what the caller gave
    (``heatmap``, or the ``shape`` of a heatmap to allocate)."""
    if not isinstance(heatmap, torch.Tensor) or heatmap.dim() == (4 if classwise else 3):
        return
    shape, dim = tuple(heatmap.shape), heatmap.dim()
    if classwise:
        fix = ": for one plane per sample, leave out labels" if dim == 3 else ""
        raise ValueError(f"{name} must be (B, C, H, W) when labels are given; got {shape}{fix}")
    fix = ""
    if dim == 4:
        fix = f": to draw into class planes, pass labels= (per-box class indices in [0, {shape[1]}))"
    elif dim == 2:
        fix = (": for one sample, pass heatmap.unsqueeze(0) (or draw_heatmap for one list of boxes)"
               if name == "heatmap" else ": for one sample, pass shape=(1, H, W)")
    raise ValueError(f"{name} must be (B, H, W) without labels; got {shape}{fix}")


def _overlaps(tensor: torch.Tensor) -> bool:
    """Whether two indices of ``tensor`` may reach one element: with the dims of size > 1 ordered
    by stride, each stride must pass the extent of the smaller ones (sufficient for no overlap)."""
    extent = 0
    for stride, size in sorted((s, n) for s, n in zip(tensor.stride(), tensor.shape) if n > 1):
        if stride <= extent:
            return True
        extent += (size - 1) * stride
    return False


# ----------------------------------------------------------------------------
# dispatch
# ----------------------------------------------------------------------------


def _plane_stride(heatmap: torch.Tensor) -> int | None:
    """Stride between the (H, W) planes of ``heatmap``'s flattened leading dims, or None
    if they do not flatten into one stride."""
    plane_stride, inner = 0, None
    for size, stride in zip(reversed(heatmap.shape[:-2]), reversed(heatmap.stride()[:-2])):
        if size == 1:
            continue
        if inner is None:
            plane_stride = stride
        elif stride != inner:
            return None
        inner = stride * size
    return plane_stride


def _draw(heatmap, num_planes, centers, radii, index, counts, planes_per_sample, boxes_per_sample, factor, k_scale,
          chosen: Route, zeroed: bool):
    """Run the route ``chosen``. ``counts is None`` means the concatenated format (one sample of
    (T,) boxes); else (B, >= boxes_per_sample) padded inputs. ``zeroed``: the heatmap is zeros that
    gaussdraw made. Returns a relaunch of the direct CUDA launch (see :mod:`gaussdraw.draw_plans`),
    or None."""
    concat = counts is None
    if chosen.use_triton and not chosen.traced and heatmap.is_cuda and heatmap.dtype in NATIVE_DTYPES:
        plane_stride = _plane_stride(heatmap)
        if plane_stride is not None:  # the eager fast path: no views, no dispatcher
            if concat:  # one sample of T boxes
                strides = ((0, *centers.stride()), (0, radii.stride(0)), (0, index.stride(0)), 0)
                num_samples, boxes_per_sample = 1, radii.shape[0]
            else:
                strides = (centers.stride(), radii.stride(), index.stride() if index is not None else (0, 0),
                           counts.stride(0))
                num_samples = radii.shape[0]
            return launch(
                heatmap, plane_stride=plane_stride, num_planes=num_planes, centers=centers, centers_strides=strides[0],
                radii=radii, radii_strides=strides[1], index=index, index_strides=strides[2], counts=counts,
                counts_stride=strides[3], num_samples=num_samples, boxes_per_sample=boxes_per_sample,
                planes_per_sample=planes_per_sample, sigma_factor=float(factor), k_scale=float(k_scale),
                bind=True, keep_nan=not zeroed,
            )

    # the general path: (N, H, W) planes and (B, T) boxes (as views). Eager torch takes one sample's
    # (T,) boxes as they are (three views cost as much as drawing a box on the CPU).
    if concat:
        if chosen.use_triton or chosen.traced:
            centers, radii, index = centers.unsqueeze(0), radii.unsqueeze(0), index.unsqueeze(0)
    elif radii.shape[1] != boxes_per_sample:
        centers, radii = centers[:, :boxes_per_sample], radii[:, :boxes_per_sample]
        index = index[:, :boxes_per_sample] if index is not None else None
    planes_shape = (num_planes, *heatmap.shape[-2:])
    try:
        planes, copied = (heatmap if heatmap.dim() == 3 else heatmap.view(planes_shape)), False
    except RuntimeError:  # leading dims not flattenable as a view: draw on a copy
        planes, copied = heatmap.reshape(planes_shape), True
    run(DRAW_GAUSSIANS, chosen, planes, centers, radii, index, counts, planes_per_sample, float(factor), float(k_scale))
    if copied:
        heatmap.copy_(planes.view(heatmap.shape))
    return None


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------


def draw_heatmap(
    heatmap: torch.Tensor,
    centers: torch.Tensor,
    radii: torch.Tensor,
    heatmap_idxes: torch.Tensor,
    diameter_to_sigma_factor: float = 6.0,
    k_scale: float = 1.0,
    *,
    backend: str = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """Draw Gaussians into heatmaps, in place, from one concatenated list of boxes.

    Box ``t`` draws ``k_scale * exp(-(dx^2 + dy^2) / (2 sigma^2))``, with
    ``sigma = (2 r + 1) / diameter_to_sigma_factor``, on the (2r+1) x (2r+1) window
    around its integer center, clipped to the map, into heatmap plane
    ``heatmap_idxes[t]``; each pixel keeps the max of its old and new values
    (mmdet's ``gen_gaussian_target`` / mmdet3d's ``draw_heatmap_gaussian``). Values
    below float32's epsilon (float64's for float64 heatmaps; times ``k_scale``) are drawn
    as 0, as mmdet does in float32; 16-bit heatmaps hold that float32 drawing rounded once.
    A heatmap that requires grad, or whose elements overlap in memory, is refused.

    Args:
        heatmap: (..., H, W) float16/bfloat16/float32/float64, modified in place.
            Its leading dimensions are flattened into N planes, which
            ``heatmap_idxes`` index: for (B, C, H, W), ``idx = b * C + label``.
        centers: (T, 2) int32/int64, (x, y) pixel coordinates; centers outside the
            map draw the part of their window that lies inside it. Here and for
            ``radii`` and ``heatmap_idxes``, a nested Python list of ints is made a
            tensor on the heatmap's device (floats are refused, as in a tensor).
        radii: (T,) int32/int64, >= 0. Radius 0 draws one pixel of value ``k_scale``.
        heatmap_idxes: (T,) int32/int64 in [0, N).
        diameter_to_sigma_factor: sigma = diameter / this. Default 6 (mmdet).
        k_scale: peak value, >= 0.
        backend: ``"auto"`` (Triton for CUDA tensors, torch for CPU), ``"triton"``
            (on CPU tensors it runs in Triton's interpreter), or ``"torch"``.
        validate: check radii and indices before drawing and raise ``ValueError``
            naming the first bad entry (the heatmap is left unchanged). The default,
            ``None``, checks on the CPU and not on a GPU: a check reads values, so on a
            GPU it waits for the device (one host sync). Unchecked, nothing syncs
            (CUDA-graph capture works) and invalid boxes are skipped: never drawn.
            ``GAUSSDRAW_VALIDATE=1`` or :func:`gaussdraw.set_default_validate` makes
            ``None`` check everywhere, to find bad boxes in a GPU run.

    Returns:
        ``heatmap``.

    Example:
        >>> heatmap = torch.zeros(2, 5, 7)
        >>> centers = torch.tensor([[3, 2], [0, 0]])
        >>> _ = draw_heatmap(heatmap, centers, torch.tensor([1, 2]), torch.tensor([0, 1]))
        >>> heatmap[0, 2, 3].item(), heatmap[1, 0, 0].item()
        (1.0, 1.0)
    """
    return _draw_concat(heatmap, centers, radii, heatmap_idxes, diameter_to_sigma_factor, k_scale, backend, validate,
                        zeroed=False)


def _draw_concat(heatmap, centers, radii, heatmap_idxes, diameter_to_sigma_factor, k_scale, backend, validate,
                 zeroed: bool) -> torch.Tensor:
    """:func:`draw_heatmap`; ``zeroed``: the heatmap is zeros that gaussdraw made."""
    if type(centers) is not torch.Tensor or type(radii) is not torch.Tensor or type(heatmap_idxes) is not torch.Tensor:
        centers, radii, heatmap_idxes = (python_tensor(v, name, getattr(heatmap, "device", None)) if is_numbers(v)
                                         else v for v, name in ((centers, "centers"), (radii, "radii"),
                                                                (heatmap_idxes, "heatmap_idxes")))
    key, relaunch = planned(heatmap, validate, zeroed, lambda: (
        "concat", layout(heatmap), layout(centers), layout(radii), layout(heatmap_idxes),
        type(diameter_to_sigma_factor), diameter_to_sigma_factor, type(k_scale), k_scale, backend))
    if relaunch is not None:
        relaunch(heatmap, centers, radii, heatmap_idxes, radii)
        relaunched(heatmap)
        return heatmap
    _check_options(diameter_to_sigma_factor, k_scale, backend)
    _check_heatmap(heatmap, 2, k_scale=k_scale)
    device = heatmap.device
    check_index_tensor(centers, "centers", (None, 2), device)
    num_boxes = centers.shape[0]
    check_index_tensor(radii, "radii", (num_boxes,), device)
    check_index_tensor(heatmap_idxes, "heatmap_idxes", (num_boxes,), device)
    num_planes = math.prod(heatmap.shape[:-2])
    if (num_boxes and resolve_validate(validate, device)
            and not screened((radii, 0, None), (heatmap_idxes, 0, num_planes))):
        raise_first([
            (radii < 0, radii, "radii must be >= 0"),
            ((heatmap_idxes < 0) | (heatmap_idxes >= num_planes), heatmap_idxes,
             f"heatmap_idxes must be in [0, {num_planes}) for a heatmap of {num_planes} planes"),
        ])
    remember(key, _draw(heatmap, num_planes, centers, radii, heatmap_idxes, None, 0, num_boxes,
                        diameter_to_sigma_factor, k_scale, route(backend, device), zeroed))
    written(heatmap)
    return heatmap


def draw_heatmap_batched(heatmap: torch.Tensor, centers: RaggedLike, radii: RaggedLike,
                         diameter_to_sigma_factor: float = 6.0, k_scale: float = 1.0,
                         labels: RaggedLike | None = None, *, counts: torch.Tensor | None = None,
                         backend: str = "auto", validate: bool | None = None) -> torch.Tensor:
    """Draw Gaussians into per-sample heatmaps, in place, from per-sample sets of boxes.

    Same values as :func:`draw_heatmap`; sample ``b``'s boxes draw into
    ``heatmap[b]``, or into ``heatmap[b, labels]`` when ``labels`` is given.

    Args:
        heatmap: (B, H, W), or (B, C, H, W) when ``labels`` is given; modified in place.
        centers: per-sample (x, y) int32/int64 centers: a ragged batch (``.tensor``
            (B, Tmax, 2), ``.sample_sizes`` (B,), e.g. :class:`gaussdraw.Ragged` or
            ACCV-Lab's ``RaggedBatch``), a list of B (T_b, 2) tensors, or a padded
            (B, Tmax, 2) tensor with ``counts``. A list's samples may be nested
            Python lists of ints (``[[[1, 2]], [[3, 4], [5, 6]]]``), made int64 tensors
            on the heatmap's device.
        radii: per-sample radii, (B, Tmax) / list of (T_b,), in any of those forms.
        labels: optional per-sample class indices in [0, C), in any of those forms.
        counts: (B,) int32/int64, valid entries per sample, in [0, Tmax]; needed when
            every input is a padded tensor, else taken from the ragged/list inputs.
            Entries at positions >= counts[b] are never read for drawing.
        diameter_to_sigma_factor, k_scale, backend, validate: as in :func:`draw_heatmap`.

    Returns:
        ``heatmap``.

    Example:
        >>> heatmap = torch.zeros(2, 3, 8, 8)          # 2 samples, 3 classes
        >>> centers = [torch.tensor([[1, 1], [6, 5]]), torch.tensor([[4, 4]])]
        >>> radii = [torch.tensor([1, 2]), torch.tensor([3])]
        >>> labels = [torch.tensor([0, 2]), torch.tensor([1])]
        >>> _ = draw_heatmap_batched(heatmap, centers, radii, labels=labels)
        >>> heatmap[0, 2, 5, 6].item(), heatmap[1, 1, 4, 4].item()
        (1.0, 1.0)
    """
    return _draw_batched(heatmap, centers, radii, labels, counts, diameter_to_sigma_factor, k_scale, backend, validate,
                         zeroed=False)


DRAW_FIELDS = (Field("centers", (2,)), Field("radii"), Field("labels"))


def _draw_batched(heatmap, centers, radii, labels, counts, diameter_to_sigma_factor, k_scale, backend, validate,
                  zeroed: bool) -> torch.Tensor:
    """:func:`draw_heatmap_batched`; ``zeroed``: the heatmap is zeros that gaussdraw made."""
    key, relaunch = planned(heatmap, validate, zeroed, lambda: (
        "batched", layout(heatmap), ragged_layout(centers), ragged_layout(radii),
        None if labels is None else ragged_layout(labels), None if counts is None else layout(counts),
        type(diameter_to_sigma_factor), diameter_to_sigma_factor, type(k_scale), k_scale, backend))
    if relaunch is not None:
        values = [v if type(v) is torch.Tensor else v.tensor for v in (centers, radii, labels) if v is not None]
        if counts is None:  # the first input's sample sizes, as the checked call took them
            counts = next(v.sample_sizes for v in (centers, radii, labels) if type(v) is not torch.Tensor)
        relaunch(heatmap, values[0], values[1], values[2] if labels is not None else values[1], counts)
        relaunched(heatmap)
        return heatmap
    _check_options(diameter_to_sigma_factor, k_scale, backend)
    classwise = labels is not None
    _check_batched_dims(heatmap, classwise, "shape" if zeroed else "heatmap")
    _check_heatmap(heatmap, 4 if classwise else 3, 4 if classwise else 3, k_scale=k_scale)
    num_samples, num_classes = heatmap.shape[0], heatmap.shape[1] if classwise else 1
    batch = batch_inputs({"centers": centers, "radii": radii, "labels": labels}, DRAW_FIELDS, counts,
                         num_samples=num_samples, device=heatmap.device, against="heatmap")
    if num_samples and resolve_validate(validate, heatmap.device):
        _check_boxes(batch, num_classes if classwise else None)
    remember(key, _draw(heatmap, num_samples * num_classes, batch.tensors["centers"], batch.tensors["radii"],
                        batch.tensors.get("labels"), batch.counts, num_classes, batch.boxes_per_sample,
                        diameter_to_sigma_factor, k_scale, route(backend, heatmap.device), zeroed))
    written(heatmap)
    return heatmap


def _check_boxes(batch: Batch, num_classes: int | None) -> None:
    """Raise for bad counts, a radius < 0 or a label outside [0, num_classes) in use (one host sync on a GPU;
    none for CPU values that pass a quick screen)."""
    radii, labels, counts = batch.used("radii"), batch.used("labels"), batch.counts
    if screened((counts, 0, batch.boxes_per_sample + 1), (radii, 0, None),
                *([(labels, 0, num_classes)] if labels is not None else [])) and all(
            sizes is counts or torch.equal(sizes, counts) for _, sizes in batch.sizes):
        return
    in_use = batch.in_use()
    checks = [(in_use & (radii < 0), radii, "radii must be >= 0")]
    if labels is not None:
        checks.append((in_use & ((labels < 0) | (labels >= num_classes)), labels,
                       f"labels must be in [0, {num_classes}) for a heatmap of {num_classes} classes"))
    raise_first(batch.count_checks() + checks, per_sample=batch.boxes_per_sample)


def render_heatmaps(
    shape: Sequence[int],
    centers: torch.Tensor,
    radii: torch.Tensor,
    heatmap_idxes: torch.Tensor,
    diameter_to_sigma_factor: float = 6.0,
    k_scale: float = 1.0,
    *,
    dtype: torch.dtype = torch.float32,
    backend: str = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """A new heatmap of ``shape`` (..., H, W) on ``centers.device``, zeros plus the
    Gaussians of :func:`draw_heatmap`.

    Example:
        >>> hm = render_heatmaps((1, 3, 3), torch.tensor([[1, 1]]), torch.tensor([0]), torch.tensor([0]))
        >>> hm[0].tolist()
        [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    device = centers.device if isinstance(centers, torch.Tensor) else None
    heatmap = torch.zeros(tuple(shape), dtype=dtype, device=device)
    return _draw_concat(heatmap, centers, radii, heatmap_idxes, diameter_to_sigma_factor, k_scale, backend, validate,
                        zeroed=True)


def render_heatmaps_batched(
    shape: Sequence[int],
    centers: RaggedLike,
    radii: RaggedLike,
    diameter_to_sigma_factor: float = 6.0,
    k_scale: float = 1.0,
    labels: RaggedLike | None = None,
    *,
    counts: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    backend: str = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """A new heatmap of ``shape`` ((B, H, W), or (B, C, H, W) with ``labels``), zeros
    plus the Gaussians of :func:`draw_heatmap_batched`. ``device`` defaults to the
    device of ``radii``.

    Example:
        >>> hm = render_heatmaps_batched((2, 4, 4), [torch.tensor([[1, 1]])] * 2, [torch.tensor([1])] * 2)
        >>> hm.shape, hm[1, 1, 1].item()
        (torch.Size([2, 4, 4]), 1.0)
    """
    if device is None:
        device = device_of(radii, "radii")
    heatmap = torch.zeros(tuple(shape), dtype=dtype, device=device)
    return _draw_batched(heatmap, centers, radii, labels, counts, diameter_to_sigma_factor, k_scale, backend, validate,
                         zeroed=True)
