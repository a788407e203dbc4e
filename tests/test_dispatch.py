"""The one dispatch rule, and torch.compile of every public op with every input form.

- ``backend="torch"`` runs the torch implementation, eagerly and under torch.compile;
  ``backend="triton"`` reaches the Triton kernels (CPU tensors in the interpreter here).
- Every public op compiles with ``fullgraph=True`` from lists, ragged batches and padded
  tensors + counts, and gives what the eager call gives.
- A whole CenterPoint-style training step (head, targets from per-sample lists, focal and L1
  losses, backward) compiles and matches eager.
"""

from __future__ import annotations

import pytest
import torch

import gaussdraw
from gaussdraw import Ragged, draw, loss
from gaussdraw.decode import centerpoint as decode_centerpoint
from gaussdraw.decode import centerpoint_plans as decode_centerpoint_plans
from gaussdraw.decode import nms as decode_nms
from gaussdraw.decode import peaks as decode_peaks
from gaussdraw.ops._triton import HAVE_TRITON, interpreting
from gaussdraw.ops.centernet_boxes import CENTERNET_BOXES
from gaussdraw.ops.centernet_targets import CENTERNET_TARGETS
from gaussdraw.ops.centerpoint_candidates import CENTERPOINT_CANDIDATES
from gaussdraw.ops.centerpoint_merge import CENTERPOINT_MERGE
from gaussdraw.ops.centerpoint_targets import CENTERPOINT_TARGETS
from gaussdraw.ops.circle_nms import CIRCLE_NMS
from gaussdraw.ops.draw_gaussians import DRAW_GAUSSIANS
from gaussdraw.ops.focal_loss import FOCAL_LOSS_BACKWARD, FOCAL_LOSS_FORWARD
from gaussdraw.ops.keypoint_heatmaps import KEYPOINT_HEATMAPS
from gaussdraw.ops.keypoint_decode import KEYPOINT_DECODE
from gaussdraw.ops.local_maximum import LOCAL_MAXIMUM
from gaussdraw.ops.rotated_nms import ROTATED_NMS

from .helpers import assert_close

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TRITON_RUNS = HAVE_TRITON and (DEVICE == "cuda" or interpreting())
CENTERPOINT = dict(point_cloud_range=[-4.0, -4.0, -3, 4, 4, 1], voxel_size=[0.25, 0.25, 4], grid_size=[32, 32, 1],
                   out_size_factor=2, max_objs=6)


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _form(tensors: list, form: str):
    """(value, counts) of per-sample ``tensors`` in ``form``: a list, a Ragged, or padded + counts."""
    if form == "list":
        return tensors, None
    ragged = Ragged.from_list(tensors)
    return (ragged, None) if form == "ragged" else (ragged.tensor, ragged.sample_sizes)


def _boxes2d(seed, sizes=(3, 0, 2)):
    g = _generator(seed)
    boxes, labels = [], []
    for n in sizes:
        xy = torch.rand(n, 2, generator=g) * 40
        boxes.append(torch.cat([xy, xy + 2 + torch.rand(n, 2, generator=g) * 20], 1).to(DEVICE))
        labels.append(torch.randint(0, 3, (n,), generator=g).to(DEVICE))
    return boxes, labels


def _boxes3d(seed, sizes=(4, 1, 0)):
    g = _generator(seed)
    boxes, labels = [], []
    for n in sizes:
        boxes.append(torch.cat([torch.rand(n, 2, generator=g) * 7 - 3.5, torch.rand(n, 7, generator=g) + 0.5],
                               1).to(DEVICE))
        labels.append(torch.randint(0, 3, (n,), generator=g).to(DEVICE))
    return boxes, labels


def _draw_lists(seed, sizes=(3, 0, 2)):
    g = _generator(seed)
    centers = [torch.randint(-2, 14, (n, 2), generator=g).to(DEVICE) for n in sizes]
    radii = [torch.randint(0, 4, (n,), generator=g).to(DEVICE) for n in sizes]
    labels = [torch.randint(0, 2, (n,), generator=g).to(DEVICE) for n in sizes]
    return centers, radii, labels


def _nms_lists(seed, sizes=(7, 0, 4)):
    g = _generator(seed)
    centers = [(torch.rand(n, 2, generator=g) * 3).to(DEVICE) for n in sizes]
    scores = [torch.rand(n, generator=g).to(DEVICE) for n in sizes]
    return centers, scores


# ----------------------------------------------------------------------------
# each public op, called from each input form
# ----------------------------------------------------------------------------


def call_draw_heatmap(form, backend):
    g = _generator(1)
    centers, radii = torch.randint(-2, 14, (5, 2), generator=g), torch.randint(0, 4, (5,), generator=g)
    inputs = (centers.to(DEVICE), radii.to(DEVICE), torch.randint(0, 6, (5,), generator=g).to(DEVICE))
    return lambda: (draw.draw_heatmap(torch.zeros(2, 3, 11, 13, device=DEVICE), *inputs, backend=backend),
                    gaussdraw.render_heatmaps((6, 11, 13), *inputs, backend=backend))


def call_draw_heatmap_batched(form, backend):
    centers, radii, labels = _draw_lists(2)
    (c, counts), (r, _), (l, _) = _form(centers, form), _form(radii, form), _form(labels, form)
    return lambda: (draw.draw_heatmap_batched(torch.zeros(3, 2, 12, 13, device=DEVICE), c, r, labels=l, counts=counts,
                                              backend=backend),
                    draw.render_heatmaps_batched((3, 12, 13), c, r, counts=counts, backend=backend))


def call_centernet_targets(form, backend):
    boxes, labels = _boxes2d(3)
    (b, counts), (l, _) = _form(boxes, form), _form(labels, form)
    return lambda: tuple(gaussdraw.centernet_targets(b, l, 3, (16, 20), (64, 80), counts=counts, backend=backend))


def call_centerpoint_targets(form, backend):
    boxes, labels = _boxes3d(4)
    (b, counts), (l, _) = _form(boxes, form), _form(labels, form)

    def targets():
        t = gaussdraw.centerpoint_targets(b, l, [1, 2], counts=counts, backend=backend, **CENTERPOINT)
        return (*t.heatmaps, *t.anno_boxes, *t.inds, *t.masks)
    return targets


def call_circle_nms_batched(form, backend):
    centers, scores = _nms_lists(5)
    (c, counts), (s, _) = _form(centers, form), _form(scores, form)
    return lambda: tuple(gaussdraw.circle_nms_batched(c, s, [0.5, 1.0, 2.0], post_max_size=3, counts=counts,
                                                      backend=backend))


def call_rotated_nms_batched(form, backend):
    g = _generator(8)
    boxes = [torch.cat([torch.rand(n, 2, generator=g) * 3, torch.rand(n, 3, generator=g) + 0.5], 1).to(DEVICE)
             for n in (6, 0, 3)]
    scores = [torch.rand(n, generator=g).to(DEVICE) for n in (6, 0, 3)]
    (b, counts), (s, _) = _form(boxes, form), _form(scores, form)
    return lambda: tuple(gaussdraw.rotated_nms_batched(b, s, [0.1, 0.5, 0.0], pre_max_size=5, post_max_size=4,
                                                       counts=counts, backend=backend))


def call_heatmap_peaks(form, backend):
    # distinct values: where equal scores straddle the k-th place, eager Triton (smallest indices) and the
    # compiled torch.topk may include different ones (heatmap_peaks' docstring)
    heat = torch.rand((2, 3, 9, 11), generator=_generator(6)).to(DEVICE)
    return lambda: (*gaussdraw.heatmap_peaks(heat, k=7, backend=backend),
                    *gaussdraw.heatmap_peaks(heat, k=5, kernel=1, per_class_k=4, backend=backend))


def call_focal_loss(form, backend):
    g = _generator(7)
    pred = (torch.rand(2, 3, 5, 6, generator=g) * 0.98 + 0.01).to(DEVICE)
    target = torch.rand(2, 3, 5, 6, generator=g).to(DEVICE)
    target[0, 1, 2, 3] = 1.0
    return lambda: (gaussdraw.gaussian_focal_loss(pred, target, backend=backend),
                    gaussdraw.gaussian_focal_loss(pred, target, reduction="none", backend=backend),
                    gaussdraw.gaussian_focal_loss_with_logits(torch.logit(pred), target, avg_factor="num_pos",
                                                              backend=backend))


def call_keypoint_heatmaps(form, backend):
    g = _generator(8)
    sizes = (2, 0, 1)
    keypoints = [(torch.rand(n, 3, 2, generator=g) * 12 - 1).to(DEVICE) for n in sizes]
    visible = [(torch.rand(n, 3, generator=g) > 0.2).float().to(DEVICE) for n in sizes]
    sigmas = [(torch.rand(n, generator=g) + 0.5).to(DEVICE) for n in sizes]
    (k, counts), (v, _), (s, _) = _form(keypoints, form), _form(visible, form), _form(sigmas, form)
    return lambda: (*gaussdraw.keypoint_heatmaps(k, v, (9, 7), s, counts=counts, backend=backend),
                    *gaussdraw.keypoint_heatmaps(k, v, (9, 7), 1.5, method="udp", counts=counts, backend=backend),
                    *gaussdraw.keypoint_heatmaps(k, v, (9, 7), 1.0, method="dark", counts=counts, backend=backend))


def call_keypoint_decode(form, backend):
    g = _generator(8)
    heat = torch.rand(2, 3, 9, 11, generator=g)
    heat[0, 1] = -heat[0, 1]  # no positive maximum: (-1, -1)
    heat = heat.to(DEVICE)
    return lambda: (*gaussdraw.keypoint_decode(heat, refine="dark", blur_kernel_size=5, backend=backend),
                    *gaussdraw.keypoint_decode(heat, refine="dark_udp", backend=backend),
                    *gaussdraw.keypoint_decode(heat, refine="shift", backend=backend))


def call_centernet_decode(form, backend):
    g = _generator(10)
    heat = torch.rand(2, 3, 7, 9, generator=g).to(DEVICE)
    wh, offset = (torch.rand(2, 2, 7, 9, generator=g) * 5).to(DEVICE), torch.rand(2, 2, 7, 9, generator=g).to(DEVICE)
    return lambda: tuple(gaussdraw.centernet_decode(heat, wh, offset, (28, 36), k=6, backend=backend))


def _centerpoint_heads(seed, classes=(1, 2), size=(6, 7)):
    g = _generator(seed)
    heads = []
    for count in classes:
        head = {"heatmap": torch.randn(2, count, *size, generator=g) * 2}
        for name, channels in (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)):
            head[name] = torch.randn(2, channels, *size, generator=g)
        heads.append({name: value.to(DEVICE) for name, value in head.items()})
    return heads


def call_centerpoint_decode(form, backend):
    heads = _centerpoint_heads(11)
    tasks = [dict(num_class=1, class_names=["car"]), dict(num_class=2, class_names=["truck", "bus"])]
    options = dict(point_cloud_range=[-4.0, -4.0, -3, 4, 4, 1], voxel_size=[0.25, 0.25, 4], out_size_factor=4,
                   post_center_range=[-5.0, -5.0, -5.0, 5.0, 5.0, 5.0], max_num=8, score_threshold=0.2,
                   min_radius=[1.0, 0.5], post_max_size=5, backend=backend)
    return lambda: (*gaussdraw.centerpoint_decode(heads, tasks, **options),
                    *gaussdraw.centerpoint_decode(heads, tasks, nms="none", **options))


# name -> (call, forms, implementations it runs, eager Triton helpers beside them: (module, name))
OPS = {
    "draw_heatmap": (call_draw_heatmap, ["tensor"], [DRAW_GAUSSIANS], [(draw, "launch")]),
    "draw_heatmap_batched": (call_draw_heatmap_batched, ["list", "ragged", "padded"], [DRAW_GAUSSIANS],
                             [(draw, "launch")]),
    "centernet_targets": (call_centernet_targets, ["list", "ragged", "padded"], [CENTERNET_TARGETS], []),
    "centerpoint_targets": (call_centerpoint_targets, ["list", "ragged", "padded"], [CENTERPOINT_TARGETS], []),
    "circle_nms_batched": (call_circle_nms_batched, ["list", "ragged", "padded"], [CIRCLE_NMS],
                           [(decode_nms, "circle_nms_sorted_triton")]),
    "rotated_nms_batched": (call_rotated_nms_batched, ["list", "ragged", "padded"], [ROTATED_NMS], []),
    "heatmap_peaks": (call_heatmap_peaks, ["tensor"], [LOCAL_MAXIMUM],
                      [(decode_peaks, "peaks_triton"), (decode_peaks, "class_peaks_triton"),
                       (decode_peaks, "order_peaks_triton")]),
    "keypoint_heatmaps": (call_keypoint_heatmaps, ["list", "ragged", "padded"], [KEYPOINT_HEATMAPS], []),
    "centernet_decode": (call_centernet_decode, ["tensor"], [LOCAL_MAXIMUM, CENTERNET_BOXES],
                         [(decode_peaks, "peaks_triton"), (decode_peaks, "order_peaks_triton")]),
    "centerpoint_decode": (call_centerpoint_decode, ["tensor"], [CENTERPOINT_CANDIDATES, CIRCLE_NMS, CENTERPOINT_MERGE],
                           [(decode_peaks, "peaks_triton"), (decode_peaks, "class_peaks_triton"),
                            (decode_peaks, "order_peaks_triton"), (decode_centerpoint, "centerpoint_tasks_triton"),
                            (decode_centerpoint, "circle_nms_sorted_triton"),
                            (decode_centerpoint_plans, "centerpoint_tasks_triton"),  # the path that may plan
                            (decode_centerpoint_plans, "circle_nms_sorted_triton")]),
    "gaussian_focal_loss": (call_focal_loss, ["tensor"], [FOCAL_LOSS_FORWARD, FOCAL_LOSS_BACKWARD],
                            [(loss, "focal_loss_triton")]),
    "keypoint_decode": (call_keypoint_decode, ["tensor"], [KEYPOINT_DECODE], []),
}
CASES = [(name, form) for name, (_, forms, _, _) in OPS.items() for form in forms]
CASE_IDS = [f"{name}-{form}" for name, form in CASES]


def _spy(monkeypatch, owner, attribute, calls, kind):
    original = getattr(owner, attribute)

    def spy(*args, **kwargs):
        calls.append(kind)
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, attribute, spy)


BACKENDS = ["torch"] + (["triton"] if TRITON_RUNS else [])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(OPS))
def test_backend_is_honoured(name, backend, compiled, monkeypatch):
    call, forms, implementations, helpers = OPS[name]
    calls = []
    for implementation in implementations:
        _spy(monkeypatch, implementation, "torch", calls, "torch")
        _spy(monkeypatch, implementation, "triton", calls, "triton")
    for module, attribute in helpers:
        _spy(monkeypatch, module, attribute, calls, "triton")
    run = call(forms[0], backend)
    if compiled:
        torch._dynamo.reset()
        run = torch.compile(run, fullgraph=True, backend="aot_eager")
    outputs = run()
    if name == "gaussian_focal_loss":  # the backward too
        calls.clear()
        pred = torch.rand(4, 5, device=DEVICE).clamp(0.01, 0.99).requires_grad_()
        step = (lambda p: gaussdraw.gaussian_focal_loss(p, torch.rand(4, 5, device=DEVICE), backend=backend))
        step = torch.compile(step, fullgraph=True, backend="aot_eager") if compiled else step
        step(pred).backward()
        assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert outputs and calls, f"{name} ran none of its implementations"
    other = "triton" if backend == "torch" else "torch"
    assert other not in calls, f"{name}(backend={backend!r}) ran {other}: {calls}"


@pytest.mark.parametrize("name,form", CASES, ids=CASE_IDS)
def test_compiled_fullgraph_matches_eager(name, form):
    call = OPS[name][0]
    expected = call(form, "auto")()
    torch._dynamo.reset()
    actual = torch.compile(call(form, "auto"), fullgraph=True, backend="aot_eager")()
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a.is_floating_point():
            assert_close(a, e, 1e-6, f"{name}[{i}]:")
        else:
            assert torch.equal(a, e), f"{name}[{i}]: {a} != {e}"
    assert any(e.double().clamp(min=0).sum() > 0 for e in expected), "all zeros (or -1 padding): a weak test"


# ----------------------------------------------------------------------------
# a whole CenterPoint-style training step
# ----------------------------------------------------------------------------


class _Head(torch.nn.Module):
    """A tiny CenterPoint-like head of two tasks: heatmap logits and 10 regression channels each."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.shared = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.heads = torch.nn.ModuleList([torch.nn.Conv2d(8, classes + 10, 1) for classes in (1, 2)])

    def forward(self, features):
        shared = torch.relu(self.shared(features))
        return [head(shared) for head in self.heads]


def _training_step(head, features, boxes, labels):
    targets = gaussdraw.centerpoint_targets(boxes, labels, [1, 2], **CENTERPOINT)
    total = features.new_zeros(())
    for task, output in enumerate(head(features)):
        classes = targets.heatmaps[task].shape[1]
        heat_loss = gaussdraw.gaussian_focal_loss_with_logits(output[:, :classes], targets.heatmaps[task],
                                                              avg_factor="num_pos")
        regression = output[:, classes:].flatten(2).transpose(1, 2)  # (B, H * W, 10)
        index = targets.inds[task].unsqueeze(-1).expand(-1, -1, regression.shape[-1])
        predicted = regression.gather(1, index)
        mask = targets.masks[task].unsqueeze(-1).float()
        l1 = (torch.abs(predicted - targets.anno_boxes[task]) * mask).sum() / (mask.sum() * 10 + 1e-4)
        total = total + heat_loss + 0.25 * l1
    return total


def test_compiled_centerpoint_training_step_matches_eager():
    features = torch.randn(3, 4, 16, 16, generator=_generator(8)).to(DEVICE)
    boxes, labels = _boxes3d(9, sizes=(5, 0, 3))
    eager_head, compiled_head = _Head().to(DEVICE), _Head().to(DEVICE)
    expected = _training_step(eager_head, features, boxes, labels)
    expected.backward()
    torch._dynamo.reset()
    actual = torch.compile(_training_step, fullgraph=True)(compiled_head, features, boxes, labels)
    actual.backward()  # through the compiled backward graph
    assert_close(actual, expected, 1e-5, "loss:")
    for (name, eager), compiled in zip(eager_head.named_parameters(), compiled_head.parameters()):
        assert_close(compiled.grad, eager.grad, 1e-5, f"grad of {name}:")
    assert expected.item() > 0


def test_route_is_the_one_rule(monkeypatch):
    from gaussdraw.dispatch import Route, route
    from gaussdraw.ops import _triton

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 1)
    assert route("torch", cuda) == Route(False, False) and route("auto", cpu) == Route(False, False)
    assert route("auto", cuda) == Route(HAVE_TRITON, False)
    with pytest.raises(ValueError, match="backend must be one of"):
        route("cuda", cpu)
    monkeypatch.setattr(_triton, "HAVE_TRITON", False)
    with pytest.raises(RuntimeError, match="needs the 'triton' package"):
        route("triton", cuda)  # one clear error before any path, eager fast paths included
