"""Repeated target calls (gaussdraw.targets.plans): a plan serves only calls of its own layout,
options and backend, and gives the values of an unplanned call.

The CUDA direct launch is stood in for on CPU tensors: Triton's launch compiles nothing here
(the interpreter runs the kernel) and returns a compiled kernel whose launcher runs the
interpreter again with the arguments it is given, in the kernel's order; so a plan's relaunches
compute real values, checked against the torch backend.
"""

from __future__ import annotations

import pytest
import torch

import gaussdraw
from gaussdraw.ops import centernet_targets as centernet_op
from gaussdraw.ops import centerpoint_targets as centerpoint_op
from gaussdraw.ops._triton import HAVE_TRITON, interpreting
from gaussdraw.ragged import Ragged
from gaussdraw.targets import plans

from .helpers import assert_close, plans_served

CENTERPOINT = dict(point_cloud_range=[-4.0, -4.0, -5.0, 4.0, 4.0, 3.0], voxel_size=[0.5, 0.5, 0.2],
                   grid_size=[16, 16, 40], out_size_factor=2, max_objs=4)
TASKS = [["car"], ["truck", "bus"]]
# the stand-in runs the kernels on CPU tensors: Triton's interpreter (a GPU run has the real direct launch,
# tests/test_targets_gpu.py)
pytestmark = pytest.mark.skipif(not (HAVE_TRITON and interpreting()), reason="needs Triton's interpreter")


@pytest.fixture
def served(monkeypatch):
    """The plans that served a call, one entry per call (:func:`tests.helpers.plans_served`)."""
    return plans_served(monkeypatch, centernet_op.CenterNetPlan, centerpoint_op.CenterPointPlan)


def _centernet_inputs(seed, samples=2, boxes=3, dtype=torch.float32, label_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(samples, boxes, 2, generator=g) * 40
    box = torch.cat([corner, corner + 4 + torch.rand(samples, boxes, 2, generator=g) * 20], -1).to(dtype)
    labels = torch.randint(0, 3, (samples, boxes), generator=g).to(label_dtype)
    counts = torch.randint(0, boxes + 1, (samples,), generator=g)
    return box, labels, counts


def _centerpoint_inputs(seed, samples=2, boxes=5, columns=9):
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(samples, boxes, 2, generator=g) * 2 - 1) * 3.5
    rest = torch.rand(samples, boxes, columns - 2, generator=g) + 0.5
    labels = torch.randint(0, 3, (samples, boxes), generator=g)
    counts = torch.randint(0, boxes + 1, (samples,), generator=g)
    return torch.cat([xy, rest], -1), labels, counts


def _centernet(inputs, backend="triton", validate=False, **options):
    box, labels, counts = inputs
    options = dict(dict(num_classes=3, feat_size=(8, 10), img_size=(64, 64)), **options)
    return gaussdraw.centernet_targets(box, labels, **options, counts=counts, backend=backend, validate=validate)


def _centerpoint(inputs, backend="triton", validate=False, tasks=TASKS, **options):
    box, labels, counts = inputs
    return gaussdraw.centerpoint_targets(box, labels, tasks, **dict(CENTERPOINT, **options), counts=counts,
                                         backend=backend, validate=validate)


def _tensors(targets) -> list:
    return [t for field in targets for t in ([field] if isinstance(field, torch.Tensor) else field)]


def _same(ours, expected):
    ours, expected = _tensors(ours), _tensors(expected)
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_close(a, b, atol=1e-6)


@pytest.mark.parametrize("head", ["centernet", "centerpoint"])
def test_a_repeated_call_is_served_by_its_plan_with_new_values(served, head):
    call, inputs = (_centernet, _centernet_inputs) if head == "centernet" else (_centerpoint, _centerpoint_inputs)
    call(inputs(0))  # compiles (Triton's launch)
    call(inputs(1))  # direct launches: planned
    assert len(plans.PLANS) == 1 and not served
    for seed in (2, 3):
        ours = call(inputs(seed))
        assert len(served) == seed - 1
        _same(ours, call(inputs(seed), backend="torch"))
    # outputs are fresh tensors on every call
    again = call(inputs(3))
    assert _tensors(again)[0].data_ptr() != _tensors(ours)[0].data_ptr()


CENTERNET_CHANGES = {
    "more boxes": dict(inputs=dict(boxes=4)),
    "more samples": dict(inputs=dict(samples=3)),
    "float64 boxes": dict(inputs=dict(dtype=torch.float64)),
    "int32 labels": dict(inputs=dict(label_dtype=torch.int32)),
    "num_classes": dict(options=dict(num_classes=4)),
    "feat_size": dict(options=dict(feat_size=(10, 8))),
    "img_size": dict(options=dict(img_size=(32, 64))),
    "min_overlap": dict(options=dict(min_overlap=0.5)),
    "backend": dict(backend="auto"),
}


@pytest.mark.parametrize("change", CENTERNET_CHANGES)
def test_a_centernet_plan_never_serves_another_layout_or_option(served, change):
    what = CENTERNET_CHANGES[change]
    for seed in (0, 1):
        _centernet(_centernet_inputs(seed))
    planned = dict(plans.PLANS)
    inputs = _centernet_inputs(5, **what.get("inputs", {}))
    options = what.get("options", {})
    ours = _centernet(inputs, backend=what.get("backend", "triton"), **options)
    assert not served  # the first call of the new layout takes the checked path
    assert set(plans.PLANS) >= set(planned)
    _same(ours, _centernet(inputs, backend="torch", **options))


CENTERPOINT_CHANGES = {
    "7 columns": dict(inputs=dict(columns=7)),
    "more boxes": dict(inputs=dict(boxes=6)),
    "tasks": dict(options=dict(tasks=[["car", "truck"], ["bus"]])),
    "max_objs": dict(options=dict(max_objs=3)),
    "norm_bbox": dict(options=dict(norm_bbox=False)),
    "min_radius": dict(options=dict(min_radius=0)),
    "grid_size": dict(options=dict(grid_size=[16, 12, 40])),
    "voxel_size": dict(options=dict(voxel_size=[0.4, 0.5, 0.2])),
}


@pytest.mark.parametrize("change", CENTERPOINT_CHANGES)
def test_a_centerpoint_plan_never_serves_another_layout_or_option(served, change):
    what = CENTERPOINT_CHANGES[change]
    for seed in (0, 1):
        _centerpoint(_centerpoint_inputs(seed))
    inputs = _centerpoint_inputs(5, **what.get("inputs", {}))
    ours = _centerpoint(inputs, **what.get("options", {}))
    assert not served
    _same(ours, _centerpoint(inputs, backend="torch", **what.get("options", {})))


def test_an_option_list_changed_in_place_is_not_served_by_the_old_plan(served):
    voxel = [0.5, 0.5, 0.2]
    for seed in (0, 1):
        _centerpoint(_centerpoint_inputs(seed), voxel_size=voxel)
    voxel[0] = 0.25
    inputs = _centerpoint_inputs(2)
    ours = _centerpoint(inputs, voxel_size=voxel)
    assert not served
    _same(ours, _centerpoint(inputs, backend="torch", voxel_size=voxel))


def test_strides_forms_and_counts_are_part_of_the_layout(served):
    box, labels, counts = _centernet_inputs(0, boxes=4)
    for _ in range(2):
        _centernet((box, labels, counts))
    # a non-contiguous view of the boxes, the ragged form, int32 counts: each its own layout
    wide = torch.cat([box, box], -1)
    variants = [(wide[..., :4], labels, counts), (box, labels, counts.int())]
    for inputs in variants:
        ours = _centernet(inputs)
        _same(ours, _centernet(inputs, backend="torch"))
    assert not served
    ragged_box, ragged_labels = Ragged(box, counts), Ragged(labels, counts)
    for _ in range(3):
        ours = gaussdraw.centernet_targets(ragged_box, ragged_labels, 3, (8, 10), (64, 64), backend="triton",
                                           validate=False)
    assert len(served) == 2  # the ragged form's own plan (made by its first call)
    _same(ours, _centernet((box, labels, counts), backend="torch"))


def test_checked_list_and_cut_calls_take_the_checked_path(served):
    box, labels, counts = _centernet_inputs(0)
    for _ in range(2):
        _centernet((box, labels, counts))
    # validation on: the values are checked, even where a plan exists for the layout
    bad = labels.clone()
    bad[0, 0], counts_all = 7, torch.full_like(counts, labels.shape[1])
    with pytest.raises(ValueError, match="labels must be in"):
        _centernet((box, bad, counts_all), validate=True)
    with pytest.raises(ValueError, match="labels must be in"):
        _centernet((box, bad, counts_all), validate=None)  # the CPU default checks
    # lists are padded anew; labels longer than the boxes are cut: neither is planned
    lists = ([b[:n] for b, n in zip(box, counts.tolist())], [t[:n] for t, n in zip(labels, counts.tolist())])
    for _ in range(3):
        ours = gaussdraw.centernet_targets(*lists, 3, (8, 10), (64, 64), backend="triton", validate=False)
        _same(ours, _centernet((box, labels, counts), backend="torch"))
        longer = torch.cat([labels, labels], 1)
        _same(_centernet((box, longer, counts)), _centernet((box, labels, counts), backend="torch"))
    assert not served


def test_no_plan_without_the_direct_launch():
    """In the interpreter (the real launch path on the CPU) no launch is direct: nothing is planned."""
    before = dict(plans.PLANS)
    for seed in (0, 1, 2):
        _centernet(_centernet_inputs(seed))
        _centerpoint(_centerpoint_inputs(seed))
    assert plans.PLANS == before


def test_the_key_tells_devices_apart(monkeypatch):
    monkeypatch.setattr(plans, "PLANS", {})
    box, labels, counts = _centernet_inputs(0)
    keys = [plans.plan_key((3,), "triton", False, (b, labels), counts) for b in (box, box.to("meta"))]
    assert None not in keys and keys[0] != keys[1]
    assert plans.plan_key((3,), "triton", True, (box, labels), counts) is None
    assert plans.plan_key((3,), "triton", None, (box, labels), counts) is None  # CPU: checked by default
    assert plans.plan_key((3,), "triton", False, ([box[0]], labels), counts) is None
    unhashable = plans.plan_key(([3],), "triton", False, (box, labels), counts)  # options of a list
    plans.remember(unhashable, object())
    assert plans.planned(unhashable) is None
