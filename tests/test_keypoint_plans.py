"""Repeated keypoint encodes (gaussdraw.keypoints.plans): a plan serves only calls of its own layout,
options and backend, and gives the values of an unplanned call (the torch backend's).

The CUDA direct launch is stood in for on CPU tensors (tests/helpers.py ``stand_in_direct_launch``):
a plan's relaunch runs the kernel in Triton's interpreter on the new tensors.
"""

from __future__ import annotations

import pytest
import torch

import gaussdraw
from gaussdraw.keypoints.plans import KeypointPlan
from gaussdraw.ops._triton import HAVE_TRITON, interpreting
from gaussdraw.ragged import Ragged
from gaussdraw.targets import plans

from .helpers import assert_close, plans_served

pytestmark = pytest.mark.skipif(not (HAVE_TRITON and interpreting()), reason="needs Triton's interpreter")
SIZE = (8, 6)  # (W, H)
VALUE_TOLERANCE = 3e-7  # the interpreter's exp against torch's (tests/test_keypoints_encode.py)


@pytest.fixture
def served(monkeypatch):
    """The plans that served a call, one entry per call (:func:`tests.helpers.plans_served`)."""
    return plans_served(monkeypatch, KeypointPlan)


def _inputs(seed, samples=2, instances=2, keypoints=3, dtype=torch.float32, visible_dtype=torch.float32,
            counts_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    points = (torch.rand(samples, instances, keypoints, 2, generator=g) * torch.tensor([10.0, 8.0]) - 1).to(dtype)
    visible = torch.randint(0, 3, (samples, instances, keypoints), generator=g).to(visible_dtype)
    counts = torch.randint(1, instances + 1, (samples,), generator=g).to(counts_dtype)
    return points, visible, counts


def _encode(inputs, sigma=1.5, backend="triton", validate=False, method="msra", heatmap_size=SIZE):
    points, visible, counts = inputs
    return gaussdraw.keypoint_heatmaps(points, visible, heatmap_size, sigma, method=method, counts=counts,
                                       backend=backend, validate=validate)


def _same(ours, expected):
    for a, b in zip(ours, expected):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_close(a, b, VALUE_TOLERANCE)
    assert expected.heatmaps.sum() > 0  # something was drawn


def _per_instance_sigma(seed):
    return torch.rand(2, 2, generator=torch.Generator().manual_seed(seed)) + 0.8


SIGMAS = {
    "number": lambda seed: 1.5,
    "per keypoint": lambda seed: torch.tensor([0.9, 1.5, 2.1], dtype=torch.float64) + seed * 0.1,
    "per instance": _per_instance_sigma,
}


@pytest.mark.parametrize("method", ["msra", "udp", "dark"])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_a_repeated_call_is_served_by_its_plan_with_new_values(served, method, sigma):
    if sigma == "per instance" and method != "msra":
        pytest.skip("σ per instance is MSRA's only")
    make_sigma = SIGMAS[sigma]
    _encode(_inputs(0), make_sigma(0), method=method)  # compiles (Triton's launch)
    _encode(_inputs(1), make_sigma(1), method=method)  # a direct launch: planned
    assert len(plans.PLANS) == 1 and not served
    for seed in (2, 3):
        ours = _encode(_inputs(seed), make_sigma(seed), method=method)
        assert len(served) == seed - 1
        _same(ours, _encode(_inputs(seed), make_sigma(seed), method=method, backend="torch"))
    again = _encode(_inputs(3), make_sigma(3), method=method)
    assert again.heatmaps.data_ptr() != ours.heatmaps.data_ptr()  # fresh outputs on every call
    assert again.weights.data_ptr() != ours.weights.data_ptr()


def test_inputs_at_another_offset_are_served_with_their_values(served):
    """The kernel does not specialize on its inputs' alignment: a view one element into its storage
    (same shape and strides) is the same layout, and its values are read where it starts."""
    for seed in (0, 1):
        _encode(_inputs(seed))
    points, visible, counts = _inputs(2)
    shifted = torch.empty(points.numel() + 1)[1:].view(points.shape).copy_(points)
    shifted_visible = torch.empty(visible.numel() + 1)[1:].view(visible.shape).copy_(visible)
    ours = _encode((shifted, shifted_visible, counts))
    assert len(served) == 1
    _same(ours, _encode((points, visible, counts), backend="torch"))


CHANGES = {
    "more samples": dict(inputs=dict(samples=3)),
    "more instances": dict(inputs=dict(instances=3)),
    "more keypoints": dict(inputs=dict(keypoints=4)),
    "float64 keypoints": dict(inputs=dict(dtype=torch.float64)),
    "float16 keypoints": dict(inputs=dict(dtype=torch.float16)),
    "float64 visible": dict(inputs=dict(visible_dtype=torch.float64)),
    "int32 counts": dict(inputs=dict(counts_dtype=torch.int32)),
    "sigma": dict(options=dict(sigma=2.5)),
    "sigma per keypoint": dict(options=dict(sigma=torch.tensor([1.0, 1.5, 2.0]))),
    "method": dict(options=dict(method="udp")),
    "heatmap_size": dict(options=dict(heatmap_size=(6, 8))),
    "backend": dict(options=dict(backend="auto")),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_plan_never_serves_another_layout_or_option(served, change):
    what = CHANGES[change]
    for seed in (0, 1):
        _encode(_inputs(seed))
    planned = dict(plans.PLANS)
    inputs = _inputs(5, **what.get("inputs", {}))
    options = what.get("options", {})
    ours = _encode(inputs, **options)
    assert not served  # the first call of the new layout takes the checked path
    assert set(plans.PLANS) >= set(planned)
    _same(ours, _encode(inputs, **dict(options, backend="torch")))


def test_strides_and_forms_are_part_of_the_layout(served):
    points, visible, counts = _inputs(0)
    for _ in range(2):
        _encode((points, visible, counts))
    # non-contiguous keypoints and visibilities of the same shapes: their own layout
    wide = torch.cat([points, points], -1)[..., :2]
    sparse = torch.stack([visible, visible], -1)[..., 0]
    for inputs in [(wide, visible, counts), (points, sparse, counts)]:
        _same(_encode(inputs), _encode(inputs, backend="torch"))
    assert not served
    # the ragged form: its own plan, made by its first call (the kernel is compiled); counts from its sizes
    ragged = (Ragged(points, counts), Ragged(visible, counts))
    for _ in range(3):
        ours = gaussdraw.keypoint_heatmaps(*ragged, SIZE, 1.5, backend="triton", validate=False)
    assert len(served) == 2
    _same(ours, _encode((points, visible, counts), backend="torch"))


def test_checked_list_and_cut_calls_take_the_checked_path(served):
    points, visible, counts = _inputs(0)
    for _ in range(2):
        _encode((points, visible, counts))
    # validation on (or the CPU default): values are checked, even where a plan exists for the layout
    bad = points.clone()
    bad[0, 0, 0, 0] = float("nan")
    checked = (bad, torch.ones_like(visible), torch.full_like(counts, 2))
    for validate in (True, None):
        with pytest.raises(ValueError, match="keypoints of visible keypoints must be finite"):
            _encode(checked, validate=validate)
    # σ out of range is refused on every path, planned or not
    with pytest.raises(ValueError, match="sigma must be finite"):
        _encode((points, visible, counts), sigma=-1.0)
    # lists are padded anew; visibilities longer than the keypoints are cut: neither is planned
    lists = ([p[:n] for p, n in zip(points, counts.tolist())], [v[:n] for v, n in zip(visible, counts.tolist())])
    longer = torch.cat([visible, visible], 1)
    expected = _encode((points, visible, counts), backend="torch")
    for _ in range(3):
        _same(gaussdraw.keypoint_heatmaps(*lists, SIZE, 1.5, backend="triton", validate=False), expected)
        cut = _encode((points, longer, counts))
        _same(cut, expected)
    sigma_list = [0.9, 1.5, 2.1]  # σ per keypoint as a Python list: made a tensor anew each call
    for _ in range(3):
        _encode((points, visible, counts), sigma=sigma_list)
    assert not served


def test_no_plan_without_the_direct_launch(monkeypatch):
    """In the interpreter (the real launch path on the CPU) no launch is direct: nothing is planned."""
    monkeypatch.setattr(plans, "PLANS", {})
    for seed in (0, 1, 2):
        _encode(_inputs(seed))
    assert plans.PLANS == {}
