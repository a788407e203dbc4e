"""Plain rotated (BEV) NMS: float64 polygon clipping, one pair at a time, and the greedy loop.

The rule is mmcv's ``nms_rotated`` (mmcv 2.1.0, ``ops/csrc/pytorch/cpu/nms_rotated.cpp``) as
mmdet3d's ``nms_bev`` calls it (see :func:`gaussdraw.rotated_nms_batched` for the convention):
boxes (x_center, y_center, width, height, angle in radians); corners the counter-clockwise
rotation by the angle of (-w/2, +h/2), (-w/2, -h/2), (+w/2, -h/2), (+w/2, +h/2) about the
center, both boxes moved so that their centers' midpoint is the origin; IoU 0 where a box's
``w * h`` is below 1e-14, else intersection / (area1 + area2 - intersection); by descending
score (equal scores: the lower index first), a box is suppressed by a kept one where their IoU
is at least the threshold rounded to float32.
"""

from __future__ import annotations

import math

import numpy as np

DEGENERATE_AREA = 1e-14  # mmcv: a box with w * h below this has IoU 0 with every box


def rotated_corners(box, shift_x: float = 0.0, shift_y: float = 0.0) -> list[tuple[float, float]]:
    """The 4 float64 corners of ``box`` (x, y, w, h, angle) moved by (-shift_x, -shift_y), counter-
    clockwise for w, h > 0, in mmcv's order (``get_rotated_vertices``)."""
    x, y, w, h, angle = (float(v) for v in box)
    cos_half, sin_half = math.cos(angle) * 0.5, math.sin(angle) * 0.5
    x, y = x - shift_x, y - shift_y
    first = (x - sin_half * h - cos_half * w, y + cos_half * h - sin_half * w)
    second = (x + sin_half * h - cos_half * w, y - cos_half * h - sin_half * w)
    return [first, second, (2 * x - first[0], 2 * y - first[1]), (2 * x - second[0], 2 * y - second[1])]


def polygon_area(points: list) -> float:
    """Unsigned shoelace area of a polygon given by its vertices in order."""
    total = 0.0
    for k in range(len(points)):
        (x0, y0), (x1, y1) = points[k], points[(k + 1) % len(points)]
        total += x0 * y1 - x1 * y0
    return abs(total) / 2.0


def clip_polygon(subject: list, clip: list) -> list:
    """Sutherland–Hodgman: the part of convex polygon ``subject`` inside convex counter-clockwise
    polygon ``clip`` (inside a clip edge: on its left, or on it)."""
    output = list(subject)
    for k in range(len(clip)):
        (ax, ay), (bx, by) = clip[k], clip[(k + 1) % len(clip)]
        source, output = output, []
        if not source:
            break
        side = [(bx - ax) * (py - ay) - (by - ay) * (px - ax) for px, py in source]
        for m in range(len(source)):
            p, q = source[m], source[(m + 1) % len(source)]
            fp, fq = side[m], side[(m + 1) % len(source)]
            if fp >= 0:
                output.append(p)
            if (fp >= 0) != (fq >= 0):  # the edge crosses the clip line
                t = fp / (fp - fq)
                output.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return output


def rotated_iou(first, second) -> float:
    """float64 IoU of two rotated boxes (x, y, w, h, angle), as mmcv's ``single_box_iou_rotated``
    defines it (exact intersection area; mmcv finds it with a convex hull)."""
    area_first = float(first[2]) * float(first[3])
    area_second = float(second[2]) * float(second[3])
    if area_first < DEGENERATE_AREA or area_second < DEGENERATE_AREA:
        return 0.0
    reach = (math.hypot(first[2], first[3]) + math.hypot(second[2], second[3])) / 2
    if math.hypot(float(first[0]) - float(second[0]), float(first[1]) - float(second[1])) > reach * 1.000001:
        return 0.0  # the circles about the boxes do not meet (no clipping needed)
    shift_x, shift_y = (float(first[0]) + float(second[0])) / 2, (float(first[1]) + float(second[1])) / 2
    polygon_first = rotated_corners(first, shift_x, shift_y)
    polygon_second = rotated_corners(second, shift_x, shift_y)
    intersection = polygon_area(clip_polygon(polygon_first, polygon_second))
    return intersection / (area_first + area_second - intersection)


def descending_order(scores) -> list[int]:
    """Indices by descending score, equal scores by index, NaN first (as a stable descending
    ``torch.sort``)."""
    values = [float(s) for s in scores]
    return sorted(range(len(values)), key=lambda i: (0, 0.0, i) if math.isnan(values[i]) else (1, -values[i], i))


def rotated_nms_per_box(boxes, scores, thresh: float, pre_max_size: int | None = None,
                        post_max_size: int | None = None) -> list[int]:
    """Greedy rotated NMS of one set of (N, 5) ``boxes`` (x, y, w, h, angle) with (N,) ``scores``,
    one pair at a time, as mmdet3d's ``nms_bev`` over mmcv's CPU ``nms_rotated`` runs it: the
    indices kept, best first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    threshold = float(np.float32(thresh))  # mmcv takes the threshold as a C float
    order = descending_order(np.asarray(scores, dtype=np.float64).reshape(-1))
    if pre_max_size is not None:
        order = order[:pre_max_size]
    suppressed = [False] * len(order)
    kept = []
    for a, i in enumerate(order):
        if suppressed[a]:
            continue
        kept.append(i)
        for b in range(a + 1, len(order)):
            if not suppressed[b] and rotated_iou(boxes[i], boxes[order[b]]) >= threshold:
                suppressed[b] = True
    return kept if post_max_size is None else kept[:post_max_size]
