"""keypoint_decode against mmpose 1.3.2's own decoding functions, the plain reference, and every
backend against the others.

Tolerances: the maximum, the scores and the "shift" refinement are exact (integer locations and
quarter steps; the map's values returned as they are). DARK and DARK-UDP compute a log of a blur
and a 2 x 2 solve; mmpose does it in float32, the reference in float64, torch and Triton in float32:
they agree within 1e-3 px times max(1, |step|) (a step of a near-singular Hessian is large, and so is
its float32 rounding).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import warnings
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gaussdraw
from gaussdraw import keypoint_decode
from gaussdraw.ops._triton import HAVE_TRITON, interpreting
from gaussdraw.ops.keypoint_decode import _blurred_torch, blur_weights, keypoint_decode_op, keypoint_decode_torch
from gaussdraw.reference.keypoint_decode import keypoint_decode_per_keypoint, opencv_gaussian_weights

from .helpers import assert_close, raises_text

MODES = [None, "shift", "dark", "dark_udp"]
DTYPES = [torch.float32, torch.float64, torch.float16]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TRITON_CPU = HAVE_TRITON and interpreting()


@cache
def mmpose_functions() -> dict:
    """mmpose 1.3.2's ``codecs/utils/post_processing.py`` and ``refinement.py`` executed from their
    source (the package's ``__init__`` needs mmcv): refinement's relative import is dropped and its
    names come from post_processing's namespace."""
    spec = importlib.util.find_spec("mmpose")
    if spec is None:
        pytest.skip("mmpose is not installed")
    folder = os.path.join(spec.submodule_search_locations[0], "codecs", "utils")
    names: dict = {}
    for file in ("post_processing.py", "refinement.py"):
        with open(os.path.join(folder, file)) as source:
            tree = ast.parse(source.read())
        tree.body = [node for node in tree.body if not (isinstance(node, ast.ImportFrom) and node.level)]
        exec(compile(tree, os.path.join(folder, file), "exec"), names)
    return names


def mmpose_decode(heatmaps: torch.Tensor, refine, blur_kernel_size=11):
    """mmpose's MSRAHeatmap / UDPHeatmap decode path, one sample at a time, in heatmap pixels.
    16-bit maps go in as their float32 values (mmpose would round its intermediates to float16)."""
    f = mmpose_functions()
    maps = heatmaps.float().numpy() if heatmaps.dtype == torch.float16 else heatmaps.numpy()
    keypoints, scores = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # mmpose: np.maximum(a, b, out) positionally
        for sample in maps:
            sample = sample.copy()
            locations, values = f["get_heatmap_maximum"](sample)
            locations = locations[None]
            if refine == "shift":
                locations = f["refine_keypoints"](locations, sample)
            elif refine == "dark":
                locations = f["refine_keypoints_dark"](locations, sample, blur_kernel_size=blur_kernel_size)
            elif refine == "dark_udp":
                locations = f["refine_keypoints_dark_udp"](locations, sample, blur_kernel_size=blur_kernel_size)
            keypoints.append(locations[0])
            scores.append(values)
    return torch.from_numpy(np.stack(keypoints)), torch.from_numpy(np.stack(scores))


def assert_keypoints_close(actual, expected, integer, refine, what=""):
    """Exact for no refinement and "shift"; DARK: within 1e-3 px times max(1, |step|) (module docstring)."""
    actual, expected = actual.double(), expected.double()
    if refine in (None, "shift"):
        assert torch.equal(actual, expected), f"{what} {actual.tolist()} != {expected.tolist()}"
        return
    step = (expected - integer.double()).abs().nan_to_num(1e30).clamp(min=1)
    bad = ~((actual - expected).abs() <= 1e-3 * step) & ~(actual.isnan() & expected.isnan())
    assert not bad.any(), (f"{what} {int(bad.sum())} differ, first at {bad.nonzero()[0].tolist()}: "
                           f"{actual[bad][:4].tolist()} vs {expected[bad][:4].tolist()}")


@st.composite
def pose_heatmaps(draw, max_side=9):
    """(B, K, H, W) maps: Gaussian blobs with noise (centres inside, on or outside the border), plain
    noise of either sign, few levels (ties), all-zero and all-negative maps; sides from 1."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, max_side)),
             draw(st.integers(1, max_side)))
    kind = draw(st.sampled_from(["blobs", "noise", "levels", "blobs"]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    batch, joints, height, width = shape
    if kind == "blobs":
        centre = torch.rand(batch, joints, 2, 1, 1, generator=g) * torch.tensor([width + 1.0, height + 1.0]).view(
            1, 1, 2, 1, 1) - 0.5
        sigma = 1 + 2 * torch.rand(batch, joints, 1, 1, generator=g)
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        squared = (xs - centre[:, :, 0]) ** 2 + (ys - centre[:, :, 1]) ** 2
        heat = torch.exp(-squared / (2 * sigma**2)) + 0.01 * torch.randn(shape, generator=g)
    elif kind == "noise":
        heat = torch.randn(shape, generator=g)
    else:
        heat = torch.randint(-1, 3, shape, generator=g).double() / 2
    flat = heat.reshape(batch * joints, -1)
    flat[torch.rand(batch * joints, generator=g) < 0.15] = 0.0  # all zero: (-1, -1)
    flat[torch.rand(batch * joints, generator=g) < 0.1] *= -1  # mostly negative
    return heat.double()


def _integer_locations(heat):
    flat = heat.reshape(*heat.shape[:2], -1).double().argmax(-1)
    return torch.stack([flat % heat.shape[3], flat // heat.shape[3]], -1)


# ----------------------------------------------------------------------------
# the blur
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("ksize", [3, 5, 7, 9, 11, 13, 17, 21])
def test_blur_weights_are_opencvs(ksize):
    import cv2

    expected = torch.from_numpy(cv2.getGaussianKernel(ksize, 0, ktype=cv2.CV_32F).ravel())
    assert torch.equal(blur_weights(ksize, torch.device("cpu")), expected)
    assert torch.equal(torch.tensor(opencv_gaussian_weights(ksize), dtype=torch.float32), expected)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (4, 7), (12, 5)], ids=lambda s: f"H{s[0]}-W{s[1]}")
@pytest.mark.parametrize("ksize", [3, 11, 17])
def test_blur_equals_mmpose_gaussian_blur(shape, ksize):
    """Zero padding by (ksize - 1) / 2, then OpenCV's blur: OpenCV's reflect-101 border never reaches
    the map, so a zero-padded convolution is the same blur (before mmpose's rescale)."""
    g = torch.Generator().manual_seed(ksize)
    maps = torch.rand(3, *shape, generator=g) + 0.5
    expected = mmpose_functions()["gaussian_blur"](maps.numpy().copy(), ksize)
    blurred = _blurred_torch(maps, ksize, torch.float64)
    rescaled = blurred * (maps.amax(dim=(1, 2)) / blurred.amax(dim=(1, 2)))[:, None, None]
    assert_close(rescaled, torch.from_numpy(expected), 2e-6, "blur:")


# ----------------------------------------------------------------------------
# against mmpose and the reference
# ----------------------------------------------------------------------------


@SETTINGS
@given(heat=pose_heatmaps(), dtype=st.sampled_from(DTYPES), refine=st.sampled_from(MODES),
       ksize=st.sampled_from([3, 5, 11]))
def test_reference_matches_mmpose(heat, dtype, refine, ksize):
    heat = heat.to(dtype)
    keypoints, scores = keypoint_decode_per_keypoint(heat, refine, ksize)
    expected_keypoints, expected_scores = mmpose_decode(heat, refine, ksize)
    assert torch.equal(scores.double(), expected_scores.double())
    valid = scores > 0
    assert (keypoints[~valid] == -1).all()
    if refine != "dark_udp":  # mmpose moves UDP's invalid keypoints (test_udp_invalid_keypoints_stay)
        assert torch.equal(expected_keypoints[~valid], keypoints[~valid])
    assert_keypoints_close(keypoints[valid], expected_keypoints[valid].float(), _integer_locations(heat)[valid],
                           refine, "reference vs mmpose:")


@SETTINGS
@given(heat=pose_heatmaps(), dtype=st.sampled_from(DTYPES), refine=st.sampled_from(MODES),
       ksize=st.sampled_from([3, 11]))
def test_torch_matches_reference(heat, dtype, refine, ksize):
    heat = heat.to(dtype)
    keypoints, scores = keypoint_decode(heat, refine=refine, blur_kernel_size=ksize, backend="torch")
    expected_keypoints, expected_scores = keypoint_decode_per_keypoint(heat, refine, ksize)
    assert scores.dtype == dtype and keypoints.dtype == torch.float32
    assert torch.equal(scores, expected_scores)
    assert_keypoints_close(keypoints, expected_keypoints, _integer_locations(heat), refine, "torch vs reference:")


@pytest.mark.skipif(not TRITON_CPU, reason="needs TRITON_INTERPRET=1")
@settings(max_examples=25, deadline=None)
@given(heat=pose_heatmaps(max_side=7), dtype=st.sampled_from(DTYPES), refine=st.sampled_from(MODES),
       ksize=st.sampled_from([3, 11]))
def test_triton_matches_torch(heat, dtype, refine, ksize):
    heat = heat.to(dtype)
    keypoints, scores = keypoint_decode(heat, refine=refine, blur_kernel_size=ksize, backend="triton")
    expected_keypoints, expected_scores = keypoint_decode(heat, refine=refine, blur_kernel_size=ksize,
                                                          backend="torch")
    assert torch.equal(scores, expected_scores)
    assert_keypoints_close(keypoints, expected_keypoints, _integer_locations(heat), refine, "triton vs torch:")
