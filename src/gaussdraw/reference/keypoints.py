"""Plain per-keypoint implementation of the pose side: the obviously-correct baseline for tests and
benchmarks.

:func:`keypoint_heatmaps_per_keypoint` follows mmpose 1.3.2's heatmap encoders
(``generate_gaussian_heatmaps``, ``generate_udp_gaussian_heatmaps``,
``generate_unbiased_gaussian_heatmaps``) one keypoint at a time, in Python and NumPy, with
the arithmetic in the dtypes mmpose computes in: centres and bounds in the keypoints' dtype
and float64, Gaussian values in float32 (MSRA; DARK for 16/32-bit keypoints) or float64
rounded to float32 (UDP; DARK for float64 keypoints). One keypoint at a time: this is the
cost gaussdraw removes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

METHODS = ("msra", "udp", "dark")


def _as_numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _sigma_of(sigma, b: int, n: int, k: int) -> float:
    """σ of keypoint k of instance n of sample b: a number, per instance (a list of per-sample
    (N_b,) arrays), or per keypoint (a (K,) array)."""
    if isinstance(sigma, (int, float)):
        return sigma
    if isinstance(sigma, (list, tuple)):
        return float(_as_numpy(sigma[b])[n])
    return float(_as_numpy(sigma)[k])


def _window_centre(point: np.ndarray, radius: float):
    """MSRA/UDP: the rounded centre ``mu``, the window's [left, right) x [top, bottom) (float bounds
    truncated toward zero, as NumPy's astype(int64)), and the Gaussian array's centre index."""
    mu = (point + point.dtype.type(0.5)).astype(np.int64)
    left, top = (int(v) for v in (mu.astype(np.float64) - radius))
    right, bottom = (int(v) for v in (mu.astype(np.float64) + radius + 1))
    centre_index = math.floor((2 * radius + 1) / 2)
    return mu, (left, top, right, bottom), centre_index


def _msra_or_udp(heatmap, point, sigma, udp):
    """Draw one keypoint into ``heatmap`` (H, W) float32; False where its window misses the map."""
    height, width = heatmap.shape
    radius = sigma * 3
    mu, (left, top, right, bottom), centre_index = _window_centre(point, radius)
    if left >= width or top >= height or right < 0 or bottom < 0:
        return False
    x1, x2, y1, y2 = max(0, left), min(width, right), max(0, top), min(height, bottom)
    gx = np.arange(x1 - left, x2 - left, dtype=np.float32)  # indices in mmpose's Gaussian array
    gy = np.arange(y1 - top, y2 - top, dtype=np.float32)[:, None]
    if udp:  # the sub-pixel part of the keypoint moves the centre: float64 values, rounded once
        x0 = np.float64(centre_index) + (np.float64(point[0]) - np.float64(mu[0]))
        y0 = np.float64(centre_index) + (np.float64(point[1]) - np.float64(mu[1]))
        squared = (gx.astype(np.float64) - x0) ** 2 + (gy.astype(np.float64) - y0) ** 2
        values = np.exp(-squared / (2 * sigma**2)).astype(np.float32)
    else:  # integer offsets, float32 values
        squared = (gx - np.float32(centre_index)) ** 2 + (gy - np.float32(centre_index)) ** 2
        values = np.exp(-squared / np.float32(2 * sigma**2))
    region = heatmap[y1:y2, x1:x2]
    region[...] = np.maximum(region, values)
    return True


def _dark(heatmap, point, sigma):
    """DARK: the unrounded centre; the Gaussian over the whole map, in float32 (float64 for float64
    keypoints); False where the 3σ square misses the map."""
    height, width = heatmap.shape
    kind = point.dtype.type
    radius = kind(sigma * 3)
    left, top = (kind(v - radius) for v in point)
    right, bottom = (kind(kind(v + radius) + kind(1)) for v in point)
    if left >= width or top >= height or right < 0 or bottom < 0:
        return False
    compute = np.float64 if point.dtype == np.float64 else np.float32
    x = np.arange(width, dtype=compute) - compute(point[0])
    y = np.arange(height, dtype=compute)[:, None] - compute(point[1])
    values = np.exp(-(x * x + y * y) / compute(2 * sigma**2)).astype(np.float32)
    heatmap[...] = np.maximum(heatmap, values)
    return True


def keypoint_heatmaps_per_keypoint(keypoints, visible, heatmap_size, sigma, method: str = "msra"):
    """mmpose's encoding of each sample, one keypoint at a time.

    Args:
        keypoints: per-sample (N_b, K, 2) float arrays or tensors, (x, y) in heatmap pixels; the
            arithmetic of the centres is in their dtype, as mmpose's.
        visible: per-sample (N_b, K) visibilities; a keypoint below 0.5 is skipped.
        heatmap_size: (W, H).
        sigma: a number; per instance, a list of per-sample (N_b,) arrays (MSRA); or per keypoint,
            a (K,) array.
        method: ``"msra"``, ``"udp"`` or ``"dark"``.

    Returns:
        (heatmaps (B, K, H, W) float32, weights (B, Nmax, K) float32: each sample's visibilities,
        0 where the keypoint's window misses the map, 0-padded), CPU tensors.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    width, height = heatmap_size
    points = [_as_numpy(p) for p in keypoints]
    flags = [_as_numpy(v) for v in visible]
    num_keypoints = points[0].shape[1] if points else 0
    num_max = max((p.shape[0] for p in points), default=0)
    heatmaps = np.zeros((len(points), num_keypoints, height, width), np.float32)
    weights = np.zeros((len(points), num_max, num_keypoints), np.float32)
    for b, (sample, sample_flags) in enumerate(zip(points, flags)):
        for n in range(sample.shape[0]):
            for k in range(num_keypoints):
                weights[b, n, k] = sample_flags[n, k]
                if sample_flags[n, k] < 0.5:
                    continue
                s = _sigma_of(sigma, b, n, k)
                if method == "dark":
                    inside = _dark(heatmaps[b, k], sample[n, k], s)
                else:
                    inside = _msra_or_udp(heatmaps[b, k], sample[n, k], s, udp=method == "udp")
                if not inside:
                    weights[b, n, k] = 0
    return torch.from_numpy(heatmaps), torch.from_numpy(weights)
