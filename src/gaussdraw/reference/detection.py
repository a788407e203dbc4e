"""Plain per-box implementations of the detection side: the obviously-correct baseline for tests and
benchmarks.

These follow mmdet3d's ``draw_heatmap_gaussian``: for each box, float64 numpy
Gaussian values on the part of its window inside the map, thresholded, moved to
the heatmap's device and max-merged with ``torch.max``. One box at
a time, in Python: this is the cost gaussdraw removes.
"""

from __future__ import annotations

import numpy as np
import torch


def gaussian_values(dy: np.ndarray, dx: np.ndarray, radius: int, diameter_to_sigma_factor=6.0, zero_below=0.0):
    """float64 exp(-(dx^2 + dy^2) / (2 sigma^2)) on the grid of offsets dy x dx; values < zero_below are 0."""
    sigma = (2 * radius + 1) / diameter_to_sigma_factor
    values = np.exp(-(dx[None, :].astype(np.float64) ** 2 + dy[:, None].astype(np.float64) ** 2) / (2 * sigma * sigma))
    values[values < zero_below] = 0.0
    return values


def draw_one_box(heatmap: torch.Tensor, x: int, y: int, radius: int, diameter_to_sigma_factor=6.0, k_scale=1.0):
    """Max-merge one Gaussian into a 2-D ``heatmap`` (H, W), in place."""
    height, width = heatmap.shape
    x_lo, x_hi = max(x - radius, 0), min(x + radius, width - 1)
    y_lo, y_hi = max(y - radius, 0), min(y + radius, height - 1)
    if radius < 0 or x_hi < x_lo or y_hi < y_lo:
        return heatmap
    dy = np.arange(y_lo - y, y_hi - y + 1)
    dx = np.arange(x_lo - x, x_hi - x + 1)
    window = gaussian_values(dy, dx, radius, diameter_to_sigma_factor, torch.finfo(heatmap.dtype).eps)
    values = torch.from_numpy(window * k_scale).to(heatmap.device, heatmap.dtype)
    target = heatmap[y_lo : y_hi + 1, x_lo : x_hi + 1]
    torch.max(target, values, out=target)
    return heatmap


def draw_heatmap_per_box(heatmap, centers, radii, heatmap_idxes, diameter_to_sigma_factor=6.0, k_scale=1.0):
    """Per-box loop with :func:`gaussdraw.draw_heatmap`'s signature (valid inputs only)."""
    planes = heatmap.view(-1, *heatmap.shape[-2:])
    for (x, y), radius, index in zip(centers.tolist(), radii.tolist(), heatmap_idxes.tolist()):
        draw_one_box(planes[index], x, y, radius, diameter_to_sigma_factor, k_scale)
    return heatmap


def draw_heatmap_batched_per_box(
    heatmap, centers_list, radii_list, diameter_to_sigma_factor=6.0, k_scale=1.0, labels_list=None
):
    """Per-box loop over lists of per-sample tensors, as :func:`gaussdraw.draw_heatmap_batched`."""
    for b, (centers, radii) in enumerate(zip(centers_list, radii_list)):
        for t, ((x, y), radius) in enumerate(zip(centers.tolist(), radii.tolist())):
            plane = heatmap[b] if labels_list is None else heatmap[b, int(labels_list[b][t])]
            draw_one_box(plane, x, y, radius, diameter_to_sigma_factor, k_scale)
    return heatmap


def gaussian_focal_loss_composed(pred, target, alpha=2.0, gamma=4.0, pos_weight=1.0, neg_weight=1.0):
    """The Gaussian focal loss as mmdet composes it: a dozen elementwise torch ops
    (each a pass over the tensor, each kept for autograd), then the mean."""
    eps = 1e-12
    pos_weights = target.eq(1)
    neg_weights = (1 - target).pow(gamma)
    pos_loss = -(pred + eps).log() * (1 - pred).pow(alpha) * pos_weights
    neg_loss = -(1 - pred + eps).log() * pred.pow(alpha) * neg_weights
    return (pos_weight * pos_loss + neg_weight * neg_loss).mean()


def centernet_targets_per_box(bboxes, labels, num_classes, feat_size, img_size, min_overlap=0.3):
    """CenterNet targets one box at a time, as mmdet's ``CenterNetHead.get_targets`` computes
    them: ``(dict(center_heatmap_target=..., wh_target=..., offset_target=...,
    wh_offset_target_weight=...), avg_factor)`` for lists of (n_b, 4) boxes and (n_b,) labels."""
    from ..radius import gaussian_radius

    (feat_h, feat_w), (img_h, img_w) = feat_size, img_size
    width_ratio, height_ratio = float(feat_w / img_w), float(feat_h / img_h)
    like = bboxes[-1]
    samples = len(bboxes)
    heatmap = like.new_zeros((samples, num_classes, feat_h, feat_w))
    wh, offset, weight = (like.new_zeros((samples, 2, feat_h, feat_w)) for _ in range(3))
    for b, (boxes, box_labels) in enumerate(zip(bboxes, labels)):
        for box, label in zip(boxes, box_labels):  # one box at a time, on the boxes' device
            x1, y1, x2, y2 = box
            cx, cy = (x1 + x2) * width_ratio / 2, (y1 + y2) * height_ratio / 2
            cx_int, cy_int = int(cx), int(cy)
            w, h = (x2 - x1) * width_ratio, (y2 - y1) * height_ratio
            radius = max(0, int(gaussian_radius(h, w, min_overlap, formula="mmdet")))
            draw_one_box(heatmap[b, int(label)], cx_int, cy_int, radius)
            wh[b, 0, cy_int, cx_int], wh[b, 1, cy_int, cx_int] = w, h
            offset[b, 0, cy_int, cx_int], offset[b, 1, cy_int, cx_int] = cx - cx_int, cy - cy_int
            weight[b, :, cy_int, cx_int] = 1
    avg_factor = max(1, heatmap.eq(1).sum())
    targets = dict(center_heatmap_target=heatmap, wh_target=wh, offset_target=offset, wh_offset_target_weight=weight)
    return targets, avg_factor


def centerpoint_targets_per_box(boxes, labels, task_sizes, *, point_cloud_range, voxel_size, grid_size,
                                out_size_factor, gaussian_overlap=0.1, min_radius=2, max_objs=500, dense_reg=1,
                                norm_bbox=True):
    """CenterPoint targets one box at a time, as mmdet3d's ``CenterHead.get_targets`` computes
    them: ``(heatmaps, anno_boxes, inds, masks)``, lists over tasks, for lists of (n_b, 9)
    boxes (gravity-center z) and (n_b,) global labels; ``task_sizes``: classes per task."""
    from ..radius import gaussian_radius

    feat_w, feat_h = grid_size[0] // out_size_factor, grid_size[1] // out_size_factor
    slots = max_objs * dense_reg
    per_sample = []
    for sample_boxes, sample_labels in zip(boxes, labels):
        outputs, first = [], 0
        for classes in task_sizes:
            # the task's boxes, class by class, each class's in input order
            order = [i for c in range(classes) for i in (sample_labels == first + c).nonzero()[:, 0].tolist()]
            heatmap = sample_boxes.new_zeros((classes, feat_h, feat_w))
            anno = sample_boxes.new_zeros((slots, 10 if sample_boxes.shape[1] == 9 else 8))
            ind = sample_labels.new_zeros(slots, dtype=torch.int64)
            mask = sample_boxes.new_zeros(slots, dtype=torch.uint8)
            for k, i in enumerate(order[:slots]):
                box = sample_boxes[i]
                length = box[3] / voxel_size[0] / out_size_factor
                width = box[4] / voxel_size[1] / out_size_factor
                if not (width > 0 and length > 0):
                    continue
                radius = max(min_radius, int(gaussian_radius(width, length, gaussian_overlap)))
                coor_x = (box[0] - point_cloud_range[0]) / voxel_size[0] / out_size_factor
                coor_y = (box[1] - point_cloud_range[1]) / voxel_size[1] / out_size_factor
                x, y = int(coor_x), int(coor_y)
                if not (0 <= x < feat_w and 0 <= y < feat_h):
                    continue
                draw_one_box(heatmap[int(sample_labels[i]) - first], x, y, radius)
                dims = box[3:6].log() if norm_bbox else box[3:6]
                anno[k] = torch.cat([torch.stack([coor_x - x, coor_y - y, box[2]]), dims,
                                     torch.stack([box[6].sin(), box[6].cos()]), box[7:9]])
                ind[k] = y * feat_w + x
                mask[k] = 1
            outputs.append((heatmap, anno, ind, mask))
            first += classes
        per_sample.append(outputs)
    return tuple([torch.stack([sample[t][field] for sample in per_sample]) for t in range(len(task_sizes))]
                 for field in range(4))


def heatmap_peaks_composed(heat, k, kernel=3):
    """Peaks as mmdet composes them (``get_local_maximum`` then ``get_topk_from_heatmap``): a
    max-pool, a compare, a multiply and one top-k over C x H x W. Returns (scores, flat
    indices y * W + x, classes, ys, xs as floats), each (B, k)."""
    batch, _, height, width = heat.shape
    window_max = torch.nn.functional.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    scores, flat = torch.topk((heat * (window_max == heat).float()).reshape(batch, -1), k)
    pixel = flat % (height * width)
    return scores, pixel, flat // (height * width), pixel // width, (pixel % width).float()


def centerpoint_topk_composed(scores, k):
    """CenterPoint's two-stage top-k as mmdet3d composes it: the top ``k`` of each class, then
    the top ``k`` of those. Returns (scores, pixel indices, classes, ys, xs as floats), each (B, k)."""
    batch, classes, height, width = scores.shape
    class_scores, class_pixels = torch.topk(scores.reshape(batch, classes, -1), k)
    best, pick = torch.topk(class_scores.reshape(batch, -1), k)
    pixels = torch.gather(class_pixels.reshape(batch, -1), 1, pick)
    return best, pixels, pick // k, (pixels // width).float(), (pixels % width).float()


def circle_nms_per_box(xs, ys, scores, thresh, post_max_size=83):
    """Greedy circle NMS one box at a time, as mmdet3d's loop runs it (NumPy arrays in; compiles
    with numba): by descending score, each box not yet suppressed is kept and suppresses every
    later box whose squared center distance is at most ``thresh``; then the first
    ``post_max_size`` kept indices."""
    order = scores.argsort()[::-1]
    suppressed = np.zeros(order.shape[0], dtype=np.bool_)
    kept = []
    for a in range(order.shape[0]):
        i = order[a]
        if suppressed[i]:
            continue
        kept.append(i)
        for b in range(a + 1, order.shape[0]):
            j = order[b]
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if not suppressed[j] and dx * dx + dy * dy <= thresh:
                suppressed[j] = True
    return kept[:post_max_size]

