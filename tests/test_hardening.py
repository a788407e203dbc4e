"""One documented behaviour per class of hard input, on every backend: 16-bit heatmaps, autograd, list
lengths, extreme options."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussdraw import draw_heatmap, draw_heatmap_batched

from .oracles import draw_with_oracle
from .test_draw import scenes

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RELATIVE_ULP = {torch.float16: 2**-10, torch.bfloat16: 2**-7}


def _assert_within_an_ulp(actual, expected, dtype, what):
    """|a - e| <= one ``dtype`` ulp of the larger value: a value rounded once either way."""
    a, e = actual.double().cpu(), expected.double().cpu()
    bound = RELATIVE_ULP[dtype] * torch.maximum(a.abs(), e.abs())
    bad = (a - e).abs() > bound
    assert not bad.any(), f"{what}: {int(bad.sum())} values differ by more than an ulp, e.g. {a[bad][:3]} vs {e[bad][:3]}"


@SETTINGS
@given(scene=scenes(in_map=True), dtype=st.sampled_from([torch.float16, torch.bfloat16]), k=st.sampled_from([1.0, 0.05]))
def test_16_bit_heatmaps_hold_the_float32_drawing_rounded_once(device_backend, scene, dtype, k):
    """The rule: the value mmdet draws in float32 (its float32 threshold too), rounded to the heatmap's dtype.
    Small values (k = 0.05, the tails) are kept where float32 keeps them, on every backend."""
    device, backend = device_backend
    if dtype == torch.bfloat16 and backend == "triton" and device == "cpu":
        pytest.skip("bf16 is unreliable in Triton's interpreter")
    planes, height, width, centers, radii, idxes = scene
    expected = draw_with_oracle(torch.zeros(planes, height, width), centers, radii, idxes, k=k, which="mmdet")
    heatmap = torch.zeros(planes, height, width, dtype=dtype, device=device)
    draw_heatmap(heatmap, centers.to(device), radii.to(device), idxes.to(device), k_scale=k, backend=backend)
    _assert_within_an_ulp(heatmap, expected.to(dtype), dtype, f"{device}-{backend}")


def test_a_heatmap_saved_for_backward_then_drawn_fails_the_backward(device_backend):
    """Drawing tells autograd that the heatmap changed, as an in-place op does."""
    device, backend = device_backend
    weights = torch.ones(1, 8, 8, device=device, requires_grad=True)
    heatmap = torch.zeros(1, 8, 8, device=device)
    loss = (weights * heatmap).sum()  # autograd saves heatmap for the gradient of weights
    draw_heatmap(heatmap, torch.tensor([[3, 3]], device=device), torch.tensor([2], device=device),
                 torch.tensor([0], device=device), backend=backend)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_heatmaps_that_require_grad_are_refused_on_every_path(device_backend):
    device, backend = device_backend
    heatmap = torch.zeros(2, 3, 8, 8, device=device, requires_grad=True)
    for validate in (True, False, None):
        with pytest.raises(ValueError, match="heatmap requires grad"):
            draw_heatmap_batched(heatmap, torch.tensor([[[1, 1]], [[2, 2]]], device=device),
                                 torch.tensor([[1], [1]], device=device),
                                 labels=torch.tensor([[0], [1]], device=device),
                                 counts=torch.tensor([1, 1], device=device), backend=backend, validate=validate)


@SETTINGS
@given(lengths=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=4))
def test_list_lengths_are_compared_on_every_path(device_backend, lengths):
    """Unequal per-sample lengths raise, naming the input and sample; equal ones draw."""
    device, backend = device_backend
    centers = [torch.zeros(n, 2, dtype=torch.long, device=device) for n, _ in lengths]
    radii = [torch.ones(m, dtype=torch.long, device=device) for _, m in lengths]
    heatmap = torch.zeros(len(lengths), 5, 5, device=device)
    bad = [b for b, (n, m) in enumerate(lengths) if n != m]
    for validate in (None, False):
        if bad:
            with pytest.raises(ValueError, match=rf"radii\[{bad[0]}\] has {lengths[bad[0]][1]} entries but "
                                                 rf"centers\[{bad[0]}\] has {lengths[bad[0]][0]}"):
                draw_heatmap_batched(heatmap, centers, radii, backend=backend, validate=validate)
            assert not heatmap.any()
        else:
            draw_heatmap_batched(heatmap, centers, radii, backend=backend, validate=validate)
            assert all(heatmap[b, 0, 0] == (1.0 if n else 0.0) for b, (n, _) in enumerate(lengths))


@pytest.mark.parametrize("factor", [1e-30, 1e-3, 6.0, 1e4, 1e9])
def test_extreme_sigma_factors_stay_finite_and_agree(device_backend, factor):
    device, backend = device_backend
    centers, radii, idxes = torch.tensor([[4, 3], [0, 0]]), torch.tensor([3, 0]), torch.tensor([0, 1])
    expected = torch.zeros(2, 7, 9)
    draw_heatmap(expected, centers, radii, idxes, diameter_to_sigma_factor=factor, backend="torch")
    heatmap = torch.zeros(2, 7, 9, device=device)
    draw_heatmap(heatmap, centers.to(device), radii.to(device), idxes.to(device), diameter_to_sigma_factor=factor,
                 backend=backend)
    assert torch.isfinite(heatmap).all() and heatmap[0, 3, 4] == 1.0 and heatmap[1, 0, 0] == 1.0
    assert (heatmap.cpu() - expected).abs().max() <= 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_nan_already_in_the_heatmap_stays_nan(device_backend, dtype):
    """mmdet's rule (torch.max keeps NaN): NaN of either sign stays, on every backend; other pixels are drawn."""
    device, backend = device_backend
    heatmap = torch.zeros(1, 6, 8, dtype=dtype)
    heatmap[0, 2, 3] = float("nan")
    heatmap[0, 2, 4] = -float("nan")  # sign bit set, as x86's 0 / 0
    heatmap[0, 3, 3] = torch.tensor(0.0) / torch.tensor(0.0)
    heatmap[0, 3, 4] = -0.5
    expected = heatmap.clone()
    draw_with_oracle(expected, torch.tensor([[3, 3], [4, 2]]), torch.tensor([2, 1]), torch.tensor([0, 0]))
    heatmap = heatmap.to(device)
    for _ in range(2):  # a second box on the same pixels
        draw_heatmap(heatmap, torch.tensor([[3, 3], [4, 2]], device=device), torch.tensor([2, 1], device=device),
                     torch.tensor([0, 0], device=device), backend=backend)
    actual = heatmap.cpu()
    assert torch.equal(actual.isnan(), expected.isnan()) and actual.isnan().sum() == 3
    finite = ~expected.isnan()
    assert (actual[finite].double() - expected[finite].double()).abs().max() <= 1e-3
    assert actual[0, 3, 4] > 0  # a negative value is drawn over


def test_allocating_forms_do_not_leave_the_zeroed_flag_set(device_backend):
    """render_* draw into zeros they made (no NaN to keep); a failing render leaves later draws NaN-safe."""
    from gaussdraw import render_heatmaps

    device, backend = device_backend
    args = (torch.tensor([[1, 1]], device=device), torch.tensor([1], device=device), torch.tensor([0], device=device))
    rendered = render_heatmaps((1, 4, 4), *args, backend=backend)
    with pytest.raises(ValueError):
        render_heatmaps((1, 4, 4), args[0], torch.tensor([-1], device=device), args[2], backend=backend, validate=True)
    heatmap = torch.zeros(1, 4, 4, device=device)
    heatmap[0, 1, 2] = -float("nan")
    draw_heatmap(heatmap, *args, backend=backend)
    assert heatmap[0, 1, 2].isnan() and heatmap[0, 1, 1] == 1.0 and rendered[0, 1, 1] == 1.0


def _loss_case(device, **override):
    g = torch.Generator().manual_seed(3)
    args = dict(pred=torch.rand(3, 5, 7, generator=g).clamp(0.05, 0.95).to(device),
                target=torch.rand(3, 5, 7, generator=g).to(device))
    args.update(override)
    return args


@pytest.mark.parametrize(
    "override, error, match",
    [
        (dict(alpha=float("nan")), ValueError, r"alpha must be a finite number >= 0; got nan"),
        (dict(gamma=float("inf")), ValueError, r"gamma must be a finite number >= 0; got inf"),
        (dict(avg_factor="positives"), ValueError, r"avg_factor must be a number, a tensor, None or \"num_pos\""),
        (dict(weight=torch.ones(2, 1, 5, 7)), ValueError, r"weight of shape \(2, 1, 5, 7\) does not broadcast"),
        (dict(weight=torch.ones(3, 5, 7, requires_grad=True)), ValueError, r"weight requires grad.*detach"),
        (dict(target=torch.rand(3, 5, 7, requires_grad=True)), ValueError, r"target requires grad.*detach"),
    ],
    ids=["alpha-nan", "gamma-inf", "avg-factor-str", "weight-broadcast", "weight-grad", "target-grad"],
)
def test_focal_loss_bad_arguments(device_backend, override, error, match):
    from gaussdraw import gaussian_focal_loss

    device, backend = device_backend
    override = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in override.items()}
    if "target" in override:
        override["target"] = override["target"].detach().to(device).requires_grad_()
    if "weight" in override and override["weight"].shape == (3, 5, 7):
        override["weight"] = override["weight"].detach().requires_grad_()
    with pytest.raises(error, match=match):
        gaussian_focal_loss(**_loss_case(device, **override), backend=backend)


def test_focal_loss_keeps_the_shape_of_a_tensor_avg_factor(device_backend):
    """sum / avg_factor has avg_factor's shape in mmdet: (1,) for tensor([4.]), () for a 0-d tensor."""
    from gaussdraw import gaussian_focal_loss

    from .oracles import mmdet_gaussian_focal_loss

    device, backend = device_backend
    mmdet_loss, _ = mmdet_gaussian_focal_loss()
    case = _loss_case(device)
    for avg_factor in (torch.tensor([4.0]), torch.tensor(4.0)):
        expected = mmdet_loss(case["pred"].cpu(), case["target"].cpu(), avg_factor=avg_factor)
        actual = gaussian_focal_loss(**case, avg_factor=avg_factor.to(device), backend=backend)
        assert actual.shape == expected.shape
        assert torch.allclose(actual.cpu(), expected, rtol=1e-5)


def test_focal_loss_alpha_zero_at_saturated_predictions_has_mmdets_gradient(device_backend):
    """alpha = 0 with pred exactly 0 or 1: mmdet's autograd gives finite gradients (pow's derivative at
    exponent 0 is 0); so does every backend."""
    from gaussdraw import gaussian_focal_loss

    from .oracles import mmdet_gaussian_focal_loss

    device, backend = device_backend
    mmdet_loss, _ = mmdet_gaussian_focal_loss()
    pred = torch.tensor([0.0, 1.0, 0.5, 1.0, 0.0, 0.3])
    target = torch.tensor([1.0, 0.0, 0.2, 1.0, 0.0, 0.9])
    reference = pred.clone().requires_grad_()
    mmdet_loss(reference, target, alpha=0.0, gamma=4.0).backward()
    mine = pred.to(device).requires_grad_()
    gaussian_focal_loss(mine, target.to(device), alpha=0.0, gamma=4.0, backend=backend).backward()
    assert torch.isfinite(mine.grad).all()
    assert torch.allclose(mine.grad.cpu(), reference.grad, rtol=1e-4, atol=1e-6), (mine.grad, reference.grad)


def test_focal_loss_with_infinite_logits(device_backend):
    """The logits variant is exact: an infinite logit that is right costs 0 (gradient 0), not NaN;
    one that is wrong costs inf, its true loss."""
    from gaussdraw import gaussian_focal_loss_with_logits

    device, backend = device_backend
    inf = float("inf")
    logits = torch.tensor([inf, -inf, inf, -inf, 0.5])
    target = torch.tensor([1.0, 0.0, 0.3, 1.0, 0.5])
    x = logits.to(device).requires_grad_()
    loss = gaussian_focal_loss_with_logits(x, target.to(device), reduction="none", backend=backend)
    loss.sum().backward()
    loss, grad = loss.detach().cpu(), x.grad.cpu()
    assert loss[0] == 0 and loss[1] == 0 and grad[0] == 0 and grad[1] == 0
    assert loss[2] == inf and loss[3] == inf and torch.isfinite(loss[4]) and not grad.isnan().any()


@SETTINGS
@given(scene=scenes(in_map=True), seed=st.integers(0, 2**16), negative=st.booleans(),
       factor=st.sampled_from([6.0, 0.5, 40.0, 1e6]))
def test_random_nan_and_options(device_backend, scene, seed, negative, factor):
    """NaN of either sign at random pixels stays NaN, other pixels are drawn as on the torch backend, for
    ordinary and extreme diameter_to_sigma_factor."""
    device, backend = device_backend
    planes, height, width, centers, radii, idxes = scene
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(planes, height, width, generator=g) * 0.5
    start[torch.rand(planes, height, width, generator=g) < 0.2] = -float("nan") if negative else float("nan")
    expected = start.clone()
    draw_heatmap(expected, centers, radii, idxes, diameter_to_sigma_factor=factor, backend="torch")
    heatmap = start.to(device)
    draw_heatmap(heatmap, centers.to(device), radii.to(device), idxes.to(device), diameter_to_sigma_factor=factor,
                 backend=backend)
    actual = heatmap.cpu()
    assert torch.equal(actual.isnan(), start.isnan())
    finite = ~start.isnan()
    assert (actual[finite] - expected[finite]).abs().max() <= 1e-6 if finite.any() else True
