"""Plain whole-head decoding pieces: CenterNet's box arithmetic per peak, and rotated NMS with a float64
polygon IoU (mmcv ``nms_rotated``'s greedy rule), for tests and benchmarks."""

from __future__ import annotations

import math

import torch


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


def _corners(box) -> list:
    """Counter-clockwise corners of a rotated box (x, y, w, h, angle), float64."""
    x, y, w, h, angle = (float(v) for v in box)
    cos, sin = math.cos(angle), math.sin(angle)
    return [(x + cos * dx - sin * dy, y + sin * dx + cos * dy)
            for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]


def _clip(polygon: list, a, b) -> list:
    """``polygon`` clipped to the left of the directed edge a -> b (Sutherland-Hodgman, one edge)."""
    def side(p):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    result = []
    for i, current in enumerate(polygon):
        previous = polygon[i - 1]
        s_cur, s_prev = side(current), side(previous)
        crossing = (s_cur >= 0) != (s_prev >= 0)
        if crossing:
            t = s_prev / (s_prev - s_cur)
            result.append((previous[0] + t * (current[0] - previous[0]), previous[1] + t * (current[1] - previous[1])))
        if s_cur >= 0:
            result.append(current)
    return result


def _area(polygon: list) -> float:
    return 0.5 * abs(sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(polygon, polygon[1:] + polygon[:1])))


def rotated_iou(box_a, box_b) -> float:
    """IoU of two rotated boxes (x, y, w, h, angle), float64 polygon clipping; 0 where a box's w * h is
    below 1e-14 (mmcv's ``single_box_iou_rotated``: a box with one negative size too)."""
    if float(box_a[2]) * float(box_a[3]) < 1e-14 or float(box_b[2]) * float(box_b[3]) < 1e-14:
        return 0.0
    polygon = _corners(box_a)
    clip = _corners(box_b)
    for i in range(4):
        if not polygon:
            break
        polygon = _clip(polygon, clip[i], clip[(i + 1) % 4])
    inter = _area(polygon) if len(polygon) >= 3 else 0.0
    union = float(box_a[2]) * float(box_a[3]) + float(box_b[2]) * float(box_b[3]) - inter
    return inter / union if union > 0 else 0.0


def nms_rotated_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float):
    """mmcv's ``nms_rotated(boxes (N, 5), scores (N,), iou_threshold) -> (dets (n, 6), keep (n,))``: greedy
    by descending score, a box is suppressed where its IoU with a kept box is at least ``iou_threshold``
    (mmcv's CPU kernel; its CUDA kernel compares ``>``)."""
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    suppressed = [False] * len(order)
    keep = []
    for position, i in enumerate(order):
        if suppressed[position]:
            continue
        keep.append(i)
        for later in range(position + 1, len(order)):
            if not suppressed[later] and rotated_iou(boxes[i].tolist(), boxes[order[later]].tolist()) >= iou_threshold:
                suppressed[later] = True
    keep = torch.tensor(keep, dtype=torch.long, device=boxes.device)
    return torch.cat([boxes[keep], scores[keep, None]], 1), keep
