"""Plain per-box implementations: the obviously-correct baseline for tests and benchmarks.

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
