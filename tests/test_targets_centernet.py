"""centernet_targets: every backend and input form against mmdet's own CenterNetHead.get_targets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussdraw import Ragged, centernet_targets
from gaussdraw.reference import centernet_targets_per_box

from .helpers import assert_close
from .oracles import mmdet_centernet_get_targets

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FIELDS = ("center_heatmap_target", "wh_target", "offset_target", "wh_offset_target_weight")


@st.composite
def scenes(draw, max_boxes=8):
    """(num_classes, (H, W), (img_h, img_w), boxes list, labels list) of valid boxes: borders,
    zero-size boxes, shared center pixels (same and other classes), empty samples, odd sizes."""
    samples = draw(st.integers(1, 3))
    classes = draw(st.integers(1, 4))
    feat_h, feat_w = draw(st.integers(1, 21)), draw(st.integers(1, 23))
    stride = draw(st.sampled_from([1.0, 2.0, 4.0, 3.25]))
    img_h, img_w = feat_h * stride, feat_w * draw(st.sampled_from([stride, 1.75]))
    boxes, labels = [], []
    for _ in range(samples):
        count = draw(st.integers(0, max_boxes))
        rows = []
        for _ in range(count):
            kind = draw(st.sampled_from(["any", "any", "border", "point", "copy"]))
            if kind == "copy" and rows:
                rows.append(list(draw(st.sampled_from(rows))))
                continue
            x1 = draw(st.floats(0, img_w, width=32, allow_subnormal=False))
            y1 = draw(st.floats(0, img_h, width=32, allow_subnormal=False))
            x2 = draw(st.floats(x1, img_w, width=32, allow_subnormal=False))
            y2 = draw(st.floats(y1, img_h, width=32, allow_subnormal=False))
            if kind == "border":
                x1, y1 = 0.0, draw(st.sampled_from([0.0, y1]))
            if kind == "point":
                x2, y2 = x1, y1
            rows.append([x1, y1, x2, y2])
        box = torch.tensor(rows, dtype=torch.float32).reshape(count, 4)
        # a center at the far edge truncates to W: outside the map, which mmdet cannot index
        inside = ((box[:, 0] + box[:, 2]) * (feat_w / img_w) / 2 < feat_w) & (
            (box[:, 1] + box[:, 3]) * (feat_h / img_h) / 2 < feat_h)
        boxes.append(box[inside])
        labels.append(torch.tensor(draw(st.lists(st.integers(0, classes - 1), min_size=count, max_size=count)),
                                   dtype=torch.int64)[inside])
    return classes, (feat_h, feat_w), (img_h, img_w), boxes, labels


def _oracle(classes, feat, img, boxes, labels):
    result, avg_factor = mmdet_centernet_get_targets()(classes, boxes, labels, (len(boxes), classes, *feat), img)
    return result, float(avg_factor)


def _assert_matches(targets, expected, what=""):
    result, avg_factor = expected
    mine, mine_avg = targets.to_mmdet()
    for name in FIELDS:
        atol = 1e-6 if name == "center_heatmap_target" else 0.0  # heatmap: exp differs by an ulp
        assert mine[name].dtype == torch.float32
        assert_close(mine[name], result[name], atol, f"{what} {name}:")
    assert mine_avg.shape == () and mine_avg.item() == avg_factor, (mine_avg, avg_factor)


def _to(device, tensors):
    return [t.to(device) for t in tensors]


@SETTINGS
@given(scene=scenes())
def test_matches_mmdet(device_backend, scene):
    device, backend = device_backend
    classes, feat, img, boxes, labels = scene
    expected = _oracle(classes, feat, img, boxes, labels)
    targets = centernet_targets(_to(device, boxes), _to(device, labels), classes, feat, img, backend=backend)
    assert targets.heatmap.device.type == device
    _assert_matches(targets, expected, f"{device}-{backend}")


@SETTINGS
@given(scene=scenes(max_boxes=5), form=st.sampled_from(["ragged", "padded", "mixed"]))
def test_input_forms(device_backend, scene, form):
    """Ragged and padded forms give the list form's targets; padding is never read (NaN there)."""
    device, backend = device_backend
    classes, feat, img, boxes, labels = scene
    expected = _oracle(classes, feat, img, boxes, labels)
    padded_boxes = Ragged.from_list(boxes).tensor
    padded_boxes = torch.cat([padded_boxes, padded_boxes[:, :1]], 1)  # one more slot than any sample needs
    counts = torch.tensor([len(b) for b in boxes])
    in_use = torch.arange(padded_boxes.shape[1]) < counts[:, None]
    padded_boxes[~in_use] = float("nan")
    padded_labels = torch.full(padded_boxes.shape[:2], 99, dtype=torch.int32)
    for b, lab in enumerate(labels):
        padded_labels[b, : len(lab)] = lab
    padded_boxes, padded_labels, counts = _to(device, (padded_boxes, padded_labels, counts))
    if form == "ragged":
        args = dict(bboxes=Ragged(padded_boxes, counts), labels=Ragged(padded_labels, counts))
    elif form == "padded":
        args = dict(bboxes=padded_boxes, labels=padded_labels, counts=counts)
    else:
        args = dict(bboxes=Ragged(padded_boxes, counts), labels=_to(device, labels))
    targets = centernet_targets(**args, num_classes=classes, feat_size=feat, img_size=img, backend=backend)
    _assert_matches(targets, expected, form)


@SETTINGS
@given(scene=scenes(max_boxes=6), data=st.data())
def test_invalid_boxes_are_skipped_without_validation(device_backend, scene, data):
    """validate=False: boxes that mmdet cannot draw are skipped; the rest are mmdet's targets."""
    device, backend = device_backend
    classes, feat, img, boxes, labels = scene
    bad = [float("nan"), float("inf"), -float("inf")]
    dirty_boxes, dirty_labels = [], []
    for box, lab in zip(boxes, labels):
        kind = data.draw(st.sampled_from(["none", "nan", "reversed", "label", "outside", "huge"]))
        extra = {"none": None, "nan": [data.draw(st.sampled_from(bad)), 1.0, 2.0, 3.0],
                 "reversed": [5.0, 1.0, 2.0, 3.0], "outside": [-50.0, -40.0, -30.0, -20.0],
                 "label": [1.0, 1.0, 2.0, 2.0], "huge": [-3e19, -3e19, 3e19, 3e19]}[kind]
        if extra is None:
            dirty_boxes.append(box), dirty_labels.append(lab)
            continue
        at = data.draw(st.integers(0, len(box)))
        dirty_boxes.append(torch.cat([box[:at], torch.tensor([extra]), box[at:]]))
        label = torch.tensor([classes if kind == "label" else 0])
        dirty_labels.append(torch.cat([lab[:at], label, lab[at:]]))
    expected = _oracle(classes, feat, img, boxes, labels)
    targets = centernet_targets(_to(device, dirty_boxes), _to(device, dirty_labels), classes, feat, img,
                                backend=backend, validate=False)
    _assert_matches(targets, expected, "skipped")


@pytest.mark.parametrize("size", [2400.0, 5e4], ids=["r~540", "r~11000"])
def test_avg_factor_counts_every_one_for_large_radii(device_backend, size):
    """Radii >= 512 can round pixels beside a center to 1: then the ones are counted on the map."""
    device, backend = device_backend
    boxes = torch.tensor([[-size, -size, size + 12, size + 8], [1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]])
    labels = torch.tensor([0, 1, 1])
    targets = centernet_targets([boxes.to(device)], [labels.to(device)], 2, (10, 12), (10, 12), backend=backend)
    heatmap = targets.heatmap.cpu()
    assert targets.avg_factor.item() == max(1, int(heatmap.eq(1).sum()))
    assert heatmap[0, 0].eq(1).sum() >= 1
    if size > 1e4:  # sigma ~ 3700: the whole window rounds to 1
        assert heatmap[0, 0].eq(1).sum() > 1


def test_reference_loop_matches_mmdet():
    g = torch.Generator().manual_seed(3)
    boxes = [torch.rand(n, 2, generator=g).mul(60).repeat(1, 2) + torch.tensor([0, 0, 5.0, 9.0]) for n in (4, 0, 7)]
    labels = [torch.randint(0, 3, (len(b),), generator=g) for b in boxes]
    expected = _oracle(3, (20, 18), (80, 72), boxes, labels)
    result, avg_factor = centernet_targets_per_box(boxes, labels, 3, (20, 18), (80, 72))
    for name in FIELDS:
        assert_close(result[name], expected[0][name], 1e-6, name)
    assert float(avg_factor) == expected[1]


def test_deterministic_when_boxes_share_a_pixel(device_backend):
    device, backend = device_backend
    box = torch.tensor([[4.0, 4.0, 12.0, 12.0]])
    boxes = torch.cat([box, box + 0.2, box - 0.2, box * 1.01]).to(device)  # one center pixel, other sizes
    labels = torch.tensor([0, 1, 0, 2]).to(device)
    first = centernet_targets([boxes], [labels], 3, (8, 8), (16, 16), backend=backend)
    for _ in range(3):
        again = centernet_targets([boxes], [labels], 3, (8, 8), (16, 16), backend=backend)
        for a, b in zip(first, again):
            assert torch.equal(a, b)
    assert first.wh[0, :, 4, 4].tolist() == pytest.approx([8.08 / 2, 8.08 / 2], rel=1e-6)  # the last box wins


def test_empty_batch(device_backend):
    device, backend = device_backend
    targets = centernet_targets([torch.zeros(0, 4, device=device)] * 2, [torch.zeros(0, dtype=torch.long,
                                device=device)] * 2, 3, (5, 7), (20, 28), backend=backend)
    assert targets.heatmap.shape == (2, 3, 5, 7) and not targets.heatmap.any()
    assert targets.avg_factor.item() == 1.0


def T(x, **kw):  # noqa: N802 - short constructor for the table below
    return torch.tensor(x, **kw)


def _case(**override):
    args = dict(bboxes=[T([[1.0, 2.0, 9.0, 12.0], [3.0, 3.0, 5.0, 7.0]]), T([[0.0, 0.0, 4.0, 4.0]])],
                labels=[T([0, 2]), T([1])], num_classes=3, feat_size=(8, 10), img_size=(16, 20))
    args.update(override)
    return args


BAD = {
    "nan": (_case(bboxes=[T([[1.0, float("nan"), 9.0, 12.0], [3.0, 3.0, 5.0, 7.0]]), T([[0.0, 0.0, 4.0, 4.0]])]),
            ValueError, r"bboxes must be finite; got \[1.0, nan, 9.0, 12.0\] at sample 0, position 0"),
    "reversed": (_case(bboxes=[T([[1.0, 2.0, 9.0, 12.0], [3.0, 3.0, 5.0, 7.0]]), T([[4.0, 0.0, 0.0, 4.0]])]),
                 ValueError, r"x2 >= x1 and y2 >= y1; got \[4.0, 0.0, 0.0, 4.0\] at sample 1, position 0"),
    "label": (_case(labels=[T([0, 3]), T([1])]), ValueError,
              r"labels must be in \[0, 3\) for num_classes=3; got 3 at sample 0, position 1"),
    "negative-label": (_case(labels=[T([0, 1]), T([-1])]), ValueError, r"got -1 at sample 1, position 0"),
    "outside": (_case(bboxes=[T([[1.0, 2.0, 9.0, 12.0], [30.0, 3.0, 50.0, 7.0]]), T([[0.0, 0.0, 4.0, 4.0]])]),
                ValueError, r"bbox centers must lie in the image.*\[0, 10\) x \[0, 8\); got \[30.0"),
    "huge": (_case(bboxes=[T([[-3e19, -3e19, 3e19, 3e19], [3.0, 3.0, 5.0, 7.0]]), T([[0.0, 0.0, 4.0, 4.0]])]),
             ValueError, r"too large for a finite Gaussian radius"),
    "int-boxes": (_case(bboxes=[T([[1, 2, 9, 12]]), T([[0, 0, 4, 4]])], labels=[T([0]), T([1])]), TypeError,
                  r"bboxes\[0\] must be a floating-point tensor; got torch.int64: convert with "
                  r"\[t.float\(\) for t in bboxes\]"),
    "float-labels": (_case(labels=[T([0.0, 1.0]), T([1.0])]), TypeError,
                     r"labels\[0\] must be int32 or int64; got torch.float32"),
    "box-columns": (_case(bboxes=[T([[1.0, 2.0, 9.0]]), T([[0.0, 0.0, 4.0]])], labels=[T([0]), T([1])]), ValueError,
                    r"bboxes\[0\] must have shape \(n, 4\); got \(1, 3\)"),
    "samples": (_case(labels=T([[0, 2]]), counts=T([2, 1])), ValueError, r"labels must have shape \(2, \*\); got \(1, 2\)"),
    "lengths-disagree": (_case(labels=[T([0]), T([1])]), ValueError,
                         r"labels\[0\] has 1 entries but bboxes\[0\] has 2"),
    "samples-disagree": (_case(labels=[T([0, 1])]), ValueError, r"labels has 1 samples but bboxes has 2"),
    "sizes-disagree": (_case(bboxes=Ragged(torch.zeros(2, 2, 4), T([2, 1])), labels=Ragged(T([[0, 1], [1, 1]]), T([2, 2]))),
                       ValueError, r"labels.sample_sizes must equal bboxes.sample_sizes; got 2 at sample 1 "),
    "counts-too-large": (_case(bboxes=torch.zeros(2, 2, 4), labels=T([[0, 1], [1, 1]]), counts=T([2, 3])),
                         ValueError, r"counts must be in \[0, 2\] \(the padded length of the inputs\); got 3 at sample 1 "),
    "counts-missing": (_case(bboxes=torch.zeros(2, 1, 4), labels=torch.zeros(2, 1, dtype=torch.long)), ValueError,
                       r"counts is required"),
    "feat-size": (_case(feat_size=(0, 10)), ValueError, r"feat_size\[0\] must be > 0; got 0"),
    "feat-size-float": (_case(feat_size=(8.0, 10)), TypeError, r"feat_size\[0\] must be an int"),
    "img-size": (_case(img_size=(16, -1)), ValueError, r"img_size\[1\] must be finite and > 0; got -1"),
    "img-size-shape": (_case(img_size=16), ValueError, r"img_size must be a pair"),
    "min-overlap": (_case(min_overlap=1.0), ValueError, r"min_overlap must be in \(0, 1\); got 1.0"),
    "num-classes": (_case(num_classes=0), ValueError, r"num_classes must be > 0; got 0"),
    "backend": (_case(backend="cuda"), ValueError, r"backend must be one of"),
    "validate": (_case(validate="yes"), TypeError, r"validate must be True, False or None"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_raises(case):
    args, error, match = BAD[case]
    with pytest.raises(error, match=match):
        centernet_targets(**args)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_box_dtypes_compute_in_float32(device_backend, dtype):
    """Any float boxes: the targets of the same boxes rounded to ``dtype`` and computed in float32."""
    device, backend = device_backend
    if dtype == torch.bfloat16 and backend == "triton" and device == "cpu":
        pytest.skip("bf16 is unreliable in Triton's interpreter")
    g = torch.Generator().manual_seed(7)
    xy = torch.rand(2, 6, 2, generator=g) * 60
    boxes = torch.cat([xy, xy + torch.rand(2, 6, 2, generator=g) * 30], -1).to(dtype)
    labels = torch.randint(0, 4, (2, 6), generator=g)
    expected = _oracle(4, (24, 24), (96, 96), list(boxes.float()), list(labels))
    targets = centernet_targets(list(boxes.to(device)), list(labels.to(device)), 4, (24, 24), (96, 96),
                                backend=backend)
    _assert_matches(targets, expected, str(dtype))
