"""The keypoint heatmap op: mmpose 1.3.2's heatmap encoding (MSRA, UDP, DARK) of a whole batch.

``gaussdraw::keypoint_heatmaps(keypoints (B, N, K, 2), visible (B, N, K), counts (B,),
sigma_tensor, sigma, height, width, method)`` -> (heatmaps (B, K, H, W) float32, weights
(B, N, K) float32). Instance n of sample b is in use when ``n < counts[b]``. σ is ``sigma``
(``sigma_tensor`` None), per instance (``sigma_tensor`` (B, N)) or per keypoint (``sigma_tensor``
(K,)), read in float64. For each keypoint in use whose visibility is not below 0.5:

- ``"msra"``, ``"udp"``: centre mu = (kp + 0.5) truncated (the sum in the keypoints' dtype);
  window [trunc(mu - 3σ), trunc(mu + 3σ + 1)) per axis, float bounds truncated toward zero; the
  Gaussian's centre sits at the window start + floor((6σ + 1) / 2) (mu for integer 3σ), moved by
  kp - mu for UDP; values in float32;
- ``"dark"``: the unrounded centre, the Gaussian over the whole map, in float32;
- a keypoint whose 3σ square misses the map (start >= size or end < 0 on an axis) draws nothing
  and its weight is 0; other weights are the visibilities; instances merge by max.

Implementations: a Triton kernel (:mod:`.kernels.keypoint_heatmaps`: one launch, each output
pixel written once, launch shape :data:`LAUNCH_SHAPES`), and a vectorized torch one
(:mod:`.keypoint_heatmaps_torch`: outer products of per-axis factors where a sample has one
instance). Non-finite keypoints (refused by the public function's value check) draw nothing.
"""

from __future__ import annotations

import functools
import struct

import torch

from ..dispatch import Implementations
from ._triton import cdiv, check_device, next_power_of_2
from .keypoint_heatmaps_torch import METHODS, keypoint_heatmaps_torch


# ----------------------------------------------------------------------------
# Triton implementation (the kernel: kernels/keypoint_heatmaps.py)
# ----------------------------------------------------------------------------


LAUNCH_SHAPES = {"msra": (2048, 4), "udp": (2048, 4), "dark": (4096, 4)}
"""(pixels a program, warps): the kernel's default launch shape for each method (the H200 sweep's
best, benchmarks/NOTES.md; ``bench --keypoints`` times others:
:func:`gaussdraw.bench.keypoints.keypoint_variants`)."""


def launch_shape(height: int, width: int, method: str, shape: tuple[int, int] | None = None) -> tuple[int, int]:
    """(BLOCK, num_warps): ``shape`` (default: the method's :data:`LAUNCH_SHAPES`), BLOCK no larger than
    the plane rounded up to a power of 2."""
    block, warps = shape or LAUNCH_SHAPES[method]
    return min(block, next_power_of_2(height * width)), warps


def _float64_bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", value))[0]


RELAUNCHED = ("heat_ptr", "weights_ptr", "keypoints_ptr", "visible_ptr", "counts_ptr", "sigma_ptr")
"""The kernel's leading parameters, which a :class:`~gaussdraw.ops.launch.Relaunch` of it takes anew."""


def keypoint_heatmaps_triton(keypoints, visible, counts, sigma_tensor, sigma, height, width, method,
                             shape: tuple[int, int] | None = None):
    """One launch: one program per (sample, keypoint, BLOCK pixels of its plane) (module docstring);
    ``shape``: (BLOCK, num_warps) other than the method's :data:`LAUNCH_SHAPES` (benchmarks)."""
    heat, weights, _ = _launch(keypoints, visible, counts, sigma_tensor, sigma, height, width, method, shape, False)
    return heat, weights


def keypoint_heatmaps_bound(keypoints, visible, counts, sigma_tensor, sigma, height, width, method):
    """(heatmaps, weights, relaunch): the Triton implementation, and a :class:`~gaussdraw.ops.launch.Relaunch`
    of its launch for new values of :data:`RELAUNCHED` (``sigma_ptr``: the σ tensor, or ``counts``
    where σ is a number) of the same layout; None where the launch was not direct."""
    return _launch(keypoints, visible, counts, sigma_tensor, sigma, height, width, method, None, True)


_NO_FUSION = {"enable_fp_fusion": False}


@functools.cache
def _kernel_and_launch():
    """(the kernel, :func:`gaussdraw.ops.launch.launch`), imported on the first Triton call (both import Triton)."""
    from .kernels.keypoint_heatmaps import keypoint_heatmaps_kernel
    from .launch import launch

    return keypoint_heatmaps_kernel, launch


def _launch(keypoints, visible, counts, sigma_tensor, sigma, height, width, method, shape, bind: bool):
    check_device(keypoints.device)
    kernel, launch = _kernel_and_launch()
    num_samples, num_instances, num_keypoints = visible.shape
    heat = torch.empty((num_samples, num_keypoints, height, width), dtype=torch.float32, device=keypoints.device)
    weights = torch.empty((num_samples, num_instances, num_keypoints), dtype=torch.float32, device=keypoints.device)
    if heat.numel() == 0:
        return heat.zero_(), weights.zero_(), None
    block, num_warps = launch_shape(height, width, method, shape)
    if sigma_tensor is None:
        sigma_mode, sigma_strides, sigma_tensor = 0, (0, 0, 0), counts
    elif sigma_tensor.dim() == 2:
        sigma_mode, sigma_strides = 1, (*sigma_tensor.stride(), 0)
    else:
        sigma_mode, sigma_strides = 2, (0, 0, sigma_tensor.stride(0))
    stride_kb, stride_kn, stride_kk, stride_kc = keypoints.stride()
    stride_vb, stride_vn, stride_vk = visible.stride()
    relaunch = launch(
        kernel, (num_samples * num_keypoints, cdiv(height * width, block)), num_warps=num_warps,
        compile_options=_NO_FUSION, relaunch=RELAUNCHED if bind and shape is None else (),
        heat_ptr=heat, weights_ptr=weights, keypoints_ptr=keypoints, visible_ptr=visible, counts_ptr=counts,
        sigma_ptr=sigma_tensor, sigma_bits=_float64_bits(float(sigma)),
        num_keypoints=num_keypoints, num_instances=num_instances,
        stride_kb=stride_kb, stride_kn=stride_kn, stride_kk=stride_kk, stride_kc=stride_kc,
        stride_vb=stride_vb, stride_vn=stride_vn, stride_vk=stride_vk, stride_cb=counts.stride(0),
        stride_sb=sigma_strides[0], stride_sn=sigma_strides[1], stride_sk=sigma_strides[2],
        HEIGHT=height, WIDTH=width, METHOD=METHODS.index(method), SIGMA_MODE=sigma_mode, BLOCK=block,
    )
    return heat, weights, relaunch


# ----------------------------------------------------------------------------
# torch.library registration
# ----------------------------------------------------------------------------


@torch.library.custom_op("gaussdraw::keypoint_heatmaps", mutates_args=())
def keypoint_heatmaps_op(
    keypoints: torch.Tensor,
    visible: torch.Tensor,
    counts: torch.Tensor,
    sigma_tensor: torch.Tensor | None,
    sigma: float,
    height: int,
    width: int,
    method: str,
    use_triton: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The op as torch.compile and the dispatcher see it: the Triton kernel or the torch
    implementation, as ``use_triton`` says (:mod:`gaussdraw.dispatch`)."""
    heat, weights = KEYPOINT_HEATMAPS.pick(use_triton)(keypoints, visible, counts, sigma_tensor, sigma, height,
                                                        width, method)
    return heat, weights


@keypoint_heatmaps_op.register_fake
def _keypoint_heatmaps_fake(keypoints, visible, counts, sigma_tensor, sigma, height, width, method, use_triton):
    num_samples, num_instances, num_keypoints = visible.shape
    heat = keypoints.new_empty((num_samples, num_keypoints, height, width), dtype=torch.float32)
    return heat, keypoints.new_empty((num_samples, num_instances, num_keypoints), dtype=torch.float32)


KEYPOINT_HEATMAPS = Implementations(triton=keypoint_heatmaps_triton, torch=keypoint_heatmaps_torch,
                                    registered=keypoint_heatmaps_op)
