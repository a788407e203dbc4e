"""Whole-head decoding against mmdet's and mmdet3d's own code: ``centernet_decode`` against
``CenterNetHead._decode_heatmap``, ``centerpoint_decode`` against ``CenterHead.predict_by_feat``
(circle NMS without numba, rotated NMS with a float64 polygon-IoU stand-in for mmcv's
``nms_rotated``), on every backend, with random head outputs."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussdraw import centernet_decode, centernet_rescale, centerpoint_decode
from gaussdraw.reference.head_decode import nms_rotated_reference

from .helpers import assert_close, raises_text
from .oracles import mmdet3d_centerpoint_predict, mmdet_centernet_decode_heatmap

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HAVE_ROTATED_NMS = importlib.util.find_spec("gaussdraw.decode.rotated_nms") is not None
CHANNELS = [("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)]
RANGE = dict(point_cloud_range=[-8.0, -6.4, -5.0, 8.0, 6.4, 3.0], voxel_size=[0.2, 0.2, 8], out_size_factor=4)


def _heads(seed, batch, classes, height, width, velocity=True, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    heads = []
    for count in classes:
        head = {"heatmap": torch.randn(batch, count, height, width, generator=g, dtype=torch.float64) * 2}
        for name, channels in CHANNELS if velocity else CHANNELS[:-1]:
            head[name] = torch.randn(batch, channels, height, width, generator=g, dtype=torch.float64)
        heads.append({name: value.to(dtype) for name, value in head.items()})
    return heads


@st.composite
def centerpoint_cases(draw):
    classes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    height, width = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    return dict(seed=draw(st.integers(0, 2**16)), batch=draw(st.integers(1, 2)), classes=classes,
                height=height, width=width, max_num=draw(st.integers(1, min(height * width, 30))),
                velocity=draw(st.booleans()), norm_bbox=draw(st.booleans()),
                score_threshold=draw(st.sampled_from([0.0, 0.1, 0.5, 0.9999])),
                post_center_range=draw(st.sampled_from([[-10.0, -10.0, -10.0, 10.0, 10.0, 10.0],
                                                         [-5.0, -4.0, -1.0, 6.0, 4.5, 1.5]])),
                min_radius=draw(st.lists(st.sampled_from([0.5, 1.0, 4.0, 12.0]), min_size=len(classes),
                                         max_size=len(classes))),
                post_max_size=draw(st.sampled_from([1, 4, 83])))


def _oracle(heads, tasks, case, nms):
    """mmdet3d's predict_by_feat on ``heads``: lists over samples of (boxes, scores, labels). Without NMS:
    circle NMS that suppresses nothing (a negative radius) and keeps everything."""
    none = nms in ("none", None)
    test_cfg = dict(nms_type="circle" if none else nms, score_threshold=case["score_threshold"],
                    min_radius=[-1.0] * len(tasks) if none else case["min_radius"],
                    post_max_size=case["max_num"] if none else case["post_max_size"],
                    post_center_limit_range=case["post_center_range"], nms_thr=case.get("nms_thr", 0.2),
                    pre_max_size=case.get("pre_max_size", 1000))
    coder = dict(max_num=case["max_num"], out_size_factor=RANGE["out_size_factor"], voxel_size=RANGE["voxel_size"],
                 pc_range=RANGE["point_cloud_range"], post_center_range=case["post_center_range"],
                 score_threshold=case["score_threshold"], code_size=9 if case["velocity"] else 7)
    run = mmdet3d_centerpoint_predict(nms_rotated_reference)
    return run([[{k: v.float() if v.dtype == torch.float16 else v for k, v in h.items()}] for h in heads], tasks,
               test_cfg, coder, case["norm_bbox"])


def _ours(heads, tasks, case, nms, device, backend):
    return centerpoint_decode([{k: v.to(device) for k, v in h.items()} for h in heads], tasks, **RANGE,
                              post_center_range=case["post_center_range"], max_num=case["max_num"],
                              score_threshold=case["score_threshold"], nms=nms, min_radius=case["min_radius"],
                              nms_thr=case.get("nms_thr", 0.2), pre_max_size=case.get("pre_max_size", 1000),
                              post_max_size=case["post_max_size"], norm_bbox=case["norm_bbox"], backend=backend)


def _compare(ours, expected, columns):
    """Every sample's rows equal mmdet3d's (scores and boxes to an ulp of sigmoid/atan2/exp, which differ
    between vectorized and scalar CPU loops), the padding zeros and -1."""
    ours = type(ours)(*(t.cpu() for t in ours))
    assert ours.boxes.shape[-1] == columns and ours.labels.dtype == torch.int64
    for b, (boxes, scores, labels) in enumerate(expected):
        count = int(ours.counts[b])
        assert count == len(scores), f"sample {b}: {count} boxes, mmdet3d {len(scores)}"
        # torch's CPU sigmoid (vectorized body, scalar tail) may differ by an ulp where the map is laid out
        # differently; on a GPU it is one function per element
        assert_close(ours.scores[b, :count], scores, 2.5e-7, f"sample {b} scores:")
        assert torch.equal(ours.labels[b, :count], labels.long()), f"sample {b} labels"
        scale = boxes.abs().amax().item() if count else 1.0
        assert_close(ours.boxes[b, :count], boxes, 4e-7 * max(scale, 1.0), f"sample {b} boxes:")
        assert not ours.boxes[b, count:].any() and not ours.scores[b, count:].any()
        assert (ours.labels[b, count:] == -1).all()


def _tasks(classes):
    return [dict(num_class=c, class_names=[f"class{t}_{i}" for i in range(c)]) for t, c in enumerate(classes)]


@SETTINGS
@given(case=centerpoint_cases(), nms=st.sampled_from(["circle", "none"]), dtype=st.sampled_from([torch.float32,
                                                                                                torch.float64]))
def test_centerpoint_matches_mmdet3d(device_backend, case, nms, dtype):
    device, backend = device_backend
    heads = _heads(case["seed"], case["batch"], case["classes"], case["height"], case["width"], case["velocity"],
                   dtype)
    tasks = _tasks(case["classes"])
    expected = _oracle(heads, tasks, case, nms)
    ours = _ours(heads, tasks, case, nms, device, backend)
    _compare(ours, expected, 9 if case["velocity"] else 7)


@pytest.mark.skipif(not HAVE_ROTATED_NMS, reason="gaussdraw.decode.rotated_nms is not there yet")
@SETTINGS
@given(case=centerpoint_cases(), nms_thr=st.sampled_from([0.05, 0.2, 0.5]), pre_max_size=st.sampled_from([2, 1000]))
def test_centerpoint_rotate_matches_mmdet3d(device_backend, case, nms_thr, pre_max_size):
    device, backend = device_backend
    # a positive threshold: with none, mmdet3d's get_task_detections squeezes a lone candidate to 0-d and fails
    case = dict(case, nms_thr=nms_thr, pre_max_size=pre_max_size, score_threshold=case["score_threshold"] or 0.1)
    heads = _heads(case["seed"], case["batch"], case["classes"], case["height"], case["width"], case["velocity"])
    tasks = _tasks(case["classes"])
    _compare(_ours(heads, tasks, case, "rotate", device, backend), _oracle(heads, tasks, case, "rotate"),
             9 if case["velocity"] else 7)


def test_centerpoint_nuscenes_layout_and_preds_dicts_form(device_backend):
    """Six tasks of nuScenes' layout, in mmdet3d's own preds_dicts form, the tasks as in its config."""
    device, backend = device_backend
    classes = [1, 2, 2, 1, 2, 2]
    case = dict(max_num=40, velocity=True, norm_bbox=True, score_threshold=0.1, post_max_size=20,
                post_center_range=[-10.0, -10.0, -10.0, 10.0, 10.0, 10.0], min_radius=[4, 12, 10, 1, 0.85, 0.175])
    heads = _heads(3, 2, classes, 16, 16)
    tasks = _tasks(classes)
    expected = _oracle(heads, tasks, case, "circle")
    preds_dicts = tuple([{k: v.to(device) for k, v in h.items()}] for h in heads)
    ours = centerpoint_decode(preds_dicts, tasks, **RANGE, post_center_range=case["post_center_range"],
                              max_num=40, min_radius=case["min_radius"], post_max_size=20, backend=backend)
    assert ours.boxes.shape == (2, 6 * 20, 9)
    assert (ours.counts > 20).all()  # a test with boxes of many tasks
    _compare(ours, expected, 9)


def test_centerpoint_no_box_passes(device_backend):
    device, backend = device_backend
    heads = _heads(5, 2, [1, 2], 6, 7)
    for head in heads:
        head["heatmap"] = head["heatmap"] - 30.0  # every sigmoid below the threshold
    case = dict(max_num=10, velocity=True, norm_bbox=True, score_threshold=0.1, post_max_size=5,
                post_center_range=[-10.0, -10.0, -10.0, 10.0, 10.0, 10.0], min_radius=[1.0, 1.0])
    ours = _ours(heads, _tasks([1, 2]), case, "circle", device, backend)
    assert ours.counts.tolist() == [0, 0] and ours.boxes.shape == (2, 10, 9)
    assert (ours.labels == -1).all() and not ours.boxes.any()


def test_centerpoint_nan_logits_give_no_box(device_backend):
    """NaN logits take top-k places (as torch.topk ranks NaN first) and fail the score threshold."""
    device, backend = device_backend
    heads = _heads(6, 1, [2], 5, 5)
    case = dict(max_num=6, velocity=True, norm_bbox=True, score_threshold=0.1, post_max_size=83,
                post_center_range=[-10.0, -10.0, -10.0, 10.0, 10.0, 10.0], min_radius=[0.1])
    heads[0]["heatmap"][0, 1, 2, 3] = float("nan")
    ours = _ours(heads, _tasks([2]), case, "none", device, backend)
    count = int(ours.counts[0])
    assert not ours.scores[0, :count].isnan().any() and count <= 5


def _bad_call(heads=None, tasks=None, **options):
    heads = heads if heads is not None else _heads(0, 2, [1, 2], 5, 5)
    arguments = dict(RANGE, post_center_range=[-10.0, -10.0, -10.0, 10.0, 10.0, 10.0], max_num=4,
                     min_radius=[1.0, 1.0])
    arguments.update(options)
    return lambda: centerpoint_decode(heads, tasks if tasks is not None else _tasks([1, 2]), **arguments)


def test_centerpoint_bad_inputs():
    heads = _heads(0, 2, [1, 2], 5, 5)
    with raises_text(ValueError, "nms must be 'circle', 'rotate', 'none' or None; got 'soft'"):
        _bad_call(nms="soft")()
    with raises_text(ValueError, "min_radius must be a list of 2 numbers"):
        _bad_call(min_radius=[1.0])()
    with raises_text(ValueError, "max_num must be an integer in [1, H * W = 25]"):
        _bad_call(max_num=26)()
    with raises_text(ValueError, "tasks must be a list of 2 dicts"):
        _bad_call(tasks=_tasks([1]))()
    wrong = [dict(heads[0]), dict(heads[1])]
    wrong[1]["heatmap"] = wrong[1]["heatmap"][:1]
    with raises_text(ValueError, "preds[1]['heatmap'] must have shape (2, 2, 5, 5); got (1, 2, 5, 5)"):
        _bad_call(heads=wrong)()
    wrong = [dict(heads[0]), dict(heads[1])]
    wrong[0]["dim"] = wrong[0]["dim"][:, :2]
    with raises_text(ValueError, "preds[0]['dim'] must have shape (2, 3, 5, 5)"):
        _bad_call(heads=wrong)()
    wrong = [dict(heads[0]), dict(heads[1])]
    del wrong[1]["vel"]
    with raises_text(ValueError, "preds[1] lacks 'vel'"):
        _bad_call(heads=wrong)()
    with raises_text(ValueError, "tasks[1]: num_class 2 but 1 class_names"):
        _bad_call(tasks=[dict(num_class=1, class_names=["a"]), dict(num_class=2, class_names=["b"])])()
    with raises_text(TypeError, "preds must be a non-empty list over tasks"):
        _bad_call(heads={})()


def _stand_in_rotated_nms(boxes, scores, thresh, *, pre_max_size=None, post_max_size=None, counts=None,
                          backend="auto", validate=None):
    """The agreed ``rotated_nms_batched`` interface, one problem at a time with the float64 reference
    (mmdet3d's ``nms_bev``: the ``pre_max_size`` best, NMS, the first ``post_max_size``)."""
    from gaussdraw import KeptBoxes

    rows = []
    for s in range(boxes.shape[0]):
        n = int(counts[s])
        order = torch.sort(scores[s, :n], descending=True, stable=True).indices[:pre_max_size]
        keep = order[nms_rotated_reference(boxes[s, order].cpu(), scores[s, order].cpu(), thresh)[1].to(order.device)]
        rows.append(keep[:post_max_size])
    width = max([len(r) for r in rows] + [1])
    indices = torch.full((boxes.shape[0], width), -1, dtype=torch.long, device=boxes.device)
    for s, row in enumerate(rows):
        indices[s, : len(row)] = row
    return KeptBoxes(indices, torch.tensor([len(r) for r in rows], device=boxes.device))


@SETTINGS
@given(case=centerpoint_cases(), nms_thr=st.sampled_from([0.05, 0.2, 0.5]), pre_max_size=st.sampled_from([2, 1000]))
def test_centerpoint_rotate_glue_with_a_stand_in(device_backend, case, nms_thr, pre_max_size, monkeypatch):
    """The rotate path's own part (bev boxes as nms_bev rebuilds them, compaction, merge) with a stand-in
    for ``rotated_nms_batched`` (runs whether or not gaussdraw.decode.rotated_nms exists)."""
    import types

    monkeypatch.setitem(__import__("sys").modules, "gaussdraw.decode.rotated_nms",
                        types.SimpleNamespace(rotated_nms_batched=_stand_in_rotated_nms))
    device, backend = device_backend
    # a positive threshold: with none, mmdet3d's get_task_detections squeezes a lone candidate to 0-d and fails
    case = dict(case, nms_thr=nms_thr, pre_max_size=pre_max_size, score_threshold=case["score_threshold"] or 0.1)
    heads = _heads(case["seed"], case["batch"], case["classes"], case["height"], case["width"], case["velocity"])
    tasks = _tasks(case["classes"])
    _compare(_ours(heads, tasks, case, "rotate", device, backend), _oracle(heads, tasks, case, "rotate"),
             9 if case["velocity"] else 7)


# ----------------------------------------------------------------------------
# CenterNet
# ----------------------------------------------------------------------------


@st.composite
def centernet_cases(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 11)), draw(st.integers(1, 13)))
    k = draw(st.integers(1, min(shape[1] * shape[2] * shape[3], 40)))
    img_shape = (draw(st.sampled_from([32, 37, 100])), draw(st.sampled_from([32, 53, 128])))
    return dict(seed=draw(st.integers(0, 2**16)), shape=shape, k=k, img_shape=img_shape,
                kernel=draw(st.sampled_from([1, 3, 5])))


def _centernet_inputs(case, dtype):
    g = torch.Generator().manual_seed(case["seed"])
    batch, classes, height, width = case["shape"]
    heat = torch.rand(case["shape"], generator=g)
    heat[torch.rand(case["shape"], generator=g) < 0.3] = 0.0  # zero-score peaks beyond the positive ones
    wh = torch.rand(batch, 2, height, width, generator=g) * 10
    offset = torch.rand(batch, 2, height, width, generator=g)
    return heat.to(dtype), wh.to(dtype), offset.to(dtype)


@SETTINGS
@given(case=centernet_cases(), dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]))
def test_centernet_matches_mmdet(device_backend, case, dtype):
    device, backend = device_backend
    heat, wh, offset = _centernet_inputs(case, dtype)
    bboxes, labels = mmdet_centernet_decode_heatmap()(heat, wh, offset, case["img_shape"], k=case["k"],
                                                      kernel=case["kernel"])
    ours = centernet_decode(heat.to(device), wh.to(device), offset.to(device), case["img_shape"], k=case["k"],
                            kernel=case["kernel"], backend=backend)
    ours = type(ours)(*(t.cpu() for t in ours))
    assert ours.bboxes.dtype == bboxes.dtype and ours.scores.dtype == dtype
    assert torch.equal(ours.scores.to(bboxes.dtype), bboxes[..., 4]), "scores"
    # the same detections; equal scores may come in another order (mmdet's top-k leaves it open)
    for b in range(heat.shape[0]):
        mine = sorted(zip(ours.scores[b].tolist(), ours.labels[b].tolist(), ours.bboxes[b].tolist()))
        theirs = sorted(zip(bboxes[b, :, 4].tolist(), labels[b].tolist(), bboxes[b, :, :4].tolist()))
        if all(s > 0 for s, _, _ in theirs):  # positive peaks: one set
            assert mine == theirs
        else:  # zero-score pixels: whichever the top-k takes; the positive ones agree
            assert [t for t in mine if t[0] > 0] == [t for t in theirs if t[0] > 0]


@given(case=centernet_cases())
@SETTINGS
def test_centernet_backends_and_reference_agree(device_backend, case):
    from gaussdraw.reference.head_decode import centernet_boxes_per_peak

    device, backend = device_backend
    heat, wh, offset = _centernet_inputs(case, torch.float32)
    ours = centernet_decode(heat.to(device), wh.to(device), offset.to(device), case["img_shape"], k=case["k"],
                            kernel=case["kernel"], backend=backend)
    torch_path = centernet_decode(heat, wh, offset, case["img_shape"], k=case["k"], kernel=case["kernel"],
                                  backend="torch")
    for a, e in zip(ours, torch_path):
        assert torch.equal(a.cpu(), e)
    boxes, scores, _ = centernet_boxes_per_peak(heat, wh, offset, case["img_shape"], case["k"], case["kernel"])
    assert torch.equal(ours.scores.cpu(), scores)
    positive = scores > 0  # the reference's order of zero-score pixels may differ
    assert torch.equal(ours.bboxes.cpu()[positive], boxes[positive])


def test_centernet_rescale_matches_predict_by_feat_single():
    bboxes = torch.rand(2, 5, 4) * 100
    border, scale = (12.0, 3.0, 7.0, 1.0), (1.5, 2.5)
    out = centernet_rescale(bboxes, border, scale)
    # mmdet: det_bboxes[..., :4] -= border[[2, 0, 2, 0]]; det_bboxes[..., :4] /= scale.repeat((1, 2))
    expected = (bboxes - torch.tensor(border)[[2, 0, 2, 0]]) / torch.tensor(scale).repeat((1, 2))
    assert torch.equal(out, expected)
    per_image = centernet_rescale(bboxes, [border, (0.0, 0.0, 0.0, 0.0)], [scale, (1.0, 1.0)])
    assert torch.equal(per_image[0], expected[0]) and torch.equal(per_image[1], bboxes[1])
    assert torch.equal(centernet_rescale(bboxes, border), bboxes - torch.tensor(border)[[2, 0, 2, 0]])


def test_centernet_bad_inputs():
    heat = torch.rand(2, 3, 6, 7)
    with raises_text(ValueError, "wh must have shape (2, 2, 6, 7); got (2, 2, 6, 6)"):
        centernet_decode(heat, torch.rand(2, 2, 6, 6), torch.rand(2, 2, 6, 7), (24, 28))
    with raises_text(ValueError, "img_shape must be (img_h, img_w)"):
        centernet_decode(heat, torch.rand(2, 2, 6, 7), torch.rand(2, 2, 6, 7), (24,))
    with raises_text(ValueError, "k must be at most 126"):
        centernet_decode(heat, torch.rand(2, 2, 6, 7), torch.rand(2, 2, 6, 7), (24, 28), k=127)


def test_centerpoint_merge_backends_agree(device_backend):
    """The merge op's Triton kernel writes what its torch gathers and scatters write, padding included."""
    from gaussdraw.ops.centerpoint_merge import CENTERPOINT_MERGE

    from .test_head_decode_gpu import _merge_inputs

    device, backend = device_backend
    for columns, seed in ((9, 0), (7, 1)):
        inputs = _merge_inputs(device, columns=columns, seed=seed)
        expected = CENTERPOINT_MERGE.torch(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in inputs))
        got = CENTERPOINT_MERGE.pick(backend == "triton")(*inputs)
        assert int(expected[3].sum()) > 0
        for a, e in zip(got, expected):
            assert torch.equal(a.cpu(), e)


@pytest.mark.parametrize("channels", [8, 10])
@pytest.mark.parametrize("with_range,threshold", [(True, 0.3), (False, float("nan")), (True, float("nan"))])
def test_centerpoint_candidates_backends_agree(device_backend, channels, with_range, threshold):
    """The candidates op's Triton kernel (mmdet3d's float32 operations, no fused multiply-adds) writes what
    mmdet3d's expressions give."""
    from gaussdraw.ops.centerpoint_candidates import CENTERPOINT_CANDIDATES

    from .test_head_decode_gpu import _candidate_inputs

    device, backend = device_backend
    inputs = _candidate_inputs(device, channels=channels, with_range=with_range, threshold=threshold)
    expected = CENTERPOINT_CANDIDATES.torch(*(t.cpu() if isinstance(t, torch.Tensor) else t for t in inputs))
    got = CENTERPOINT_CANDIDATES.pick(backend == "triton")(*inputs)
    assert 0 < int(expected[1].sum()) <= expected[1].numel() - (with_range or threshold == threshold)
    for a, e in zip(got, expected):
        assert torch.equal(a.cpu(), e)
