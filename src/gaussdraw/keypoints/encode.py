"""Keypoint heatmaps for pose models: mmpose 1.3.2's heatmap encoders for a whole batch, in one call."""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch

from ..checks import check_float_tensor, raise_first, resolve_validate
from ..dispatch import check_backend
from ..inputs import Batch, Field, batch_inputs, is_numbers, python_tensor
from ..ops.keypoint_heatmaps import KEYPOINT_HEATMAPS, METHODS
from ..ragged import RaggedLike, is_ragged
from ..targets.common import cached, pair, positive_int
from ..targets.plans import plan_key, planned, run_and_plan, tensors_of
from .plans import keypoint_heatmaps_planned

FIELDS = (Field("keypoints", (None, 2), floating=True), Field("visible", (None,), floating=True))
SIGMA_FIELD = Field("sigma", (), floating=True)
MAX_SIGMA = 1e6  # σ beyond this would overflow the kernels' pixel offsets


class KeypointHeatmaps(NamedTuple):
    """What :func:`keypoint_heatmaps` returns; float32 on the keypoints' device."""

    heatmaps: torch.Tensor
    """(B, K, H, W) Gaussian heatmaps, instances merged by max (mmpose's ``heatmaps`` per sample)."""
    weights: torch.Tensor
    """(B, Nmax, K): ``weights[b, :N_b]`` is mmpose's ``keypoint_weights`` of sample b; 0-padded."""


def keypoint_heatmaps(
    keypoints: RaggedLike,
    visible: RaggedLike,
    heatmap_size: tuple[int, int],
    sigma,
    *,
    method: str = "msra",
    counts: torch.Tensor | None = None,
    backend: str = "auto",
    validate: bool | None = None,
) -> KeypointHeatmaps:
    """Gaussian keypoint heatmaps of a batch: mmpose 1.3.2's ``generate_gaussian_heatmaps`` (MSRA),
    ``generate_udp_gaussian_heatmaps`` (UDP) or ``generate_unbiased_gaussian_heatmaps`` (DARK),
    of each sample, in one call.

    Values are mmpose's, its rounding included: for MSRA and UDP the centre is
    ``(kp + 0.5)`` truncated to an integer (the sum in the keypoints' dtype), the window
    ``[trunc(mu - 3σ), trunc(mu + 3σ + 1))`` (float bounds truncated toward zero, so a
    non-integer 3σ moves the window's centre), UDP moves the peak by the sub-pixel part;
    DARK evaluates the Gaussian at the unrounded keypoint over the whole map. A keypoint
    whose visibility is below 0.5 is skipped (its weight stays its visibility); one whose 3σ
    square misses the map draws nothing and gets weight 0; instances merge by max. The
    Gaussians are float32, as mmpose's (float64 rounded once for UDP and for DARK of float64
    keypoints): they agree with mmpose within two float32 units in the last place (the exp
    of each library).

    On a GPU it is one kernel launch, with no host sync (unless ``validate=True``).

    Args:
        keypoints: per-sample (N_b, K, 2) float keypoints, (x, y) in heatmap pixels
            (float16/32/64: mmpose's rounding is done in their dtype): a list of tensors,
            a ragged batch (``.tensor`` (B, Nmax, K, 2), ``.sample_sizes``), or a padded
            (B, Nmax, K, 2) tensor with ``counts``.
        visible: per-sample (N_b, K) float visibilities (mmpose's ``keypoints_visible``), in
            the same form.
        heatmap_size: (W, H), as mmpose takes it.
        sigma: σ of the Gaussians: a number; per instance (MSRA only, as mmpose allows): per-sample
            (N_b,) floats in the form of ``keypoints``; or per keypoint (an extension): a (K,)
            tensor or list of numbers. Read in float64.
        method: ``"msra"`` (default), ``"udp"`` or ``"dark"``.
        counts: (B,) instances in use per sample, when the inputs are padded tensors.
        backend: ``"auto"`` (Triton on CUDA tensors, torch on CPU), ``"triton"`` (on CPU tensors,
            in Triton's interpreter) or ``"torch"`` (any device).
        validate: check values first and raise ``ValueError`` naming the first bad entry
            (keypoints of visible instances that are not finite, NaN visibilities, σ not in
            (0, 1e6], counts that disagree with the inputs). The default, ``None``, checks on
            the CPU and not on a GPU. Unchecked, non-finite keypoints draw nothing.

    Returns:
        :class:`KeypointHeatmaps` ``(heatmaps (B, K, H, W), weights (B, Nmax, K))``, float32.

    Example:
        >>> kps = [torch.tensor([[[4.0, 3.0], [20.0, 3.0]]]), torch.zeros(0, 2, 2)]
        >>> vis = [torch.tensor([[1.0, 1.0]]), torch.zeros(0, 2)]
        >>> out = keypoint_heatmaps(kps, vis, heatmap_size=(8, 6), sigma=1.0)
        >>> out.heatmaps.shape, out.weights.tolist()
        (torch.Size([2, 2, 6, 8]), [[[1.0, 0.0]], [[0.0, 0.0]]])
        >>> out.heatmaps[0, 0, 3, 4].item(), round(out.heatmaps[0, 0, 3, 5].item(), 4)
        (1.0, 0.6065)
    """
    check_backend(backend)
    width, height = _checked_options(heatmap_size, method)
    scalar = _scalar_sigma(sigma)
    inputs = (keypoints, visible) if scalar is not None else (keypoints, visible, sigma)
    key = plan_key((width, height, method, scalar), backend, validate, inputs, counts)
    plan = planned(key)
    if plan is not None:  # a repeated unchecked call of a planned layout
        tensors, counts = tensors_of(inputs, counts)
        return KeypointHeatmaps(*plan(tensors[0], tensors[1], counts, *tensors[2:]))
    per_instance = scalar is None and _sigma_is_per_instance(sigma)
    if per_instance and method != "msra":
        raise ValueError(f"sigma per instance applies to method='msra' only (mmpose's UDP and DARK encoders take "
                         f"one σ); got method={method!r}: give one number, or one σ per keypoint (K,)")
    values = {"keypoints": keypoints, "visible": visible, "sigma": sigma if per_instance else None}
    batch = batch_inputs(values, FIELDS + ((SIGMA_FIELD,) if per_instance else ()), counts)
    points, flags, counts = batch.used("keypoints"), batch.used("visible"), batch.counts
    if flags.shape[2] != points.shape[2]:
        raise ValueError(f"visible must have one entry per keypoint: (N_b, {points.shape[2]}) as keypoints "
                         f"(N_b, {points.shape[2]}, 2); got (N_b, {flags.shape[2]})")
    if per_instance:
        sigma_tensor = batch.used("sigma")
    else:
        sigma_tensor = None if scalar is not None else _sigma_per_keypoint(sigma, points.shape[2], points.device)
    if resolve_validate(validate, points.device):
        _check_values(batch, points, flags, sigma_tensor, per_instance)
    args = (points, flags, counts, sigma_tensor, 0.0 if scalar is None else scalar, height, width, method)
    return KeypointHeatmaps(*run_and_plan(key, batch, backend, KEYPOINT_HEATMAPS, keypoint_heatmaps_planned, args))


@cached
def _checked_options(heatmap_size, method):
    """(W, H), checked, and the method."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    return pair(heatmap_size, "heatmap_size", positive_int, "(W, H) of ints > 0")


def _sigma_is_per_instance(sigma) -> bool:
    """A batched form (ragged, a 2-D padded tensor, a list of per-sample tensors or lists) is per
    instance; a number, a (K,) tensor or a flat list of numbers is not."""
    if is_ragged(sigma):
        return True
    if isinstance(sigma, torch.Tensor):
        return sigma.dim() == 2
    if isinstance(sigma, (list, tuple)):
        return not is_numbers(sigma) or any(isinstance(s, (list, tuple)) for s in sigma)
    return False


def _scalar_sigma(sigma) -> float | None:
    """σ given as one number, checked, as a float; None for any other form."""
    if type(sigma) is float or (isinstance(sigma, numbers.Real) and not isinstance(sigma, bool)):
        if not (math.isfinite(sigma) and 0 < sigma <= MAX_SIGMA):
            raise ValueError(f"sigma must be finite and in (0, {MAX_SIGMA:g}]; got {sigma}")
        return float(sigma)
    return None


def _sigma_per_keypoint(sigma, num_keypoints: int, device: torch.device) -> torch.Tensor:
    """The (K,) tensor of σ given per keypoint (a tensor or a list of numbers), checked."""
    if is_numbers(sigma):
        sigma = python_tensor(sigma, "sigma", device, floating=True, dtype=torch.float64)
    if not isinstance(sigma, torch.Tensor):
        raise TypeError(f"sigma must be a number, one σ per keypoint (a (K,) tensor or list of numbers) or, for "
                        f"MSRA, one per instance (per-sample (N_b,) tensors); got {type(sigma).__name__}")
    check_float_tensor(sigma, "sigma", (num_keypoints,), device, "keypoints")
    return sigma


def _check_values(batch: Batch, points, flags, sigma_tensor, per_instance: bool) -> None:
    """Raise for bad counts, or for the first keypoint or σ in use that the op cannot encode as
    mmpose does (one host sync on a GPU)."""
    in_use = batch.in_use()
    keypoint_in_use = in_use[:, :, None].expand(flags.shape)
    finite = points.isfinite().all(-1)
    per_sample = flags.shape[1] * flags.shape[2]  # positions: instance * K + keypoint
    checks = batch.count_checks() + [
        (keypoint_in_use & flags.isnan(), flags, "visible must not be NaN", per_sample),
        (keypoint_in_use & ~(flags < 0.5) & ~finite, points,
         "keypoints of visible keypoints must be finite (position = instance * K + keypoint)", per_sample),
    ]
    if sigma_tensor is not None:
        bad = ~((sigma_tensor > 0) & (sigma_tensor <= MAX_SIGMA))
        bad, own = (in_use & bad, flags.shape[1]) if per_instance else (bad, None)
        checks.append((bad, sigma_tensor, f"sigma must be finite and in (0, {MAX_SIGMA:g}]", own))
    raise_first(checks)
