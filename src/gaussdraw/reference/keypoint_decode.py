"""Plain keypoint heatmap decoding, one keypoint at a time: what the kernels of
:mod:`gaussdraw.ops.keypoint_decode` must equal (mmpose 1.3.2's ``get_heatmap_maximum`` and its
``refine_keypoints`` / ``refine_keypoints_dark`` / ``refine_keypoints_dark_udp``).

Float64 throughout, after the one rounding mmpose makes: the map goes through OpenCV's blur as
float32 (mmpose copies it into a float32 buffer), with OpenCV's float32 kernel weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# OpenCV's fixed kernels for GaussianBlur(ksize, sigma=0) (getGaussianKernel's table, OpenCV 5.x)
_OPENCV_TABLE = {
    1: [1.0],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
    9: [4 / 256, 13 / 256, 30 / 256, 51 / 256, 60 / 256, 51 / 256, 30 / 256, 13 / 256, 4 / 256],
}


def opencv_gaussian_weights(ksize: int) -> list[float]:
    """The float32 weights (as Python floats) of OpenCV's ``getGaussianKernel(ksize, 0, CV_32F)``."""
    if ksize in _OPENCV_TABLE:
        return list(_OPENCV_TABLE[ksize])
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    raw = [math.exp(-((i - (ksize - 1) / 2) ** 2) / (2 * sigma * sigma)) for i in range(ksize)]
    total = sum(raw)
    return [float(np.float32(value / total)) for value in raw]


def _blurred(plane: np.ndarray, weights: list[float]) -> np.ndarray:
    """mmpose's ``gaussian_blur`` before its rescale: the map zero-padded by (ksize - 1) / 2, then
    OpenCV's separable blur (its reflect-101 border never reaches the cropped map)."""
    height, width = plane.shape
    radius = len(weights) // 2
    padded = np.zeros((height + 2 * radius, width + 2 * radius))
    padded[radius:radius + height, radius:radius + width] = plane.astype(np.float32)
    kernel = np.outer(weights, weights)
    out = np.empty((height, width))
    for y in range(height):
        for x in range(width):
            out[y, x] = float((padded[y:y + 2 * radius + 1, x:x + 2 * radius + 1] * kernel).sum())
    return out


def _maximum(plane: np.ndarray):
    """(x, y, value) of the first maximum in row-major order."""
    flat = int(np.argmax(plane))
    return flat % plane.shape[1], flat // plane.shape[1], plane.flat[flat]


def _shift(plane: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """refine_keypoints: a quarter pixel toward the larger neighbour (its exact bounds: x > 1, y > 0
    for the x step; y > 1, x > 0 for the y step)."""
    height, width = plane.shape
    dx = float(plane[y, x + 1]) - float(plane[y, x - 1]) if 1 < x < width - 1 and 0 < y < height else 0.0
    dy = float(plane[y + 1, x]) - float(plane[y - 1, x]) if 1 < y < height - 1 and 0 < x < width else 0.0
    return 0.25 * float(np.sign(dx)), 0.25 * float(np.sign(dy))


def _dark(log_map: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """refine_keypoints_dark's Taylor step on the log map (interior peaks only)."""
    height, width = log_map.shape
    if not (1 < x < width - 2 and 1 < y < height - 2):
        return 0.0, 0.0
    at = lambda dy, dx: float(log_map[y + dy, x + dx])  # noqa: E731
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    det = dxx * dyy - dxy * dxy
    if det == 0:
        return 0.0, 0.0
    return -(dyy * dx - dxy * dy) / det, -(dxx * dy - dxy * dx) / det


def _dark_udp(log_map: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """refine_keypoints_dark_udp's step: a 3 x 3 stencil, edge-replicated, Hessian + eps * I."""
    height, width = log_map.shape
    at = lambda dy, dx: float(log_map[min(max(y + dy, 0), height - 1), min(max(x + dx, 0), width - 1)])  # noqa: E731
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * at(0, 0) + at(0, -1)
    dyy = at(1, 0) - 2 * at(0, 0) + at(-1, 0)
    # mmpose's sum, grouped as differences of differences: exactly 0 along an axis of one pixel
    dxy = 0.5 * ((at(1, 1) - at(1, 0)) - (at(0, 1) - at(0, 0)) + (at(-1, -1) - at(0, -1)) - (at(-1, 0) - at(0, 0)))
    eps = float(np.finfo(np.float32).eps)
    a, d = dxx + eps, dyy + eps
    det = a * d - dxy * dxy
    return -(d * dx - dxy * dy) / det, -(a * dy - dxy * dx) / det


def _log_map(plane: np.ndarray, weights: list[float], low: float, high: float | None) -> np.ndarray:
    """log of the blurred map rescaled to the map's maximum, clipped to [low, high] (NaN stays NaN)."""
    blurred = _blurred(plane, weights)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = blurred * (float(plane.max()) / blurred.max())
        clipped = np.maximum(scaled, low) if high is None else np.clip(scaled, low, high)
        return np.log(clipped)


def keypoint_decode_per_keypoint(heatmaps: torch.Tensor, refine: str | None = None, blur_kernel_size: int = 11):
    """(keypoints (B, K, 2) float32, scores (B, K) in the heatmaps' dtype) of (B, K, H, W)
    ``heatmaps``, one keypoint at a time. Keypoints whose maximum is <= 0 are (-1, -1), unrefined."""
    batch, joints, height, width = heatmaps.shape
    maps = heatmaps.detach().cpu().double().numpy()
    keypoints = np.full((batch, joints, 2), -1.0)
    scores = np.zeros((batch, joints))
    weights = opencv_gaussian_weights(blur_kernel_size)
    for b in range(batch):
        for k in range(joints):
            plane = maps[b, k]
            x, y, value = _maximum(plane)
            scores[b, k] = value
            if not value > 0:
                continue
            offset = (0.0, 0.0)
            if refine == "shift":
                offset = _shift(plane, x, y)
            elif refine == "dark":
                offset = _dark(_log_map(plane, weights, 1e-10, None), x, y)
            elif refine == "dark_udp":
                offset = _dark_udp(_log_map(plane, weights, 1e-3, 50.0), x, y)
            keypoints[b, k] = (x + offset[0], y + offset[1])
    return (torch.from_numpy(keypoints).float().to(heatmaps.device),
            torch.from_numpy(scores).to(heatmaps.dtype).to(heatmaps.device))
