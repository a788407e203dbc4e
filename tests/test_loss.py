"""Gaussian focal loss: every backend against mmdet's code, gradients, the logits variant, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gaussdraw.loss as loss_module
from gaussdraw import GaussianFocalLoss, gaussian_focal_loss, gaussian_focal_loss_with_logits
from gaussdraw.ops.focal_loss import focal_loss_backward_op, focal_loss_forward_op

from .conftest import DEVICE_BACKENDS, DEVICE_BACKEND_IDS
from .helpers import assert_close, raises_text
from .oracles import mmdet_gaussian_focal_loss

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def rel_close(actual, expected, rtol, what=""):
    """|a - e| <= rtol * max(|e|, tiny) elementwise (NaN only where expected is NaN)."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    both_nan = a.isnan() & e.isnan()
    a, e = torch.where(both_nan, 0.0, a), torch.where(both_nan, 0.0, e)
    scale = e.abs().clamp(min=1e-6)
    assert_close(a / scale, e / scale, rtol, what)


def inputs(shape, seed, dtype=torch.float32, extremes=True):
    """pred in [0, 1] with exact 0s and 1s; target a heatmap with exact 1s (positives) and 0s."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(shape, generator=g, dtype=torch.float64)
    target = torch.rand(shape, generator=g, dtype=torch.float64) ** 3
    u = torch.rand(shape, generator=g)
    target = torch.where(u < 0.1, 1.0, torch.where(u > 0.7, 0.0, target))
    if extremes:
        v = torch.rand(shape, generator=g)
        pred = torch.where(v < 0.05, 0.0, torch.where(v > 0.95, 1.0, pred))
    return pred.to(dtype), target.to(dtype)


OPTIONS = st.fixed_dictionaries(dict(
    alpha=st.sampled_from([2.0, 1.0, 1.5, 3.0]),
    gamma=st.sampled_from([4.0, 2.0, 0.5, 0.0]),
    pos_weight=st.sampled_from([1.0, 0.25]),
    neg_weight=st.sampled_from([1.0, 2.0]),
))
SHAPES = st.sampled_from([(3, 5), (2, 3, 7, 9), (1, 37), (2, 1, 33, 65), (0, 4)])


@SETTINGS
@given(shape=SHAPES, options=OPTIONS, reduction=st.sampled_from(["mean", "sum", "none"]),
       use_weight=st.booleans(), avg=st.sampled_from([None, "float", "tensor"]), seed=st.integers(0, 2**16))
def test_matches_mmdet(device_backend, shape, options, reduction, use_weight, avg, seed):
    device, backend = device_backend
    mmdet_loss, _ = mmdet_gaussian_focal_loss()
    pred, target = inputs(shape, seed)
    weight = torch.rand(shape, generator=torch.Generator().manual_seed(seed + 1)) if use_weight else None
    avg_factor = None if avg is None or reduction == "sum" else 7.0 if avg == "float" else torch.tensor(7.0)

    p_ref = pred.clone().requires_grad_()
    expected = mmdet_loss(p_ref, target, weight, reduction=reduction, avg_factor=avg_factor, **options)
    p = pred.clone().to(device).requires_grad_()
    actual = gaussian_focal_loss(p, target.to(device), reduction=reduction,
                                 avg_factor=avg_factor.to(device) if isinstance(avg_factor, torch.Tensor) else avg_factor,
                                 weight=weight.to(device) if weight is not None else None, backend=backend, **options)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    rel_close(actual, expected, 1e-5 if reduction == "none" else 1e-6, "loss:")
    if pred.numel():
        expected.sum().backward()
        actual.sum().backward()
        assert torch.isfinite(p.grad).all()
        # The positive and negative terms' gradients can nearly cancel (gamma = 0 gives
        # positives a negative term too): compare within 1e-5 of the terms' size.
        scale = sum(_mmdet_grad(mmdet_loss, pred, target, weight, reduction, avg_factor, options, **zero).abs()
                    for zero in (dict(pos_weight=0.0), dict(neg_weight=0.0)))
        assert_close(p.grad.cpu() / scale.clamp(min=1e-30), p_ref.grad / scale.clamp(min=1e-30), 1e-5, "grad:")


def _mmdet_grad(mmdet_loss, pred, target, weight, reduction, avg_factor, options, **override):
    p = pred.detach().clone().requires_grad_()
    mmdet_loss(p, target, weight, reduction=reduction, avg_factor=avg_factor, **{**options, **override}).sum().backward()
    return p.grad


@pytest.mark.parametrize("device_backend", DEVICE_BACKENDS, ids=DEVICE_BACKEND_IDS)
def test_module_matches_mmdet(device_backend):
    device, backend = device_backend
    _, MMDetModule = mmdet_gaussian_focal_loss()
    pred, target = inputs((2, 3, 16, 20), seed=5)
    kwargs = dict(alpha=2.0, gamma=4.0, reduction="mean", loss_weight=1.5, pos_weight=0.5, neg_weight=2.0)
    ours, theirs = GaussianFocalLoss(**kwargs, backend=backend), MMDetModule(**kwargs)
    for call in [dict(), dict(avg_factor=12.0), dict(reduction_override="sum"), dict(reduction_override="none"),
                 dict(weight=torch.rand(2, 3, 16, 20))]:
        expected = theirs(pred, target, **call)
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in call.items()}
        rel_close(ours(pred.to(device), target.to(device), **moved), expected, 1e-5, f"{call}:")
    assert "loss_weight=1.5" in repr(ours)


@pytest.mark.parametrize("backend", ["torch"] + (["triton"] if ("cpu", "triton") in DEVICE_BACKENDS else []))
@pytest.mark.parametrize("logits", [False, True], ids=["probabilities", "logits"])
def test_gradcheck_float64(backend, logits):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 7, generator=g, dtype=torch.float64) * 2) if logits else \
        torch.rand(3, 7, generator=g, dtype=torch.float64) * 0.9 + 0.05
    target = torch.rand(3, 7, generator=g, dtype=torch.float64) ** 2
    target[0, :2] = 1.0
    fn = gaussian_focal_loss_with_logits if logits else gaussian_focal_loss
    for reduction in ("mean", "none"):
        torch.autograd.gradcheck(
            lambda v: fn(v, target, alpha=1.5, gamma=3.0, pos_weight=0.7, reduction=reduction, backend=backend),
            (x.requires_grad_(),),
        )


def _logits_loss_float64(x, t, alpha, gamma):
    """Independent float64 formula: p = sigmoid(x), log p and log(1 - p) by logsigmoid."""
    x, t = x.double(), t.double()
    log_p, log_q = torch.nn.functional.logsigmoid(x), torch.nn.functional.logsigmoid(-x)
    pos = -log_p * torch.exp(alpha * log_q) * (t == 1)
    neg = -log_q * torch.exp(alpha * log_p) * (1 - t) ** gamma
    return pos + neg


@pytest.mark.parametrize("device_backend", DEVICE_BACKENDS, ids=DEVICE_BACKEND_IDS)
def test_logits_variant(device_backend):
    device, backend = device_backend
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 3, 11, 13, generator=g) * 4
    x.view(-1)[:6] = torch.tensor([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4])  # no clamp needed
    _, target = inputs(x.shape, seed=4)
    expected = _logits_loss_float64(x, target, 2.0, 4.0)
    xd = x.clone().to(device).requires_grad_()
    loss, num_pos = gaussian_focal_loss_with_logits(xd, target.to(device), reduction="none", return_num_pos=True,
                                                    backend=backend)
    assert num_pos.item() == int((target == 1).sum())
    rel_close(loss, expected.float(), 1e-5, "logits loss:")
    loss.sum().backward()
    assert torch.isfinite(xd.grad).all()
    x64 = x.detach().double().requires_grad_()
    _logits_loss_float64(x64, target, 2.0, 4.0).sum().backward()
    assert_close(xd.grad, x64.grad, 1e-5, "logits grad:")

    # moderate logits: the same as the probability form of sigmoid(x)
    x = torch.randn(3, 50, generator=g)
    ours = gaussian_focal_loss_with_logits(x.to(device), target[0, 0, :3, :].reshape(3, -1)[:, :13].repeat(1, 4)[:, :50]
                                           .to(device), backend=backend)
    t = target[0, 0, :3, :].reshape(3, -1)[:, :13].repeat(1, 4)[:, :50]
    rel_close(ours, gaussian_focal_loss(torch.sigmoid(x), t, backend="torch"), 1e-5, "vs sigmoid:")

    # avg_factor="num_pos": the sum over max(1, positives) from the same pass
    s = gaussian_focal_loss_with_logits(x.to(device), t.to(device), reduction="sum", backend=backend)
    n = gaussian_focal_loss_with_logits(x.to(device), t.to(device), avg_factor="num_pos", backend=backend)
    rel_close(n, s / (max(1, int((t == 1).sum())) + torch.finfo(torch.float32).eps), 1e-6, "num_pos:")


GRADIENT_CASES = {
    "mean": dict(),
    "mean-upstream-3": dict(upstream=3.0),
    "sum-upstream-0.5": dict(reduction="sum", upstream=0.5),
    "avg-float-upstream-2": dict(avg_factor=5.0, upstream=2.0),
    "avg-tensor": dict(avg_factor="tensor"),
    "avg-tensor-upstream-2": dict(avg_factor="tensor", upstream=2.0),
    "num-pos-logits": dict(avg_factor="num_pos", logits=True),
    "num-pos-logits-upstream-3": dict(avg_factor="num_pos", logits=True, upstream=3.0),
    "loss-weight-module": dict(loss_weight=2.5),
    "weight-twice": dict(weight=True, twice=True),
    "elementwise-twice": dict(reduction="none", twice=True),
    "float16": dict(dtype=torch.float16, upstream=1024.0),
}


@pytest.mark.parametrize("device_backend", DEVICE_BACKENDS, ids=DEVICE_BACKEND_IDS)
@pytest.mark.parametrize("case", list(GRADIENT_CASES), ids=list(GRADIENT_CASES))
def test_gradient_for_any_upstream_and_divisor(device_backend, case):
    """The gradient (stored by the forward pass or recomputed) against the torch backend's autograd,
    for upstream gradients other than 1, every divisor, a second backward, and float16."""
    device, backend = device_backend
    c = dict(reduction="mean", upstream=1.0, avg_factor=None, logits=False, loss_weight=1.0, weight=False,
             twice=False, dtype=torch.float32) | GRADIENT_CASES[case]
    pred, target = inputs((3, 4, 13, 11), seed=12, extremes=not c["logits"] and c["dtype"] != torch.float16)
    x = torch.logit(pred.clamp(0.02, 0.98)) if c["logits"] else pred.clamp(0.0, 1.0)
    weight = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) if c["weight"] else None

    def run(x, target, weight, backend):
        avg = torch.tensor(6.0, device=x.device) if c["avg_factor"] == "tensor" else c["avg_factor"]
        kwargs = dict(reduction=c["reduction"], avg_factor=avg, weight=weight, backend=backend)
        if c["logits"]:
            loss = gaussian_focal_loss_with_logits(x, target, **kwargs)
        elif c["loss_weight"] != 1.0:
            loss = GaussianFocalLoss(loss_weight=c["loss_weight"], reduction=c["reduction"], backend=backend)(
                x, target, weight=weight, avg_factor=avg)
        else:
            loss = gaussian_focal_loss(x, target, **kwargs)
        upstream = torch.full_like(loss, c["upstream"])
        loss.backward(upstream, retain_graph=c["twice"])
        if c["twice"]:
            loss.backward(upstream)
        return loss

    ours_x = x.to(c["dtype"]).to(device).clone().requires_grad_()
    ours = run(ours_x, target.to(device), weight.to(device) if weight is not None else None, backend)
    ref_x = x.to(c["dtype"]).float().clone().requires_grad_()
    ref = run(ref_x, target, weight, "torch")
    tol = 1e-2 if c["dtype"] == torch.float16 else 1e-5
    rel_close(ours.float(), ref, tol, "loss:")
    assert ours_x.grad.dtype == c["dtype"]
    # gradients of opposite terms can nearly cancel: compare within tol of the largest
    scale = ref_x.grad.abs().max()
    assert_close(ours_x.grad.float().cpu() / scale, ref_x.grad / scale, tol, "grad:")


LAUNCH_SHAPES = {
    "one-block-each": dict(block=16, programs=0, warps=1, prefetch=False, chunk=16),
    "three-programs": dict(block=16, programs=3, warps=1, prefetch=False, chunk=16),
    "three-programs-prefetch": dict(block=32, programs=3, warps=1, prefetch=True, chunk=16),
}


@pytest.mark.skipif(not any(b == "triton" for _, b in DEVICE_BACKENDS), reason="needs the Triton backend")
@pytest.mark.parametrize("launch_shape", list(LAUNCH_SHAPES), ids=list(LAUNCH_SHAPES))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_launch_shapes_agree(launch_shape, weighted):
    """Every launch shape (blocks per program, prefetching, the finalize's chunks) gives the same
    loss, positives and gradients (stored and recomputed) as the torch formulas."""
    from gaussdraw.ops.focal_loss import LossLaunchShape, backward_triton, focal_loss_triton
    from gaussdraw.ops.focal_loss_torch import backward_torch, forward_torch

    device = next(d for d, b in DEVICE_BACKENDS if b == "triton")
    shape = LossLaunchShape(**LAUNCH_SHAPES[launch_shape])
    pred, target = inputs((3, 7, 23), seed=14)  # 483 elements: 31 blocks of 16, a partial last block
    logits = torch.logit(pred.clamp(0.01, 0.99))
    weight = torch.rand(pred.shape, generator=torch.Generator().manual_seed(2)) if weighted else None
    options = (2.0, 4.0, 1.0, 1.0, True)
    ref_sum, ref_num_pos = forward_torch(logits, target, weight, *options, True)
    ref_grad = backward_torch(torch.ones(()), logits, target, weight, *options)
    on = [t.to(device) if t is not None else None for t in (logits, target, weight)]
    loss, num_pos, stored, divisor = focal_loss_triton(*on, *options, True, divide_by_positives=True, write_grad=True,
                                                       shape=shape)
    recomputed = backward_triton(torch.ones((), device=device), *on, *options, shape=shape)
    assert num_pos.item() == ref_num_pos.item() == int((target == 1).sum())
    rel_close(divisor.cpu(), torch.tensor(max(1, int(ref_num_pos)) + 1.1920928955078125e-07), 1e-7, "divisor:")
    rel_close(loss.cpu(), ref_sum / divisor.cpu(), 1e-6, "loss:")
    scale = ref_grad.abs().max()
    assert_close(stored.cpu() / scale, ref_grad / scale, 1e-5, "stored grad:")
    assert_close(recomputed.cpu() / scale, ref_grad / scale, 1e-5, "recomputed grad:")


@pytest.mark.skipif(not any(b == "triton" for _, b in DEVICE_BACKENDS), reason="needs the Triton backend")
def test_alignment_and_size_changes_between_calls():
    """Calls that differ only in what Triton specializes on (16-byte alignment of the
    tensors, sizes divisible by 16 or not, a single element) each get the right kernel."""
    device = next(d for d, b in DEVICE_BACKENDS if b == "triton")
    pred, target = inputs((1, 1, 2 * 1024 + 33), seed=15, extremes=False)
    for size, offset in [(2048, 0), (2048, 1), (2047, 0), (2047, 3), (1, 0), (16, 0), (16, 1), (2048, 0)]:
        p, t = pred[..., offset:offset + size], target[..., offset:offset + size]
        x = p.to(device).clone() if offset == 0 else pred.to(device)[..., offset:offset + size]
        x.requires_grad_()
        loss = gaussian_focal_loss(x, t.to(device), backend="triton")
        loss.backward()
        x_ref = p.clone().requires_grad_()
        ref = gaussian_focal_loss(x_ref, t, backend="torch")
        ref.backward()
        rel_close(loss, ref, 1e-6, f"size {size} offset {offset} loss:")
        assert_close(x.grad.cpu() / x_ref.grad.abs().max(), x_ref.grad / x_ref.grad.abs().max(), 1e-5,
                     f"size {size} offset {offset} grad:")


@pytest.mark.parametrize("device_backend", DEVICE_BACKENDS, ids=DEVICE_BACKEND_IDS)
def test_avg_factor_that_needs_grad_gets_one(device_backend):
    device, backend = device_backend
    pred, target = inputs((2, 3, 5, 7), seed=16)
    avg = torch.tensor(5.0, device=device, requires_grad=True)
    loss = gaussian_focal_loss(pred.to(device), target.to(device), avg_factor=avg, backend=backend)
    loss.backward()
    total = gaussian_focal_loss(pred, target, reduction="sum", backend="torch").double()
    expected = -total / (5.0 + torch.finfo(torch.float32).eps) ** 2
    rel_close(avg.grad, expected.float(), 1e-5, "d loss / d avg_factor:")


def test_forward_without_grad_matches():
    """Under no_grad (and for a pred that needs no gradient) the forward pass stores nothing, same value."""
    device, backend = DEVICE_BACKENDS[-1]
    pred, target = inputs((2, 3, 9, 10), seed=13)
    pred, target = pred.to(device), target.to(device)
    with torch.no_grad():
        a = gaussian_focal_loss(pred.clone().requires_grad_(), target, backend=backend)
    b = gaussian_focal_loss(pred, target, backend=backend)
    c = gaussian_focal_loss(pred.clone().requires_grad_(), target, backend=backend)
    assert not a.requires_grad and not b.requires_grad and c.requires_grad
    assert torch.equal(a, b) and torch.equal(b, c.detach())


@pytest.mark.parametrize("device_backend", DEVICE_BACKENDS, ids=DEVICE_BACKEND_IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_pred(device_backend, dtype):
    device, backend = device_backend
    if backend == "triton" and device == "cpu" and dtype == torch.bfloat16:
        pytest.skip("bf16 is broken in Triton's interpreter")
    pred, target = inputs((2, 4, 17, 19), seed=6)
    p = pred.to(dtype).to(device).requires_grad_()
    loss = gaussian_focal_loss(p, target.to(device), backend=backend)
    assert loss.dtype == dtype and torch.isfinite(loss)
    p32 = p.detach().float().requires_grad_()
    ref = gaussian_focal_loss(p32, target.to(device), backend="torch")
    rel_close(loss.float(), ref, 1e-2, f"{dtype} loss:")
    loss.backward()
    ref.backward()
    assert p.grad.dtype == dtype and torch.isfinite(p.grad).all()
    limit = torch.finfo(dtype).max
    rel_close(p.grad.float(), p32.grad.clamp(-limit, limit).to(dtype).float(), 1e-2, f"{dtype} grad:")


@pytest.mark.parametrize("device_backend", DEVICE_BACKENDS, ids=DEVICE_BACKEND_IDS)
def test_backends_agree_and_sum_is_deterministic(device_backend):
    device, backend = device_backend
    pred, target = inputs((3, 5, 40, 41), seed=8)
    a = gaussian_focal_loss(pred.to(device), target.to(device), reduction="sum", backend=backend)
    b = gaussian_focal_loss(pred.to(device), target.to(device), reduction="sum", backend=backend)
    assert torch.equal(a, b)
    rel_close(a, gaussian_focal_loss(pred.double(), target.double(), reduction="sum", backend="torch").float(),
              1e-5, "vs float64:")


T = torch.tensor
BAD = {
    "shape": (dict(pred=torch.rand(2, 3), target=torch.rand(3, 2)), ValueError, r"target must have pred's shape"),
    "int-pred": (dict(pred=T([[1, 0]]), target=torch.rand(1, 2)), TypeError, r"pred must be a floating tensor"),
    "int-target": (dict(pred=torch.rand(1, 2), target=T([[1, 0]])), TypeError, r"target must be a floating"),
    "sum-avg": (dict(pred=torch.rand(2, 3), target=torch.rand(2, 3), reduction="sum", avg_factor=3.0), ValueError,
                r'avg_factor can not be used with reduction="sum"'),
    "reduction": (dict(pred=torch.rand(2, 3), target=torch.rand(2, 3), reduction="avg"), ValueError,
                  r"reduction must be one of"),
    "alpha": (dict(pred=torch.rand(2, 3), target=torch.rand(2, 3), alpha=-1.0), ValueError, r"alpha must be"),
    "weight-shape": (dict(pred=torch.rand(2, 3), target=torch.rand(2, 3), weight=torch.rand(4)), ValueError,
                     r"weight of shape \(4,\) does not broadcast"),
    "target-range": (dict(pred=torch.rand(2, 3), target=torch.full((2, 3), 1.5), validate=True), ValueError,
                     r"target must be in \[0, 1\]; got 1.5 at position 0"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input(case):
    kwargs, error, match = BAD[case]
    with pytest.raises(error, match=match):
        gaussian_focal_loss(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_devices_must_match():
    with pytest.raises(ValueError, match=r"target is on cpu but pred is on cuda"):
        gaussian_focal_loss(torch.rand(2, 3, device="cuda"), torch.rand(2, 3))


OP_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
OP_BACKENDS = [("cpu", "torch")] + [(d, "triton") for d, b in DEVICE_BACKENDS if b == "triton"]


@pytest.mark.parametrize("device_backend", OP_BACKENDS, ids=[f"{d}-{b}" for d, b in OP_BACKENDS])
@pytest.mark.parametrize("reduce", [True, False], ids=["reduce", "elementwise"])
def test_opcheck(device_backend, reduce):
    device, backend = device_backend
    pred, target = inputs((3, 17), seed=9, extremes=False)
    # the ops carry no autograd of their own: gaussdraw.loss's one autograd.Function differentiates
    # them, eagerly and compiled (test_compile_fullgraph_training_step)
    pred, target = pred.to(device), target.to(device)
    torch.library.opcheck(focal_loss_forward_op,
                          (pred, target, None, 2.0, 4.0, 1.0, 1.0, False, reduce, backend == "triton"))
    grad = torch.ones((), device=device) if reduce else torch.rand(3, 17, device=device)
    torch.library.opcheck(focal_loss_backward_op,
                          (grad, pred.detach(), target, None, 2.0, 4.0, 1.0, 1.0, True, backend == "triton"))


@pytest.mark.parametrize("device", OP_DEVICES)
def test_compile_fullgraph_training_step(device):
    torch._dynamo.reset()
    criterion = GaussianFocalLoss()

    def forward(logits, target):
        loss = criterion(torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4), target, avg_factor=3.0)
        return loss + gaussian_focal_loss_with_logits(logits, target, avg_factor="num_pos")

    pred, target = inputs((2, 3, 9, 11), seed=10, extremes=False)
    x = torch.logit(pred.clamp(0.01, 0.99)).to(device)
    eager_x = x.clone().requires_grad_()
    expected = forward(eager_x, target.to(device))
    expected.backward()
    compiled_x = x.clone().requires_grad_()
    actual = torch.compile(forward, fullgraph=True)(compiled_x, target.to(device))
    actual.backward()  # the backward graph, compiled by AOTAutograd, calls the backward op
    rel_close(actual, expected, 1e-5, "compiled loss:")
    assert_close(compiled_x.grad, eager_x.grad, 1e-6, "compiled grad:")


@pytest.mark.parametrize("value", [2.0, -0.5, float("nan")], ids=["above-1", "below-0", "nan"])
def test_focal_loss_refuses_pred_outside_0_1(value):
    pred, target = T([[0.5, value]]), T([[1.0, 0.0]])
    message = "pred must be probabilities in [0, 1] (for logits, use gaussian_focal_loss_with_logits); got"
    for validate in (True, None):  # None: checked on the CPU
        with raises_text(ValueError, message):
            gaussian_focal_loss(pred, target, validate=validate)
    with raises_text(ValueError, f"{message} {value} at position 1 (1 such entry)"):
        GaussianFocalLoss()(pred, target)
    gaussian_focal_loss(pred, target, validate=False)  # unchecked: computed as given
    assert torch.isfinite(gaussian_focal_loss_with_logits(pred.nan_to_num(), target, validate=True))


def test_focal_loss_checks_pred_and_target_in_one_sync(monkeypatch):
    calls = []

    def recording(checks, *args):
        calls.append(len(checks))
        return original(checks, *args)

    original = loss_module.raise_first
    monkeypatch.setattr(loss_module, "raise_first", recording)
    pred = torch.rand(2, 3, requires_grad=True)
    gaussian_focal_loss(pred, torch.rand(2, 3), validate=True).backward()
    gaussian_focal_loss_with_logits(torch.randn(2, 3) * 9, torch.rand(2, 3), validate=True)
    assert calls == [2, 1]  # both checks in one raise_first; the logits variant checks the target only
    with pytest.raises(ValueError, match=r"target must be in \[0, 1\]; got 1.5 at position 0"):
        gaussian_focal_loss(T([3.0]), T([1.5]), validate=True)  # both bad: the target is named first
