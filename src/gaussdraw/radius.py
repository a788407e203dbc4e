"""The Gaussian radius of a box: CornerNet's formula (mmdet3d, CenterNet, CenterPoint,
OpenPCDet) and mmdet's corrected one.

Both solve three quadratics for the largest corner shift ``r`` that keeps a box's IoU
with the ground truth at least ``min_overlap`` and take the smallest root. CornerNet's
original code (kept by mmdet3d 1.x and the CenterNet/CenterPoint code bases) divides
every root by 2 instead of ``2a`` and adds the square root in the first two; mmdet
3.x corrects both. The two give different radii for the same box.

The arithmetic follows each reference operation by operation, in its precision, so that
``int(radius)`` agrees with it: float32 tensors in mmdet3d; in mmdet, float32 tensor
operations around float64 ``math.sqrt`` (which, rounded back to float32, is float32's
correctly rounded square root). Square roots are correctly rounded on every device and
backend; mmdet3d's ``torch.sqrt`` on float32 CPU tensors can be an ulp off (it is on
CUDA), so its radius can differ in the last bit, and its ``int`` only where the radius is
that close to an integer.
"""

from __future__ import annotations

import numbers

import torch

FORMULAS = ("cornernet", "mmdet")


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a tensor or a real number; got {type(value).__name__}")
    return torch.tensor(float(value), dtype=torch.float64)


def _divide(x: torch.Tensor, value: float) -> torch.Tensor:
    """``x / value`` rounded as on the CPU. (CUDA divides a tensor by a Python number as a
    multiplication by its reciprocal, which can differ by an ulp; a 0-d device tensor
    makes it a true division.)"""
    if x.is_cuda:
        return x / torch.full((), value, dtype=x.dtype, device=x.device)
    return x / value


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root (IEEE, as ``math.sqrt``, CUDA and Triton's ``sqrt_rn``
    give). torch's float32 ``sqrt`` on the CPU can be an ulp off (vectorized code), so
    float32 goes through float64: rounding a float64 square root to float32 is exact."""
    return x.sqrt() if x.dtype == torch.float64 else x.double().sqrt().to(x.dtype)


def cornernet_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float) -> torch.Tensor:
    """mmdet3d 1.x ``gaussian_radius((height, width), min_overlap)``, elementwise, in the tensors' dtype."""
    b1 = height + width
    c1 = _divide(width * height * (1 - min_overlap), 1 + min_overlap)
    r1 = (b1 + _sqrt(b1 * b1 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + _sqrt(b2 * b2 - 16 * c2)) / 2
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + _sqrt(b3 * b3 - (16 * min_overlap) * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def mmdet_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float) -> torch.Tensor:
    """mmdet 3.x ``gaussian_radius((height, width), min_overlap)``, elementwise, in the tensors' dtype."""
    b1 = height + width
    c1 = _divide(width * height * (1 - min_overlap), 1 + min_overlap)
    r1 = (b1 - _sqrt(b1 * b1 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 - _sqrt(b2 * b2 - 16 * c2)) / 8
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = _divide(b3 + _sqrt(b3 * b3 - (16 * min_overlap) * c3), 8 * min_overlap)
    return torch.minimum(torch.minimum(r1, r2), r3)


def _det_size_form(det_size, width, min_overlap, formula) -> tuple:
    """(height, width, min_overlap) of mmdet's and mmdet3d's call ``gaussian_radius(det_size, min_overlap)``."""
    if len(det_size) != 2 or any(isinstance(v, (list, tuple)) for v in det_size):
        raise TypeError(f"height must be a tensor or a real number; got a {type(det_size).__name__} of "
                        f"{len(det_size)}: for several boxes pass torch.tensor(heights), torch.tensor(widths)")
    if width is not None and min_overlap is not None:
        raise TypeError(f"gaussian_radius takes (height, width, min_overlap) or (det_size, min_overlap); got "
                        f"det_size {tuple(det_size)!r} and both width={width!r} and min_overlap={min_overlap!r}")
    overlap = width if width is not None else min_overlap
    if formula is None:
        height, width = det_size
        raise ValueError(f"det_size {tuple(det_size)!r} needs formula=: mmdet and mmdet3d both call gaussian_radius("
                         "det_size, min_overlap) but with different formulas; pass formula=\"mmdet\" (mmdet 3.x) or "
                         f"formula=\"cornernet\" (mmdet3d 1.x), or call gaussian_radius({height!r}, {width!r}, "
                         f"{overlap if overlap is not None else 0.7!r}) for CornerNet's")
    return det_size[0], det_size[1], overlap


def _arguments(height, width, min_overlap, formula) -> tuple:
    """(height, width, min_overlap, formula) of either call, defaults filled in."""
    if isinstance(height, (list, tuple)):
        height, width, min_overlap = _det_size_form(height, width, min_overlap, formula)
    elif width is None:
        raise TypeError("width is required: call gaussian_radius(height, width, min_overlap), or "
                        "gaussian_radius((height, width), min_overlap, formula=...) as mmdet does")
    return height, width, 0.7 if min_overlap is None else min_overlap, "cornernet" if formula is None else formula


def gaussian_radius(height, width=None, min_overlap: float | None = None, *, formula: str | None = None
                    ) -> torch.Tensor:
    """The Gaussian radius of boxes of size ``height`` x ``width``, not truncated.

    Elementwise over tensors of broadcastable shapes, or Python numbers. mmdet's and mmdet3d's
    call ``gaussian_radius((height, width), min_overlap)`` is taken too, with ``formula`` given
    (they compute different radii for it).

    Args:
        height, width: box sizes (tensors or numbers), in the pixels of the map drawn on.
        min_overlap: the IoU, in (0, 1), that a box whose corners are shifted by the
            radius must keep with the box. Default (None): 0.7.
        formula: ``"cornernet"`` (the default, None, for ``(height, width, ...)``): the
            original CornerNet formula, as in mmdet3d 1.x
            (``mmdet3d.models.utils.gaussian_radius``), CenterNet, CenterPoint and
            OpenPCDet; ``"mmdet"``: mmdet 3.x's corrected formula
            (``mmdet.models.utils.gaussian_radius``). They differ for the same box.

    Returns:
        The radius, a float tensor of the broadcast shape: in the inputs' floating dtype
        (integer tensors: float32). Python numbers alone give float64 with
        ``formula="mmdet"`` (mmdet computes in Python floats) and float32 with
        ``"cornernet"`` (mmdet3d computes in float32 tensors). Callers truncate it:
        mmdet's CenterNet head uses ``max(0, int(r))``, mmdet3d's CenterPoint head
        ``max(min_radius, int(r))``.

    Example:
        >>> gaussian_radius(torch.tensor([10.0, 40.0]), torch.tensor([20.0, 40.0]), 0.7)
        tensor([ 3.6779, 10.9328])
        >>> round(gaussian_radius(10.0, 20.0, 0.3, formula="mmdet").item(), 4)
        2.8902
        >>> round(gaussian_radius((10.0, 20.0), 0.3, formula="mmdet").item(), 4)  # mmdet's call
        2.8902
    """
    height, width, min_overlap, formula = _arguments(height, width, min_overlap, formula)
    if formula not in FORMULAS:
        raise ValueError(f"formula must be one of {FORMULAS}; got {formula!r}")
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, numbers.Real):
        raise TypeError(f"min_overlap must be a Python number; got {type(min_overlap).__name__}")
    if not 0 < min_overlap < 1:
        raise ValueError(f"min_overlap must be in (0, 1); got {min_overlap}")
    numbers_only = not isinstance(height, torch.Tensor) and not isinstance(width, torch.Tensor)
    height, width = _as_tensor(height, "height"), _as_tensor(width, "width")
    if height.device != width.device:
        raise ValueError(f"height is on {height.device} but width is on {width.device}")
    for name, value in (("height", height), ("width", width)):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor; got {value.dtype}")
    if numbers_only:
        dtype = torch.float64 if formula == "mmdet" else torch.float32
    else:
        dtype = torch.promote_types(height.dtype, width.dtype)
        if not dtype.is_floating_point:
            dtype = torch.float32
    height, width = torch.broadcast_tensors(height.to(dtype), width.to(dtype))
    radius = cornernet_radius if formula == "cornernet" else mmdet_radius
    return radius(height, width, float(min_overlap))
