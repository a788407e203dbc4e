"""CenterNet's whole-head decoding: mmdet 3.3 ``CenterNetHead._decode_heatmap`` (peaks, gathered
size and offset, boxes scaled to the input image) and the rescale of ``_predict_by_feat_single``."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..checks import check_float_tensor
from ..dispatch import check_backend, route, run
from ..ops.centernet_boxes import CENTERNET_BOXES, centernet_boxes_torch
from .peaks import heatmap_peaks


class CenterNetDetections(NamedTuple):
    """The top ``k`` detections of each image, best first.

    bboxes: (B, k, 4) [x1, y1, x2, y2] in input-image pixels (mmdet's dtype: float32 for float32 or
    float16 maps, float64 for float64); scores: (B, k) the heatmap's values at the peaks (its
    dtype); labels: (B, k) int64 classes."""

    bboxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


def centernet_decode(heatmap: torch.Tensor, wh: torch.Tensor, offset: torch.Tensor, img_shape, k: int = 100,
                     kernel: int = 3, *, backend: str = "auto") -> CenterNetDetections:
    """mmdet 3.3's ``CenterNetHead._decode_heatmap`` for a batch, no host sync.

    Peaks: the ``k`` highest local maxima (``kernel`` x ``kernel``) of the heatmap over all classes
    (:func:`~gaussdraw.heatmap_peaks`); at each peak (x, y) with size (w, h) = ``wh`` and
    (dx, dy) = ``offset`` there: box = ((x + dx - w / 2) * img_w / W, (y + dy - h / 2) * img_h / H,
    (x + dx + w / 2) * img_w / W, (y + dy + h / 2) * img_h / H), in mmdet's float arithmetic and
    without clamping (as mmdet: boxes may leave the image). Where fewer than ``k`` peaks are
    positive, the rest are zero-score pixels, as mmdet's top-k gives them.

    Args:
        heatmap: (B, C, H, W) float class probabilities (after the sigmoid).
        wh: (B, 2, H, W) box width and height in feature-map pixels.
        offset: (B, 2, H, W) sub-pixel (dx, dy) of the center.
        img_shape: (img_h, img_w), mmdet's ``batch_input_shape``.
        k: detections per image, in [1, C * H * W]. kernel: odd local-maximum window.
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" or "torch".

    Returns:
        :class:`CenterNetDetections`. NaN heatmap values: as :func:`~gaussdraw.heatmap_peaks` ranks them.

    Example:
        >>> heat = torch.zeros(1, 2, 8, 8)
        >>> heat[0, 1, 3, 4] = 0.9
        >>> wh, offset = torch.full((1, 2, 8, 8), 2.0), torch.full((1, 2, 8, 8), 0.5)
        >>> out = centernet_decode(heat, wh, offset, (32, 32), k=1)
        >>> out.bboxes.tolist(), out.labels.tolist()
        ([[[14.0, 10.0, 22.0, 18.0]]], [[1]])
    """
    check_backend(backend)
    check_float_tensor(heatmap, "heatmap", (None,) * 4, getattr(heatmap, "device", None), "heatmap")
    batch, _, height, width = heatmap.shape
    for name, value in (("wh", wh), ("offset", offset)):
        check_float_tensor(value, name, (batch, 2, height, width), heatmap.device, "heatmap")
    if len(img_shape) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in img_shape):
        raise ValueError(f"img_shape must be (img_h, img_w), two positive numbers; got {img_shape!r}")
    peaks = heatmap_peaks(heatmap, k, kernel, backend=backend)
    ratios = (float(img_shape[1]) / width, float(img_shape[0]) / height)
    chosen = route(backend, heatmap.device)
    if heatmap.dtype == wh.dtype == offset.dtype == torch.float32:
        bboxes = run(CENTERNET_BOXES, chosen, wh, offset, peaks.indices, width, ratios[0], ratios[1])
    else:  # mmdet's dtype promotion, as it computes
        bboxes = centernet_boxes_torch(wh, offset, peaks.indices, width, ratios[0], ratios[1])
    return CenterNetDetections(bboxes, peaks.scores, peaks.labels)


def centernet_rescale(bboxes: torch.Tensor, border, scale_factor=None) -> torch.Tensor:
    """``_predict_by_feat_single``'s rescale of decoded boxes: subtract the crop ``border``'s (left, top)
    and divide by ``scale_factor`` (w, h), as mmdet does with ``img_meta['border']`` and
    ``img_meta['scale_factor']``. Returns new boxes; ``bboxes`` is not changed.

    Args:
        bboxes: (..., 4) [x1, y1, x2, y2], e.g. :class:`CenterNetDetections`'s (B, k, 4).
        border: (top, bottom, left, right) of one image, or a (B, 4) tensor / list for a (B, k, 4) batch.
        scale_factor: (w_scale, h_scale), or (B, 2) per image; None: no division (mmdet's ``rescale=False``).

    Example:
        >>> centernet_rescale(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), (4, 0, 2, 0), (2.0, 4.0)).tolist()
        [[4.0, 4.0, 14.0, 9.0]]
    """
    border = torch.as_tensor(border, dtype=bboxes.dtype, device=bboxes.device)
    if border.shape[-1] != 4:
        raise ValueError(f"border must be (top, bottom, left, right) per image; got shape {tuple(border.shape)}")
    shift = border[..., [2, 0, 2, 0]]
    if shift.dim() == 2:  # per image of a (B, k, 4) batch
        shift = shift.unsqueeze(1)
    out = bboxes - shift
    if scale_factor is not None:
        scale = torch.as_tensor(scale_factor, dtype=bboxes.dtype, device=bboxes.device)
        if scale.shape[-1] != 2:
            raise ValueError(f"scale_factor must be (w_scale, h_scale) per image; got shape {tuple(scale.shape)}")
        scale = scale.repeat_interleave(1, -1)[..., [0, 1, 0, 1]]
        out = out / (scale.unsqueeze(1) if scale.dim() == 2 else scale)
    return out
