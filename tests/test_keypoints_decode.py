"""keypoint_decode against mmpose 1.3.2's own decoding functions, the plain reference, and every
backend against the others.

Tolerances: the maximum, the scores and the "shift" refinement are exact (integer locations and
quarter steps; the map's values returned as they are). DARK and DARK-UDP compute a log of a blur
and a 2 x 2 solve; mmpose does it in float32, the reference in float64, torch and Triton in float32:
they agree within 1e-3 px for steps of at most a pixel, and within 1e-3 px times |step|^2 beyond: a
step longer than a pixel comes from a near-singular Hessian, whose inverse multiplies float32 rounding
by about |step| again. Along an axis under 3 pixels (the three-point derivatives read the border's
padding on both sides, the blur flattens the map) the second derivative is nearly 0 whatever the step:
within 1e-2 px times the same factor there (a 2-wide map: 1.1e-3 px between torch and Triton seen).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gaussdraw
from gaussdraw import keypoint_decode
from gaussdraw.bench.keypoint_decode import mmpose_decode_functions
from gaussdraw.ops._triton import HAVE_TRITON, interpreting
from gaussdraw.ops.keypoint_decode import _blurred_torch, blur_weights, keypoint_decode_op, keypoint_decode_torch
from gaussdraw.reference.keypoint_decode import keypoint_decode_per_keypoint, opencv_gaussian_weights

from .helpers import assert_close, raises_text

MODES = [None, "shift", "dark", "dark_udp"]
DTYPES = [torch.float32, torch.float64, torch.float16]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TRITON_CPU = HAVE_TRITON and interpreting()


def mmpose_functions() -> dict:
    """mmpose 1.3.2's ``get_heatmap_maximum`` and refinements (run from their source, the package's
    ``__init__`` needing mmcv: the bench's loader)."""
    names = mmpose_decode_functions()
    if names is None:
        pytest.skip("mmpose is not installed")
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


def assert_keypoints_close(actual, expected, integer, refine, what="", sides=None):
    """Exact for no refinement and "shift"; DARK: within 1e-3 px times max(1, |step|)^2, 1e-2 px times that
    along an axis whose map ``sides`` (width, height) is under 3 pixels (module docstring)."""
    actual, expected = actual.double(), expected.double()
    if refine in (None, "shift"):
        assert torch.equal(actual, expected), f"{what} {actual.tolist()} != {expected.tolist()}"
        return
    step = (expected - integer.double()).abs().nan_to_num(1e30).clamp(min=1)
    tolerance = torch.tensor([1e-2 if side < 3 else 1e-3 for side in sides or (3, 3)], dtype=torch.float64)
    bad = ~((actual - expected).abs() <= tolerance * step * step) & ~(actual.isnan() & expected.isnan())
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


def comparable(expected, actual, heat, refine):
    """mmpose's keypoints, except along an axis of one pixel under DARK-UDP: there mmpose's Hessian is
    eps-sized and its step the rounding residue of its cross term; ours (exactly 0) is kept."""
    expected = expected.clone()
    if refine == "dark_udp":
        for axis, side in ((0, heat.shape[3]), (1, heat.shape[2])):
            if side == 1:
                expected[..., axis] = actual[..., axis].to(expected.dtype)
    return expected


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
    expected_keypoints = comparable(expected_keypoints, keypoints, heat, refine)
    assert_keypoints_close(keypoints[valid], expected_keypoints[valid].float(), _integer_locations(heat)[valid],
                           refine, "reference vs mmpose:", sides=heat.shape[:-3:-1])


@SETTINGS
@given(heat=pose_heatmaps(), dtype=st.sampled_from(DTYPES), refine=st.sampled_from(MODES),
       ksize=st.sampled_from([3, 11]))
def test_torch_matches_reference(heat, dtype, refine, ksize):
    heat = heat.to(dtype)
    keypoints, scores = keypoint_decode(heat, refine=refine, blur_kernel_size=ksize, backend="torch")
    expected_keypoints, expected_scores = keypoint_decode_per_keypoint(heat, refine, ksize)
    assert scores.dtype == dtype and keypoints.dtype == torch.float32
    assert torch.equal(scores, expected_scores)
    assert_keypoints_close(keypoints, expected_keypoints, _integer_locations(heat), refine, "torch vs reference:",
                           sides=heat.shape[:-3:-1])


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
    assert_keypoints_close(keypoints, expected_keypoints, _integer_locations(heat), refine, "triton vs torch:",
                           sides=heat.shape[:-3:-1])


# ----------------------------------------------------------------------------
# chosen cases: small maps, borders, ties, the rescale, invalid keypoints
# ----------------------------------------------------------------------------


def _backends():
    return ["torch"] + (["triton"] if TRITON_CPU else [])


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("refine", MODES)
@pytest.mark.parametrize("side", [1, 2, 3, 4, 5, 6])
def test_every_peak_position_of_small_maps(side, refine, backend):
    """A blob at every pixel of a side x side map (borders and corners; DARK's bounds bite below 6)."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).double() + 0.3
    squared = (xs[None] - centres[:, 0, None, None]) ** 2 + (ys[None] - centres[:, 1, None, None]) ** 2
    heat = torch.exp(-squared / 4.5).unsqueeze(0)  # (1, side * side, side, side)
    keypoints, scores = keypoint_decode(heat, refine=refine, backend=backend)
    expected_keypoints, expected_scores = mmpose_decode(heat, refine)
    assert torch.equal(scores, expected_scores)
    expected_keypoints = comparable(expected_keypoints, keypoints, heat, refine)
    assert_keypoints_close(keypoints, expected_keypoints, _integer_locations(heat), refine, f"side {side}:")


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_take_the_first_in_row_major_order(backend, dtype):
    """Equal maxima: the first in row-major order (also when they lie in different chunks of the search)."""
    heat = torch.zeros(2, 3, 5, 7, dtype=dtype)
    heat[0, 0, 3, 1] = heat[0, 0, 1, 6] = heat[0, 0, 4, 0] = 0.5  # first: (y 1, x 6)
    heat[0, 1] = 0.25  # a plateau: (0, 0)
    heat[0, 2, 4, 6] = heat[0, 2, 4, 5] = 1.0
    heat[1] = -0.5  # no positive maximum: (-1, -1), score -0.5
    keypoints, scores = keypoint_decode(heat, backend=backend)
    assert keypoints.tolist() == [[[6.0, 1.0], [0.0, 0.0], [5.0, 4.0]], [[-1.0, -1.0]] * 3]
    assert scores.tolist() == [[0.5, 0.25, 1.0], [-0.5] * 3]
    if backend == "triton":
        from gaussdraw.ops.keypoint_decode import DecodeLaunchShape, keypoint_decode_triton

        small_chunks = keypoint_decode_triton(heat, 0, 11, shape=DecodeLaunchShape(block=4, maps=2))
        assert torch.equal(small_chunks[0], keypoints) and torch.equal(small_chunks[1], scores)


@pytest.mark.skipif(not TRITON_CPU, reason="needs TRITON_INTERPRET=1")
@pytest.mark.parametrize("block", [4, 16, 64])
def test_triton_search_in_chunks_equals_torch(block):
    from gaussdraw.ops.keypoint_decode import DecodeLaunchShape, keypoint_decode_triton

    g = torch.Generator().manual_seed(block)
    heat = torch.randint(0, 4, (2, 3, 9, 11), generator=g).float()  # many ties across chunks
    for refine in range(4):
        got = keypoint_decode_triton(heat, refine, 5, shape=DecodeLaunchShape(block=block))
        want = keypoint_decode_torch(heat, refine, 5)
        assert torch.equal(got[1], want[1])
        assert_keypoints_close(got[0], want[0], _integer_locations(heat), [None, "shift", "dark", "dark"][refine])


LAUNCH_SHAPES = [dict(), dict(fused=False), dict(maps=4, block=16, fused=False, step_maps=2, step_warps=1),
                 dict(maps=2, block=64, warps=2), dict(maps=8, fused=False, step_maps=1)]


@pytest.mark.skipif(not TRITON_CPU, reason="needs TRITON_INTERPRET=1")
@pytest.mark.parametrize("shape", LAUNCH_SHAPES, ids=str)
def test_every_launch_shape_equals_torch(shape):
    """Fused or a second launch, several maps a program (a last program with fewer), chunks: the same
    values; blurred whole where clamps bite (a noise map) in a program with other keypoints."""
    from gaussdraw.ops.keypoint_decode import DecodeLaunchShape, keypoint_decode_triton

    g = torch.Generator().manual_seed(5)
    heat = torch.randint(0, 4, (3, 5, 9, 11), generator=g).float()  # ties
    heat[1, 2] = torch.randn(9, 11, generator=g)
    heat[2, 4, 4, 5] = 9.0
    heat[0, 3] = -1.0
    for refine in range(4):
        got = keypoint_decode_triton(heat, refine, 5, shape=DecodeLaunchShape(**shape))
        want = keypoint_decode_torch(heat, refine, 5)
        assert torch.equal(got[1], want[1])
        assert_keypoints_close(got[0], want[0], _integer_locations(heat), [None, "shift", "dark", "dark"][refine])


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("refine", ["dark", "dark_udp"])
def test_rescale_decides_where_clamps_bite(refine, backend):
    """Negative pixels near the peak: blurred values clamp at 1e-10 (UDP: 1e-3), and the clamped log
    depends on the map's blurred maximum; a large map maximum (> 50) clips UDP's top."""
    g = torch.Generator().manual_seed(3)
    heat = torch.randn(2, 4, 12, 13, generator=g)
    heat[:, :, 6, 6] = 3.0
    heat[:, :, 5, 6] = -4.0
    heat[1, 0] *= 40  # maximum 120 for UDP's upper clip
    heat[1, 1, 2:5, 8:11] = 2.0  # the blurred maximum away from the peak
    keypoints, _ = keypoint_decode(heat, refine=refine, backend=backend)
    expected, _ = mmpose_decode(heat, refine)
    assert_keypoints_close(keypoints, expected, _integer_locations(heat), refine, "clamped:")
    assert (keypoints != _integer_locations(heat)).any(), "no refinement: a weak test"


def test_udp_invalid_keypoints_stay():
    """mmpose's refine_keypoints_dark_udp reads the previous keypoint's map around the flat index of
    (-1, -1) and moves the keypoint; gaussdraw leaves it at (-1, -1)."""
    heat = torch.zeros(1, 2, 8, 8)
    heat[0, 0, 7, 7], heat[0, 0, 7, 6], heat[0, 0, 6, 7] = 1.0, 0.9, 0.2  # keypoint 1's garbage neighbours
    expected, _ = mmpose_decode(heat, "dark_udp")
    assert not torch.equal(expected[0, 1], torch.tensor([-1.0, -1.0])), "mmpose changed: revisit the deviation"
    for backend in _backends():
        keypoints, _ = keypoint_decode(heat, refine="dark_udp", backend=backend)
        assert keypoints[0, 1].tolist() == [-1.0, -1.0]


@pytest.mark.parametrize("backend", _backends())
def test_empty_batches(backend):
    for shape in [(0, 17, 4, 4), (2, 0, 4, 4)]:
        keypoints, scores = keypoint_decode(torch.zeros(shape), refine="dark", backend=backend)
        assert keypoints.shape == (*shape[:2], 2) and scores.shape == shape[:2]


def test_heatmaps_are_not_modified():
    heat = torch.rand(2, 3, 8, 9)
    before = heat.clone()
    for refine in MODES:
        keypoint_decode(heat, refine=refine)
    assert torch.equal(heat, before)


# ----------------------------------------------------------------------------
# messages, registration
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("call,error,text", [
    (lambda: keypoint_decode(np.zeros((1, 1, 4, 4))), TypeError, "torch.as_tensor(x) converts a NumPy array"),
    (lambda: keypoint_decode(torch.zeros(1, 1, 4, 4, dtype=torch.int64)), TypeError,
     "heatmaps must be float16, float32 or float64; got torch.int64"),
    (lambda: keypoint_decode(torch.zeros(1, 1, 4, 4, dtype=torch.bfloat16)), TypeError, "heatmaps.float()"),
    (lambda: keypoint_decode(torch.zeros(3, 4, 4)), ValueError, "heatmaps.unsqueeze(0)"),
    (lambda: keypoint_decode(torch.zeros(1, 1, 0, 4)), ValueError, "H >= 1 and W >= 1; got shape (1, 1, 0, 4)"),
    (lambda: keypoint_decode(torch.zeros(1, 1, 4, 4), refine="udp"), ValueError,
     "refine must be one of [None, 'shift', 'dark', 'dark_udp']; got 'udp'"),
    (lambda: keypoint_decode(torch.zeros(1, 1, 4, 4), refine="dark", blur_kernel_size=4), ValueError,
     "blur_kernel_size must be an odd integer >= 3"),
    (lambda: keypoint_decode(torch.zeros(1, 1, 4, 4), blur_kernel_size=1), ValueError, "got 1"),
    (lambda: keypoint_decode(torch.zeros(1, 1, 4, 4), backend="cuda"), ValueError, "backend must be one of"),
    (lambda: keypoint_decode(torch.tensor([[[[0.0, float("nan")]]]])), ValueError,
     "heatmaps must be finite (no NaN or infinity); got nan at position 1"),
])
def test_messages(call, error, text):
    with raises_text(error, text):
        call()


def test_validate_false_skips_the_value_check():
    keypoint_decode(torch.tensor([[[[0.0, float("inf")]]]]), validate=False)


def test_exported():
    assert gaussdraw.keypoint_decode is keypoint_decode and "KeypointPeaks" in gaussdraw.__all__


@pytest.mark.parametrize("use_triton", [False] + ([True] if TRITON_CPU else []))
def test_opcheck(use_triton):
    heat = torch.rand(2, 3, 7, 8)
    torch.library.opcheck(keypoint_decode_op, (heat, 2, 5, use_triton))


def test_docstring_example():
    import doctest

    from gaussdraw.keypoints import decode

    result = doctest.testmod(decode, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("refine", ["dark", "dark_udp"])
def test_weak_maps_clamp_everywhere(refine, backend):
    """A maximum below the clamp (1e-10; UDP: 1e-3): every rescaled value clamps, the step is 0."""
    heat = torch.zeros(1, 3, 9, 10)
    heat[0, :, 4, 5], heat[0, :, 4, 6], heat[0, :, 3, 5] = 1.0, 0.6, 0.3
    heat[0, 0] *= 5e-4 if refine == "dark_udp" else 5e-11
    heat[0, 2] *= -1
    keypoints, _ = keypoint_decode(heat, refine=refine, backend=backend)
    expected, _ = mmpose_decode(heat, refine)
    assert keypoints[0, 0].tolist() == [5.0, 4.0] and keypoints[0, 2].tolist() == [-1.0, -1.0]
    assert torch.equal(keypoints[0, 0], expected[0, 0].float())
    assert_keypoints_close(keypoints[:, :2], expected[:, :2], _integer_locations(heat)[:, :2], refine, "weak:")
    assert keypoints[0, 1, 0] > 5.05, "the strong map is refined toward x + 1"
