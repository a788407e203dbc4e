"""Repeated CenterPoint decodes (gaussdraw.decode.centerpoint_plans): a plan serves only calls of its own
layout, options and backend, and gives the values of an unplanned call (the torch backend's).

The CUDA direct launch is stood in for on CPU tensors (tests/helpers.py ``stand_in_direct_launch``):
a plan's relaunches run the kernels in Triton's interpreter on the new tensors.
"""

from __future__ import annotations

import pytest
import torch

import gaussdraw
from gaussdraw.decode.centerpoint_plans import CenterPointDecodePlan
from gaussdraw.ops._triton import HAVE_TRITON, interpreting
from gaussdraw.targets import plans

from .helpers import plans_served

pytestmark = pytest.mark.skipif(not (HAVE_TRITON and interpreting()), reason="needs Triton's interpreter")
CLASSES = [1, 2]
CHANNELS = [("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)]
OPTIONS = dict(point_cloud_range=[-8.0, -6.4, -5.0, 8.0, 6.4, 3.0], voxel_size=[0.4, 0.4, 8], out_size_factor=4,
               post_center_range=[-7.0, -6.0, -10.0, 7.0, 6.0, 10.0], max_num=10, score_threshold=0.2,
               min_radius=[4, 0.5], post_max_size=6)


@pytest.fixture
def served(monkeypatch):
    """The plans that served a call, one entry per call (:func:`tests.helpers.plans_served`)."""
    return plans_served(monkeypatch, CenterPointDecodePlan)


def _heads(seed, batch=2, size=(8, 8), classes=CLASSES, dtype=torch.float32, velocity=True, transposed=False):
    g = torch.Generator().manual_seed(seed)
    channels = CHANNELS if velocity else CHANNELS[:-1]
    heads = []
    for count in classes:
        head = {"heatmap": torch.randn(batch, count, *size, generator=g) * 2,
                **{name: torch.randn(batch, n, *size, generator=g) for name, n in channels}}
        head["reg"] = head["reg"].to(dtype)
        if transposed:  # the same shape, other strides
            head["heatmap"] = head["heatmap"].transpose(2, 3).contiguous().transpose(2, 3)
        heads.append(head)
    return heads


def _decode(preds, backend="triton", classes=CLASSES, **changes):
    options = dict(OPTIONS, **changes)
    tasks = options.pop("tasks", [dict(num_class=c) for c in classes])
    return gaussdraw.centerpoint_decode(preds, tasks, backend=backend, **options)


def _same(ours, expected):
    for name, a, b in zip(expected._fields, ours, expected):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0, msg=name)
    assert int(expected.counts.sum()) > 0  # something was decoded


def _planned(**changes):
    for seed in (0, 1):  # the first call compiles (Triton's launch), the second launches directly: planned
        _decode(_heads(seed), **changes)


@pytest.mark.parametrize("nms", ["circle", "none", None])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_repeated_call_is_served_by_its_plan_with_new_values(served, nms, wrapped):
    def preds(seed):
        return tuple([head] for head in _heads(seed)) if wrapped else _heads(seed)

    for seed in (0, 1):
        _decode(preds(seed), nms=nms)
    assert len(plans.PLANS) == 1 and not served
    for seed in (2, 3):
        ours = _decode(preds(seed), nms=nms)
        assert len(served) == seed - 1
        _same(ours, _decode(preds(seed), "torch", nms=nms))
    again = _decode(preds(3), nms=nms)  # outputs are fresh tensors on every call
    assert again.boxes.data_ptr() != ours.boxes.data_ptr()


HEAD_CHANGES = {
    "more samples": dict(batch=3),
    "another map": dict(size=(8, 10)),
    "float64 reg": dict(dtype=torch.float64),
    "strides": dict(transposed=True),
    "no velocity": dict(velocity=False),
}
OPTION_CHANGES = {
    "max_num": dict(max_num=8),
    "score_threshold": dict(score_threshold=0.3),
    "no threshold": dict(score_threshold=None),
    "nms": dict(nms=None),
    "min_radius": dict(min_radius=[1.0, 2.0]),
    "post_max_size": dict(post_max_size=5),
    "post_center_range": dict(post_center_range=[-6.0, -6.0, -10.0, 6.0, 6.0, 10.0]),
    "no post_center_range": dict(post_center_range=None),
    "point_cloud_range": dict(point_cloud_range=[-7.0, -6.4, -5.0, 8.0, 6.4, 3.0]),
    "voxel_size": dict(voxel_size=[0.4, 0.3, 8]),
    "out_size_factor": dict(out_size_factor=2),
    "norm_bbox": dict(norm_bbox=False),
    "tasks": dict(tasks=[dict(num_class=1, class_names=["car"]), dict(num_class=2)]),
}


@pytest.mark.parametrize("change", [*HEAD_CHANGES, *OPTION_CHANGES, "one task fewer", "backend"])
def test_a_plan_never_serves_another_layout_or_option(served, change):
    _planned()
    assert len(plans.PLANS) == 1
    heads, options, backend = _heads(5, **HEAD_CHANGES.get(change, {})), OPTION_CHANGES.get(change, {}), "triton"
    if change == "one task fewer":
        heads, options = heads[1:], dict(classes=CLASSES[1:], min_radius=[0.5])
    if change == "backend":
        backend = "auto"
    ours = _decode(heads, backend, **options)
    assert not served  # the first call of the new layout takes the checked path
    _same(ours, _decode(heads, "torch", **options))


def test_an_option_changed_in_place_is_not_served_by_the_old_plan(served):
    radius, tasks = [4, 0.5], [dict(num_class=1), dict(num_class=2)]
    for seed in (0, 1):
        _decode(_heads(seed), min_radius=radius, tasks=tasks)
    radius[1] = 3.0
    ours = _decode(_heads(2), min_radius=radius, tasks=tasks)
    assert not served
    _same(ours, _decode(_heads(2), "torch", min_radius=radius, tasks=tasks))
    tasks[1]["class_names"] = ["truck"]  # one name for two classes: the checked call raises
    with pytest.raises(ValueError, match="class_names"):
        _decode(_heads(3), min_radius=radius, tasks=tasks)


def test_rotated_nms_and_other_paths_are_not_planned(served):
    for seed in (0, 1, 2):
        _decode(_heads(seed), nms="rotate")
        _decode(_heads(seed), "torch")
        _decode(_heads(seed, dtype=torch.float64))
    assert not plans.PLANS and not served


def test_torch_compile_is_not_planned(served):
    _planned()
    compiled = torch.compile(lambda preds: _decode(preds), fullgraph=True, backend="eager")
    heads = _heads(4)
    ours = compiled(heads)
    assert not served
    _same(ours, _decode(heads, "torch"))


def test_no_plan_without_the_direct_launch():
    """In the interpreter (the real launch path on the CPU) no launch is direct: nothing is planned."""
    before = dict(plans.PLANS)
    for seed in (0, 1, 2):
        _decode(_heads(seed))
    assert plans.PLANS == before


def test_the_key_reads_dicts_and_lists_of_them():
    heads = _heads(0)
    key = plans.plan_key((1,), "triton", False, (heads,), None)
    assert key is not None and key == plans.plan_key((1,), "triton", False, (_heads(1),), None)
    wrapped = plans.plan_key((1,), "triton", False, (tuple([h] for h in heads),), None)
    assert wrapped is not None and wrapped != key
    renamed = [dict(heads[0]), heads[1]]
    renamed[0]["velocity"] = renamed[0].pop("vel")
    assert plans.plan_key((1,), "triton", False, (renamed,), None) != key
    assert plans.plan_key((1,), "triton", False, ([heads[0]["reg"]],), None) is None  # lists of tensors: padded
    assert plans.plan_key((1,), "triton", False, ([],), None) is None


def _one_element_in(tensor):
    """``tensor``'s values in a view 4 bytes into its storage (another 16-byte alignment)."""
    storage = torch.empty(tensor.numel() + 1, dtype=tensor.dtype)
    return storage[1:].view(tensor.shape).copy_(tensor)


def test_maps_at_another_offset_get_their_values(served):
    _planned()
    heads = _heads(6)
    for head in heads:  # the regression maps at another alignment: the plan serves them
        head["reg"], head["dim"] = _one_element_in(head["reg"]), _one_element_in(head["dim"])
    ours = _decode(heads)
    assert len(served) == 1 and len(plans.PLANS) == 1
    _same(ours, _decode(heads, "torch"))
    heads[1]["heatmap"] = _one_element_in(heads[1]["heatmap"])  # a heatmap's: the plan declines, checked path
    for _ in range(2):  # the top-k kernel's first launch for this alignment compiles, the second plans
        ours = _decode(heads)
        _same(ours, _decode(heads, "torch"))
    plan = next(iter(plans.PLANS.values()))
    assert plan.aligned == [True, False, False, False, False, False]  # the declined calls planned anew
    ours = _decode(heads)
    assert served[-1] is plan
    _same(ours, _decode(heads, "torch"))
