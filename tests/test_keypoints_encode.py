"""Keypoint heatmap encoding: mmpose 1.3.2's encoders (the oracle) = the reference = torch = Triton.

Tolerances (values lie in [0, 1]):

- the reference equals mmpose bit for bit (heatmaps and weights): it computes in mmpose's dtypes;
- weights, and for MSRA/UDP which pixels are drawn, are exact on every backend;
- Gaussian values agree within ``VALUE_TOLERANCE`` = 3e-7 (2.5 float32 ulps at 1.0). MSRA, and DARK
  of 16/32-bit keypoints, evaluate exp of the same float32 argument as mmpose; only the exp
  differs (NumPy's, torch's and Triton's are each within an ulp or two). UDP, and DARK of
  float64 keypoints, are float64 in mmpose rounded once to float32; gaussdraw computes the
  argument in float32 (a few ulps of an argument <= ~10 at values <= 1, i.e. < 1e-7 absolute);
- on CUDA, Triton against torch: ``CUDA_TOLERANCE`` = 6e-7 (5 ulps at 1.0), as the GPU's exp is
  ex2.approx.f32 of x * log2(e) and its division div.full.f32 (2 ulps).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gaussdraw
from gaussdraw import Ragged, keypoint_heatmaps
from gaussdraw.reference import keypoint_heatmaps_per_keypoint

from .conftest import DEVICE_BACKENDS
from .helpers import assert_close, raises_text
from .oracles import mmpose_keypoint_encoder

VALUE_TOLERANCE = 3e-7
CUDA_TOLERANCE = 6e-7  # on a GPU Triton's exp is ex2.approx.f32 (relative error <= 2^-22) of a rounded product
METHODS = ("msra", "udp", "dark")
DTYPES = (torch.float32, torch.float64, torch.float16)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BACKENDS = [backend for device, backend in DEVICE_BACKENDS if device == "cpu"]


# ----------------------------------------------------------------------------
# random batches
# ----------------------------------------------------------------------------


@st.composite
def coordinates(draw, size: int):
    """A coordinate in or near a map of ``size`` pixels: anywhere in [-8, size + 8], on a half-pixel
    (the rounding's ties) or one float32 step beside one."""
    kind = draw(st.sampled_from(["uniform", "half", "beside_half"]))
    if kind == "uniform":
        return draw(st.floats(-8, size + 8, width=32))
    half = draw(st.integers(-6, size + 6)) + 0.5
    if kind == "half":
        return half
    return float(np.nextafter(np.float32(half), np.float32(draw(st.sampled_from([-np.inf, np.inf])))))


@st.composite
def batches(draw, method=None):
    """(keypoints, visible: lists of per-sample tensors, (W, H), sigma, method)."""
    method = method or draw(st.sampled_from(METHODS))
    width, height = draw(st.sampled_from([(1, 1), (2, 3), (3, 2), (7, 5), (9, 12)]))
    num_keypoints = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(DTYPES))
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    keypoints, visible = [], []
    for n in sizes:
        xs = draw(st.lists(coordinates(width), min_size=n * num_keypoints, max_size=n * num_keypoints))
        ys = draw(st.lists(coordinates(height), min_size=n * num_keypoints, max_size=n * num_keypoints))
        keypoints.append(torch.tensor(list(zip(xs, ys)), dtype=torch.float64).reshape(n, num_keypoints, 2).to(dtype))
        flags = draw(st.lists(st.sampled_from([0.0, 0.3, 0.5, 1.0, 2.0]), min_size=n * num_keypoints,
                              max_size=n * num_keypoints))
        visible.append(torch.tensor(flags, dtype=torch.float32).reshape(n, num_keypoints))
    sigma_values = st.sampled_from([0.5, 1.0, 1.3, 2.0, 2.5, 0.7, 1 / 3])
    kind = draw(st.sampled_from(["float", "int", "per_keypoint"] + (["per_instance"] if method == "msra" else [])))
    if kind == "float":
        sigma = draw(sigma_values)
    elif kind == "int":
        sigma = draw(st.integers(1, 2))
    elif kind == "per_keypoint":
        sigma = torch.tensor(draw(st.lists(sigma_values, min_size=num_keypoints, max_size=num_keypoints)))
    else:
        sigma = [torch.tensor(draw(st.lists(sigma_values, min_size=n, max_size=n)), dtype=torch.float64)
                 for n in sizes]
    return keypoints, visible, (width, height), sigma, method


def oracle(keypoints, visible, heatmap_size, sigma, method):
    """mmpose's encoder on each sample (σ per keypoint: one call per keypoint), stacked and padded
    as gaussdraw returns them."""
    encode = mmpose_keypoint_encoder(method)
    width, height = heatmap_size
    num_keypoints = visible[0].shape[1]
    num_max = max(v.shape[0] for v in visible)
    heatmaps = np.zeros((len(keypoints), num_keypoints, height, width), np.float32)
    weights = np.zeros((len(keypoints), num_max, num_keypoints), np.float32)
    for b, (points, flags) in enumerate(zip(keypoints, visible)):
        points, flags, n = points.numpy(), flags.numpy(), points.shape[0]
        if isinstance(sigma, torch.Tensor):  # per keypoint
            for k in range(num_keypoints):
                heat, weight = encode(heatmap_size, points[:, k:k + 1], flags[:, k:k + 1], float(sigma[k]))
                heatmaps[b, k], weights[b, :n, k] = heat[0], weight[:, 0]
            continue
        per_sample = tuple(sigma[b].tolist()) if isinstance(sigma, list) else sigma
        heatmaps[b], weights[b, :n] = encode(heatmap_size, points, flags, per_sample)
    return torch.from_numpy(heatmaps), torch.from_numpy(weights)


def assert_matches(actual, expected, what: str, method: str, tolerance: float = VALUE_TOLERANCE):
    """Weights exact; values within ``tolerance``; for MSRA/UDP the drawn pixels exact."""
    (heat, weights), (expected_heat, expected_weights) = actual, expected
    assert heat.dtype == torch.float32 and weights.dtype == torch.float32
    assert torch.equal(weights.cpu(), expected_weights.cpu()), f"{what} weights:\n{weights}\n!=\n{expected_weights}"
    assert_close(heat, expected_heat, tolerance, f"{what} heatmaps:")
    if method != "dark":
        assert torch.equal(heat.cpu() > 0, expected_heat.cpu() > 0), f"{what}: drawn pixels differ"


# ----------------------------------------------------------------------------
# oracle = reference = torch = Triton
# ----------------------------------------------------------------------------


@SETTINGS
@given(batch=batches())
def test_reference_is_mmpose_bit_for_bit(batch):
    keypoints, visible, size, sigma, method = batch
    expected = oracle(*batch)
    heat, weights = keypoint_heatmaps_per_keypoint(keypoints, visible, size, sigma, method)
    assert torch.equal(weights, expected[1]) and torch.equal(heat, expected[0]), f"{method}: reference != mmpose"


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(batch=batches())
def test_backend_matches_mmpose_and_reference(backend, batch):
    keypoints, visible, size, sigma, method = batch
    actual = keypoint_heatmaps(keypoints, visible, size, sigma, method=method, backend=backend)
    assert_matches(actual, oracle(*batch), f"{backend} vs mmpose ({method})", method)
    reference = keypoint_heatmaps_per_keypoint(keypoints, visible, size, sigma, method)
    assert_matches(actual, reference, f"{backend} vs reference ({method})", method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rounding_ties_in_the_keypoints_dtype(method, dtype):
    """(kp + 0.5) is rounded in the keypoints' dtype before truncation: the largest value below 0.5
    rounds up to 1 in float16/float32 (not in float64)."""
    below_half = float(np.nextafter(np.array(0.5, dtype=str(dtype).split(".")[1]), 0))
    points = torch.tensor([[[below_half, 2.5], [3.5 - 2**-9, below_half + 2]]], dtype=dtype)
    flags = torch.ones(1, 2)
    expected = oracle([points], [flags], (6, 5), 0.5, method)
    for backend in BACKENDS:
        actual = keypoint_heatmaps([points], [flags], (6, 5), 0.5, method=method, backend=backend)
        assert_matches(actual, expected, f"{backend} {dtype}", method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sigma", [0.5, 0.7, 1 / 3, 1.3, 2, 2.5], ids=lambda s: f"sigma{s:.3g}")
def test_sweep_across_the_borders(method, sigma):
    """Keypoints every quarter pixel across and beyond both borders of each axis (one instance each,
    a sample an axis): the windows' truncation toward zero, the skip rule and the weights."""
    steps = torch.arange(-40, 52) / 4.0  # [-10, 12.75] across a 7 x 5 map
    other = torch.tensor([3.0, 2.25])
    points = [torch.stack([steps, other[1].expand_as(steps)], -1), torch.stack([other[0].expand_as(steps), steps], -1)]
    keypoints = [p.reshape(-1, 1, 2) for p in points]
    visible = [torch.ones(steps.numel(), 1)] * 2
    expected = oracle(keypoints, visible, (7, 5), sigma, method)
    for backend in BACKENDS:
        if backend == "triton" and sigma not in (1 / 3, 2.5):  # the interpreter is slow: two σ of six
            continue
        actual = keypoint_heatmaps(keypoints, visible, (7, 5), sigma, method=method, backend=backend)
        assert_matches(actual, expected, f"{backend} {method} σ={sigma}", method)
    assert 0 < expected[1].sum() < 2 * steps.numel()


@pytest.mark.parametrize("method", ["msra", "udp"])
@pytest.mark.parametrize("sigma", [0.7, 1.3, 2, "per_instance"])
def test_large_maps_small_windows(method, sigma):
    """Maps much larger than the windows (the torch implementation scatters windows there), with
    instances that overlap and keypoints past every border."""
    if sigma == "per_instance" and method == "udp":
        pytest.skip("σ per instance is MSRA's")
    g = torch.Generator().manual_seed(5)
    sizes = (3, 0, 5)
    keypoints = [torch.rand(n, 4, 2, generator=g) * torch.tensor([50.0, 43.0]) - 5 for n in sizes]
    keypoints[2][1] = keypoints[2][0] + 0.7  # overlapping instances
    visible = [(torch.rand(n, 4, generator=g) > 0.1).float() for n in sizes]
    if sigma == "per_instance":
        sigma = [(torch.rand(n, generator=g) * 2 + 0.4).double() for n in sizes]
    expected = oracle(keypoints, visible, (40, 33), sigma, method)
    for backend in BACKENDS:
        actual = keypoint_heatmaps(keypoints, visible, (40, 33), sigma, method=method, backend=backend)
        assert_matches(actual, expected, f"{backend} {method}", method)
    assert expected[0].sum() > 0


def _forms(tensors):
    ragged = Ragged.from_list(tensors)
    return {"list": (tensors, None), "ragged": (ragged, None), "padded": (ragged.tensor, ragged.sample_sizes)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_input_form_gives_the_same(backend):
    g = torch.Generator().manual_seed(3)
    keypoints = [torch.rand(n, 4, 2, generator=g) * 14 - 2 for n in (2, 0, 3)]
    visible = [(torch.rand(n, 4, generator=g) > 0.2).float() for n in (2, 0, 3)]
    sigmas = [torch.rand(n, generator=g) + 0.5 for n in (2, 0, 3)]
    expected = oracle(keypoints, visible, (11, 9), [s.double() for s in sigmas], "msra")
    for form in ("list", "ragged", "padded"):
        (k, counts), (v, _), (s, _) = _forms(keypoints)[form], _forms(visible)[form], _forms(sigmas)[form]
        actual = keypoint_heatmaps(k, v, (11, 9), s, counts=counts, backend=backend)
        assert_matches(actual, expected, f"{form}", "msra")
    assert expected[0].sum() > 0


def test_padding_is_never_read():
    points = torch.full((2, 3, 2, 2), float("nan"))
    points[0, 0] = torch.tensor([[3.0, 2.0], [1.0, 1.0]])
    flags = torch.full((2, 3, 2), float("nan"))
    flags[0, 0] = 1.0
    for backend in BACKENDS:
        heat, weights = keypoint_heatmaps(points, flags, (6, 4), 1.0, counts=torch.tensor([1, 0]), backend=backend)
        assert heat.isfinite().all() and heat[0].amax() == 1.0 and heat[1].abs().sum() == 0
        assert weights.tolist() == [[[1.0, 1.0], [0, 0], [0, 0]], [[0, 0]] * 3]


def test_empty_batch_and_no_instances():
    out = keypoint_heatmaps([torch.zeros(0, 5, 2)], [torch.zeros(0, 5)], (4, 3), 2.0)
    assert out.heatmaps.shape == (1, 5, 3, 4) and out.weights.shape == (1, 0, 5) and out.heatmaps.abs().sum() == 0


def test_bench_suite_runs_and_agrees_with_mmpose():
    from gaussdraw.bench.keypoints import keypoints_bench, keypoints_table

    rows = keypoints_bench(torch.device("cpu"), ["coco"], quick=True)
    assert [r["method"] for r in rows] == list(METHODS) and "mmpose loop (ms)" in keypoints_table(rows)
    assert all(r["weights_equal"] and r["max_abs_diff_vs_mmpose"] <= VALUE_TOLERANCE and r["wall_us"] > 0
               for r in rows), rows


def test_public_names():
    assert gaussdraw.keypoint_heatmaps is keypoint_heatmaps and "KeypointHeatmaps" in gaussdraw.__all__


# ----------------------------------------------------------------------------
# messages
# ----------------------------------------------------------------------------

ONE = [torch.tensor([[[1.0, 2.0], [3.0, 1.0]]])]
ONE_VISIBLE = [torch.ones(1, 2)]


@pytest.mark.parametrize("kwargs,error,text", [
    (dict(method="simcc"), ValueError, "method must be one of ('msra', 'udp', 'dark'); got 'simcc'"),
    (dict(heatmap_size=(0, 4)), ValueError, "heatmap_size[0] must be > 0; got 0"),
    (dict(heatmap_size=(4.0, 4)), TypeError, "heatmap_size[0] must be an int; got float"),
    (dict(heatmap_size=4), ValueError, "heatmap_size must be a pair (W, H) of ints > 0; got 4"),
    (dict(sigma=-1.0), ValueError, "sigma must be finite and in (0, 1e+06]; got -1.0"),
    (dict(sigma=float("nan")), ValueError, "sigma must be finite and in (0, 1e+06]; got nan"),
    (dict(sigma="2"), TypeError, "sigma must be a number, one σ per keypoint"),
    (dict(sigma=torch.ones(3)), ValueError, "sigma must have shape (2); got (3,)"),
    (dict(sigma=torch.tensor([1.0, 0.0])), ValueError, "sigma must be finite and in (0, 1e+06]; got 0.0 at position 1"),
    (dict(sigma=[torch.tensor([1.0])], method="udp"), ValueError,
     "sigma per instance applies to method='msra' only (mmpose's UDP and DARK encoders take one σ); got method='udp'"),
    (dict(sigma=[torch.tensor([-1.0])]), ValueError, "sigma must be finite and in (0, 1e+06]; got -1.0 at sample 0"),
    (dict(visible=[torch.ones(1, 3)]), ValueError, "visible must have one entry per keypoint: (N_b, 2)"),
    (dict(visible=[torch.ones(1, 2, dtype=torch.long)]), TypeError, "visible[0] must be a floating-point tensor"),
    (dict(visible=[torch.tensor([[1.0, float("nan")]])]), ValueError, "visible must not be NaN; got nan at sample 0"),
    (dict(keypoints=[torch.tensor([[[1.0, float("inf")], [3.0, 1.0]]])]), ValueError,
     "keypoints of visible keypoints must be finite (position = instance * K + keypoint); got [1.0, inf] at sample 0"),
    (dict(keypoints=[torch.ones(2, 2)]), ValueError, "keypoints[0] must be (n, *, 2), one entry per box"),
    (dict(backend="cuda"), ValueError, "backend must be one of"),
])
def test_bad_inputs_are_named(kwargs, error, text):
    arguments = dict(keypoints=ONE, visible=ONE_VISIBLE, heatmap_size=(8, 6), sigma=2.0)
    arguments.update(kwargs)
    with raises_text(error, text):
        keypoint_heatmaps(**arguments)


def shape_batch(seed: int, size=(9, 12), num_samples=3, num_instances=3, num_keypoints=4):
    """(keypoints (B, N, K, 2), visible (B, N, K), counts (B,)): overlapping instances, some off the map."""
    g = torch.Generator().manual_seed(seed)
    extent = torch.tensor(size, dtype=torch.float32)
    keypoints = torch.rand(num_samples, num_instances, num_keypoints, 2, generator=g) * (extent + 6) - 3
    visible = (torch.rand(num_samples, num_instances, num_keypoints, generator=g) * 2.5).floor()
    return keypoints, visible, torch.tensor([num_instances, 0, 2][:num_samples])


@pytest.mark.skipif("triton" not in BACKENDS, reason="needs Triton's interpreter")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", [(9, 12), (8, 4)])
def test_triton_launch_shapes_agree(method, size):
    """Each launch shape (tiles that split rows, end past the plane or fill it) gives the torch values."""
    from gaussdraw.ops.keypoint_heatmaps import keypoint_heatmaps_torch, keypoint_heatmaps_triton

    keypoints, visible, counts = shape_batch(5)
    args = (keypoints, visible, counts, None, 1.3, size[1], size[0], method)
    expected = keypoint_heatmaps_torch(*args)
    assert expected[0].sum() > 0
    for shape in [(16, 1), (32, 4), (64, 2), (4096, 8)]:
        assert_matches(keypoint_heatmaps_triton(*args, shape=shape), expected, f"shape {shape}", method)


@pytest.mark.parametrize("method", ["msra", "udp"])
def test_torch_windows_on_calloc_zeros_agree(method, monkeypatch):
    """Maps from NumPy's zeroed allocation (the torch path's large maps) hold the same values."""
    from gaussdraw.ops import keypoint_heatmaps_torch as op

    keypoints, visible, counts = shape_batch(7, size=(30, 40), num_keypoints=5)
    args = (keypoints, visible, counts, None, 1.5, 40, 30, method)
    expected = op.keypoint_heatmaps_torch(*args)
    monkeypatch.setattr(op, "_CALLOC_BYTES", 0)
    actual = op.keypoint_heatmaps_torch(*args)
    assert expected[0].sum() > 0 and torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])
    assert actual[0].is_contiguous() and actual[0].shape == (3, 5, 40, 30)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sigma", [2.0, 0.5, 1 / 3, "per_keypoint"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_one_instance_a_sample_matches_mmpose(method, sigma, dtype, monkeypatch):
    """mmpose's top-down case (one instance a sample): outer products of per-axis factors where σ
    allows (σ >= 0.48 for MSRA/UDP, any for DARK), the window scatter else; keypoints on, beside
    and off the map, NaN ones not shown."""
    from gaussdraw.ops import keypoint_heatmaps_torch as op

    calls, outer_product_maps = [], op._outer_product_maps
    monkeypatch.setattr(op, "_outer_product_maps", lambda *a: calls.append(1) or outer_product_maps(*a))
    g = torch.Generator().manual_seed(3)
    size = (23, 17)
    points = torch.rand(6, 1, 7, 2, generator=g) * torch.tensor([31.0, 25.0]) - 4
    points[0, 0, 0] = torch.tensor([-0.7, -1.4])  # UDP's offsets up to 1.5 (trunc toward zero)
    points[1, 0, 1] = math.nan
    flags = (torch.rand(6, 1, 7, generator=g) * 2.5).floor()
    flags[1, 0, 1] = 0.0
    if sigma == "per_keypoint":
        sigma = torch.tensor([0.5, 1.0, 2.0, 2.5, 0.7, 1.3, 3.0])
    keypoints, visible = list(points.to(dtype)), list(flags)
    out = keypoint_heatmaps(keypoints, visible, size, sigma, method=method, backend="torch")
    assert_matches(out, oracle(keypoints, visible, size, sigma, method), "one instance", method)
    separable = method == "dark" or (sigma if isinstance(sigma, float) else 0.5) >= 0.48
    assert len(calls) == int(separable)


def test_one_instance_sigma_per_instance_with_an_empty_sample():
    """σ per instance pads empty samples with 0: no NaN from them, the others drawn as mmpose."""
    keypoints = [torch.zeros(0, 3, 2), torch.tensor([[[0.0, 0.0], [3.0, 2.0], [9.0, 1.0]]])]
    visible = [torch.zeros(0, 3), torch.ones(1, 3)]
    sigma = [torch.zeros(0, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)]
    out = keypoint_heatmaps(keypoints, visible, (5, 4), sigma, backend="torch")
    assert out.heatmaps[1].sum() > 0
    assert_matches(out, oracle(keypoints, visible, (5, 4), sigma, "msra"), "empty sample", "msra")


def test_padded_inputs_need_counts():
    with raises_text(ValueError, "counts is required when keypoints, visible are all padded tensors"):
        keypoint_heatmaps(torch.zeros(2, 1, 3, 2), torch.ones(2, 1, 3), (4, 4), 1.0)
    with raises_text(ValueError, "counts must be in [0, 1]"):
        keypoint_heatmaps(torch.zeros(2, 1, 3, 2), torch.ones(2, 1, 3), (4, 4), 1.0, counts=torch.tensor([1, 2]))


# ----------------------------------------------------------------------------
# CUDA
# ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_triton_matches_torch_on_poisoned_memory(method, dtype):
    g = torch.Generator().manual_seed(11)
    sizes = (1, 0, 4, 2)
    keypoints = [(torch.rand(n, 17, 2, generator=g) * torch.tensor([60.0, 76.0]) - 6).to(dtype) for n in sizes]
    visible = [(torch.rand(n, 17, generator=g) * 2).floor() for n in sizes]
    sigma = 2.5 if method != "msra" else [torch.rand(n, generator=g) * 2 + 1 for n in sizes]
    cuda = lambda values: [t.cuda() for t in values]  # noqa: E731
    expected = keypoint_heatmaps(keypoints, visible, (48, 64), sigma, method=method, backend="torch")
    for _ in range(2):
        poison = torch.full((4 << 20,), float("nan"), device="cuda")  # the allocator hands these bytes out next
        del poison
        actual = keypoint_heatmaps(cuda(keypoints), cuda(visible), (48, 64),
                                   cuda(sigma) if isinstance(sigma, list) else sigma, method=method, backend="triton")
        torch.cuda.synchronize()
        assert_matches(actual, expected, f"cuda triton {method}", method, CUDA_TOLERANCE)
    assert expected.heatmaps.sum() > 0 and expected.weights.sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
def test_cuda_every_launch_shape_matches_torch(method):
    """Every shape the bench's sweep times (poisoned outputs), on the sizes of its configs."""
    from gaussdraw.bench.keypoints import VARIANT_SHAPES
    from gaussdraw.ops.keypoint_heatmaps import keypoint_heatmaps_triton

    for seed, size in enumerate([(48, 64), (72, 96), (9, 12)]):
        keypoints, visible, counts = shape_batch(seed, size, num_samples=3, num_instances=3, num_keypoints=17)
        expected = keypoint_heatmaps(keypoints, visible, size, 2.5, method=method, counts=counts, backend="torch")
        cuda_args = (keypoints.cuda(), visible.cuda(), counts.cuda(), None, 2.5, size[1], size[0], method)
        for shape in VARIANT_SHAPES:
            poison = torch.full((4 << 20,), float("nan"), device="cuda")
            del poison
            actual = keypoint_heatmaps_triton(*cuda_args, shape=shape)
            assert_matches(actual, expected, f"cuda shape {shape} {method}", method, CUDA_TOLERANCE)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_launch_shape_sweep_runs():
    from gaussdraw.bench.keypoints import keypoint_variants

    rows = keypoint_variants(torch.device("cuda"), ["coco"], shapes=((1024, 4),), methods=("udp",))
    assert len(rows) == 1 and rows[0]["same_values"] and rows[0]["gpu_us"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
def test_cuda_no_host_sync_and_graph_capture(method):
    """A CUDA call syncs nothing (sync debug mode "error") and replays in a CUDA graph on new keypoints."""
    g = torch.Generator().manual_seed(12)
    keypoints = (torch.rand(6, 2, 133, 2, generator=g) * torch.tensor([80.0, 104.0]) - 4).cuda()
    visible = (torch.rand(6, 2, 133, generator=g) > 0.15).float().cuda()
    counts = torch.tensor([1, 2, 0, 1, 2, 1]).cuda()

    def encode():
        return keypoint_heatmaps(keypoints, visible, (72, 96), 3.0, method=method, counts=counts)
    encode()  # compiles the kernel
    torch.cuda.set_sync_debug_mode("error")
    try:
        encode()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = encode()
    captured.heatmaps.fill_(float("nan"))
    keypoints.copy_((torch.rand(6, 2, 133, 2, generator=g) * torch.tensor([80.0, 104.0]) - 4).cuda())
    graph.replay()
    expected = keypoint_heatmaps(keypoints.cpu(), visible.cpu(), (72, 96), 3.0, method=method, counts=counts.cpu())
    assert_matches(captured, expected, f"graph replay {method}", method, CUDA_TOLERANCE)
