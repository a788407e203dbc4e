"""Plain whole-head decoding pieces: CenterNet's box arithmetic per peak, and mmcv's ``nms_rotated``
(its greedy rule over :mod:`gaussdraw.reference.rotated_nms`'s float64 IoU), for tests and benchmarks."""

from __future__ import annotations

import torch

from .rotated_nms import rotated_nms_per_box


def centernet_boxes_per_peak(heatmap, wh, offset, img_shape, k=100, kernel=3):
    """(bboxes (B, k, 4), scores (B, k), labels (B, k)) of mmdet's ``_decode_heatmap``, one peak at a
    time: peaks from :func:`~gaussdraw.reference.detection.heatmap_peaks_composed`, then
    x = x_pixel + offset_x, box = (x -/+ w / 2) * (img_w / W), in float32."""
    from .detection import heatmap_peaks_composed

    scores, _, labels, ys, xs = heatmap_peaks_composed(heatmap, k, kernel)
    batch, _, height, width = heatmap.shape
    boxes = torch.zeros(batch, k, 4)
    ratio_x = torch.tensor(img_shape[1] / width, dtype=torch.float32)
    ratio_y = torch.tensor(img_shape[0] / height, dtype=torch.float32)
    for b in range(batch):
        for i in range(k):
            y, x = int(ys[b, i]), int(xs[b, i])
            w, h = wh[b, 0, y, x].float(), wh[b, 1, y, x].float()
            cx, cy = x + offset[b, 0, y, x].float(), y + offset[b, 1, y, x].float()
            boxes[b, i] = torch.stack([(cx - w / 2) * ratio_x, (cy - h / 2) * ratio_y,
                                       (cx + w / 2) * ratio_x, (cy + h / 2) * ratio_y])
    return boxes, scores, labels


def nms_rotated_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float):
    """mmcv's ``nms_rotated(boxes (N, 5), scores (N,), iou_threshold) -> (dets (n, 6), keep (n,))``: greedy
    by descending score, a box is suppressed where its IoU with a kept box is at least ``iou_threshold``
    (mmcv's CPU kernel; its CUDA kernel compares ``>``), as
    :func:`~gaussdraw.reference.rotated_nms.rotated_nms_per_box` runs it."""
    keep = rotated_nms_per_box(boxes.detach().cpu().tolist(), scores.detach().cpu().tolist(), iou_threshold)
    keep = torch.tensor(keep, dtype=torch.long, device=boxes.device)
    return torch.cat([boxes[keep], scores[keep, None]], 1), keep
