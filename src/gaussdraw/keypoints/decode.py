"""Decoding of pose heatmaps: mmpose 1.3.2's ``get_heatmap_maximum`` and its refinements
(MSRAHeatmap's plain and ``unbiased`` decode, UDPHeatmap's ``gaussian`` decode), batched."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..checks import raise_first, resolve_validate
from ..dispatch import check_backend, route, run
from ..ops.keypoint_decode import KEYPOINT_DECODE, REFINE_MODES

HEATMAP_DTYPES = (torch.float16, torch.float32, torch.float64)


class KeypointPeaks(NamedTuple):
    """Decoded keypoints: ``keypoints`` (B, K, 2) float32 (x, y) in heatmap pixels, (-1, -1) where
    the map's maximum is <= 0; ``scores`` (B, K), the maximum of each map, in the heatmaps' dtype."""

    keypoints: torch.Tensor
    scores: torch.Tensor


def _check_arguments(heatmaps, refine, blur_kernel_size) -> None:
    if not isinstance(heatmaps, torch.Tensor):
        hint = " (torch.as_tensor(x) converts a NumPy array)" if type(heatmaps).__module__ == "numpy" else ""
        raise TypeError(f"heatmaps must be a torch.Tensor; got {type(heatmaps).__name__}{hint}")
    if heatmaps.dtype not in HEATMAP_DTYPES:
        raise TypeError(f"heatmaps must be float16, float32 or float64; got {heatmaps.dtype}"
                        + (" (convert with heatmaps.float())" if heatmaps.dtype == torch.bfloat16 else ""))
    if heatmaps.dim() != 4:
        hint = ": add the batch dimension with heatmaps.unsqueeze(0)" if heatmaps.dim() == 3 else ""
        raise ValueError(f"heatmaps must be (B, K, H, W); got shape {tuple(heatmaps.shape)}{hint}")
    if heatmaps.shape[2] < 1 or heatmaps.shape[3] < 1:
        raise ValueError(f"heatmaps must have H >= 1 and W >= 1; got shape {tuple(heatmaps.shape)}")
    if refine not in REFINE_MODES:
        raise ValueError(f"refine must be one of {list(REFINE_MODES)}; got {refine!r}")
    if type(blur_kernel_size) is not int or blur_kernel_size < 3 or blur_kernel_size % 2 == 0:
        raise ValueError(f"blur_kernel_size must be an odd integer >= 3 (mmpose's gaussian_blur pads by "
                         f"(size - 1) / 2 > 0); got {blur_kernel_size!r}")


def _finite_screen(heatmaps: torch.Tensor) -> bool:
    """Whether the smallest and largest values are finite (NaN propagates through both): NumPy's on
    the CPU (several times faster than torch's there), else one sync."""
    if heatmaps.device.type == "cpu":
        values = heatmaps.detach().numpy()
        return bool(np.isfinite(values.min()) and np.isfinite(values.max()))
    return bool(torch.isfinite(torch.stack([heatmaps.amin(), heatmaps.amax()])).all())


def keypoint_decode(heatmaps: torch.Tensor, *, refine: str | None = None, blur_kernel_size: int = 11,
                    backend: str = "auto", validate: bool | None = None) -> KeypointPeaks:
    """Keypoints and scores of (B, K, H, W) pose heatmaps, as mmpose 1.3.2 decodes them.

    The location is the first maximum of each map in row-major order and the score its value
    (``get_heatmap_maximum``); where the maximum is <= 0 the keypoint is (-1, -1) and is not
    refined. ``refine`` then moves the location, in heatmap pixels (no scaling to the input):

    - ``None``: the integer location;
    - ``"shift"``: ``refine_keypoints`` (MSRAHeatmap, ``unbiased=False``): a quarter pixel toward
      the larger neighbour, per axis (mmpose's bounds: x in [2, W - 2] with y >= 1 for x; y in
      [2, H - 2] with x >= 1 for y);
    - ``"dark"``: ``refine_keypoints_dark`` (MSRAHeatmap, ``unbiased=True``): the map blurred as
      mmpose does (zero-padded, OpenCV's ``GaussianBlur(blur_kernel_size, sigma=0)`` kernel),
      rescaled to its maximum, clamped at 1e-10, log; a Newton step where 1 < x < W - 2 and
      1 < y < H - 2 and the Hessian is not singular;
    - ``"dark_udp"``: ``refine_keypoints_dark_udp`` (UDPHeatmap, ``heatmap_type="gaussian"``): the
      same blur, clipped to [1e-3, 50], log, a 3 x 3 edge-replicated Newton step.

    Where mmpose's ``refine_keypoints_dark_udp`` meets a keypoint with maximum <= 0 it reads the
    previous keypoint's map (a stencil around the index of (-1, -1)) and moves it; here it stays
    (-1, -1). A singular UDP Hessian (mmpose: ``LinAlgError``) gives non-finite offsets.

    Args:
        heatmaps: (B, K, H, W) float16/float32/float64, finite. Not modified.
        refine: None, "shift", "dark" or "dark_udp".
        blur_kernel_size: odd kernel side >= 3 of the DARK blur (mmpose: 11 for sigma 2, 17 for sigma 3).
        backend: "auto" (Triton on CUDA, torch on CPU), "triton" or "torch".
        validate: check that the heatmaps are finite (None: on the CPU only; see
            :func:`gaussdraw.set_default_validate`).

    Returns:
        :class:`KeypointPeaks`: keypoints (B, K, 2) float32, scores (B, K) in the heatmaps' dtype.

    Example:
        >>> heat = torch.zeros(1, 2, 6, 7)
        >>> heat[0, 0, 3, 4], heat[0, 0, 3, 5] = 1.0, 0.5
        >>> peaks = keypoint_decode(heat, refine="shift")
        >>> peaks.keypoints.tolist(), peaks.scores.tolist()
        ([[[4.25, 3.0], [-1.0, -1.0]]], [[1.0, 0.0]])
    """
    check_backend(backend)
    _check_arguments(heatmaps, refine, blur_kernel_size)
    if resolve_validate(validate, heatmaps.device) and heatmaps.numel():
        if not _finite_screen(heatmaps):
            raise_first([(~torch.isfinite(heatmaps), heatmaps, "heatmaps must be finite (no NaN or infinity)")])
    keypoints, scores = run(KEYPOINT_DECODE, route(backend, heatmaps.device), heatmaps, REFINE_MODES[refine],
                            blur_kernel_size)
    return KeypointPeaks(keypoints, scores)
