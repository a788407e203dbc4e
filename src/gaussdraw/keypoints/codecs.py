"""Drop-in replacements for mmpose 1.3's ``MSRAHeatmap`` and ``UDPHeatmap`` codecs (Gaussian
heatmaps), on gaussdraw's ops.

Each codec takes mmpose's constructor arguments and answers mmpose's codec interface: ``encode``
and ``decode`` take and give what mmpose's do (NumPy, keypoints in input-image space, one
instance) with mmpose's values; ``batch_decode`` decodes a head's whole (B, K, H, W) output in
one call (mmpose's heads call it when a codec has it). ``encode_batch`` and ``decode_batch`` are
the batched torch forms: a whole batch on any device, one call each.

Example:
    >>> import numpy as np
    >>> codec = MSRAHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2)
    >>> encoded = codec.encode(np.array([[[96.0, 128.0], [40.0, 60.0]]]), np.array([[1.0, 1.0]]))
    >>> encoded["heatmaps"].shape, encoded["keypoint_weights"].tolist()
    ((2, 64, 48), [[1.0, 1.0]])
    >>> keypoints, scores = codec.decode(encoded["heatmaps"])
    >>> keypoints.tolist(), scores.tolist()
    ([[[96.0, 128.0], [40.0, 60.0]]], [[1.0, 1.0]])
"""

from __future__ import annotations

import numpy as np
import torch

from .decode import KeypointPeaks, keypoint_decode
from .encode import KeypointHeatmaps, keypoint_heatmaps


def _size(name: str, value) -> tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{name} must be (width, height), two positive ints; got {value!r}")
    return int(value[0]), int(value[1])


class _GaussianHeatmapCodec:
    """What both codecs share: mmpose's codec attributes and the NumPy/torch plumbing. A subclass sets
    ``method`` (the encoder), ``refine`` (the decoder's refinement) and ``scale_factor``, and
    says how decoded keypoints go back to the input image (``_to_image``, ``_image_factor``)."""

    auxiliary_encode_keys: set = set()
    field_mapping_table = dict(heatmaps="heatmaps")
    instance_mapping_table: dict = {}
    label_mapping_table = dict(keypoint_weights="keypoint_weights")
    method: str
    refine: str
    scale_factor: np.ndarray

    def __init__(self, input_size, heatmap_size, sigma: float, blur_kernel_size: int) -> None:
        self.input_size = _size("input_size", input_size)
        self.heatmap_size = _size("heatmap_size", heatmap_size)
        self.sigma = sigma
        self.blur_kernel_size = blur_kernel_size

    @property
    def support_batch_decoding(self) -> bool:
        return True

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """mmpose's ``encode``: (1, K, D) image-space keypoints, (1, K) visibility (default: all 1) ->
        ``dict(heatmaps=(K, H, W) float32, keypoint_weights=(1, K))``."""
        keypoints = np.asarray(keypoints)
        if keypoints.ndim != 3 or keypoints.shape[0] != 1:
            raise ValueError(f"{type(self).__name__}.encode takes one instance: keypoints of shape (1, K, D); got "
                             f"{keypoints.shape} (encode_batch takes a batch)")
        visible = (np.ones(keypoints.shape[:2], dtype=np.float32) if keypoints_visible is None
                   else np.asarray(keypoints_visible))
        scaled = keypoints / self.scale_factor  # in NumPy, as mmpose divides
        heatmaps, weights = keypoint_heatmaps([torch.from_numpy(np.ascontiguousarray(scaled[..., :2]))],
                                              [torch.from_numpy(np.ascontiguousarray(visible))],
                                              self.heatmap_size, self.sigma, method=self.method)
        return dict(heatmaps=heatmaps[0].numpy(), keypoint_weights=weights[0].numpy())

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mmpose's ``decode``: (K, H, W) heatmaps -> keypoints (1, K, 2) in image space, scores (1, K)."""
        keypoints, scores = self.batch_decode(torch.from_numpy(np.asarray(encoded))[None])
        return keypoints[0], scores[0]

    def batch_decode(self, batch_heatmaps: torch.Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """A head's (B, K, H, W) output decoded in one call and copied to the host once: B keypoints
        (1, K, 2) and B scores (1, K), NumPy, as mmpose's ``batch_decode`` gives them."""
        peaks = keypoint_decode(batch_heatmaps.detach(), refine=self.refine, blur_kernel_size=self.blur_kernel_size)
        keypoints = self._to_image(peaks.keypoints.cpu().numpy())
        scores = peaks.scores.cpu().numpy()
        return [k[None] for k in keypoints], [s[None] for s in scores]

    def encode_batch(self, keypoints, keypoints_visible, *, counts: torch.Tensor | None = None,
                     backend: str = "auto", validate: bool | None = None) -> KeypointHeatmaps:
        """A whole batch in one call: per-sample image-space keypoints (N_b, K, 2) and visibilities
        (N_b, K), as lists or padded tensors + ``counts``, on any device -> :class:`~gaussdraw.KeypointHeatmaps`.
        Float32 keypoints give ``encode``'s values exactly (the division is float32's, as NumPy's)."""
        def scaled(points):
            points = torch.as_tensor(points)
            return points[..., :2] / torch.tensor(self.scale_factor, dtype=points.dtype, device=points.device)

        keypoints = [scaled(k) for k in keypoints] if isinstance(keypoints, (list, tuple)) else scaled(keypoints)
        return keypoint_heatmaps(keypoints, keypoints_visible, self.heatmap_size, self.sigma, method=self.method,
                                 counts=counts, backend=backend, validate=validate)

    def decode_batch(self, heatmaps: torch.Tensor, *, backend: str = "auto") -> KeypointPeaks:
        """(B, K, H, W) heatmaps -> :class:`~gaussdraw.KeypointPeaks`: keypoints (B, K, 2) in input-image
        space (float32, on the heatmaps' device, no host sync), scores (B, K)."""
        peaks = keypoint_decode(heatmaps, refine=self.refine, blur_kernel_size=self.blur_kernel_size, backend=backend)
        factor = torch.tensor(self._image_factor(), dtype=torch.float32).to(heatmaps.device, non_blocking=True)
        return KeypointPeaks(peaks.keypoints * factor, peaks.scores)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma})")


class MSRAHeatmap(_GaussianHeatmapCodec):
    """mmpose 1.3's ``MSRAHeatmap``: Gaussian heatmaps (``generate_gaussian_heatmaps``; with
    ``unbiased=True`` DARK's ``generate_unbiased_gaussian_heatmaps``), decoded by the maximum and the
    quarter-pixel shift (``unbiased=True``: DARK's refinement with a ``blur_kernel_size`` blur).

    Args:
        input_size: the image size (w, h). heatmap_size: (W, H). sigma: the Gaussians' σ in heatmap
            pixels. unbiased, blur_kernel_size: as mmpose's."""

    def __init__(self, input_size, heatmap_size, sigma: float, unbiased: bool = False,
                 blur_kernel_size: int = 11) -> None:
        super().__init__(input_size, heatmap_size, sigma, blur_kernel_size)
        self.unbiased = unbiased
        self.method, self.refine = ("dark", "dark") if unbiased else ("msra", "shift")
        self.scale_factor = (np.array(self.input_size) / self.heatmap_size).astype(np.float32)

    def _to_image(self, keypoints: np.ndarray) -> np.ndarray:
        return keypoints * self.scale_factor

    def _image_factor(self) -> list[float]:
        return self.scale_factor.tolist()


class UDPHeatmap(_GaussianHeatmapCodec):
    """mmpose 1.3's ``UDPHeatmap`` with ``heatmap_type="gaussian"``: UDP's Gaussian heatmaps
    (``generate_udp_gaussian_heatmaps``), decoded by the maximum and DARK-UDP's refinement.

    Args:
        input_size: the image size (w, h). heatmap_size: (W, H). heatmap_type: "gaussian" (the
            "combined" offset maps are not Gaussian heatmaps: use mmpose's codec). sigma,
            radius_factor, blur_kernel_size: as mmpose's."""

    method, refine = "udp", "dark_udp"

    def __init__(self, input_size, heatmap_size, heatmap_type: str = "gaussian", sigma: float = 2.0,
                 radius_factor: float = 0.0546875, blur_kernel_size: int = 11) -> None:
        if heatmap_type != "gaussian":
            raise ValueError(f"gaussdraw's UDPHeatmap takes heatmap_type='gaussian' only; got {heatmap_type!r} "
                             "(use mmpose's own codec for the 'combined' offset maps)")
        super().__init__(input_size, heatmap_size, sigma, blur_kernel_size)
        self.heatmap_type, self.radius_factor = heatmap_type, radius_factor
        self.scale_factor = ((np.array(self.input_size) - 1) / (np.array(self.heatmap_size) - 1)).astype(np.float32)

    def _to_image(self, keypoints: np.ndarray) -> np.ndarray:
        width, height = self.heatmap_size
        return keypoints / [width - 1, height - 1] * self.input_size  # float64, as mmpose's

    def _image_factor(self) -> list[float]:
        width, height = self.heatmap_size
        return [self.input_size[0] / (width - 1), self.input_size[1] / (height - 1)]
