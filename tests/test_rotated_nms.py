"""Rotated (BEV) NMS: the float64 reference against a grid estimate of the areas and known cases,
every backend against the reference (a result is checked to be a greedy one under the reference's
IoU, decisions within rounding of the threshold left free) and against each other (the same bits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussdraw import Ragged, rotated_nms, rotated_nms_batched
from gaussdraw.ops._triton import HAVE_TRITON, interpreting
from gaussdraw.ops.rotated_nms import box_geometry, pair_iou
from gaussdraw.reference.rotated_nms import descending_order, rotated_corners, rotated_iou, rotated_nms_per_box

from .helpers import raises_text

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BACKENDS = ["torch"] + (["triton"] if HAVE_TRITON and interpreting() else [])
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}  # |IoU - reference| allowed to decide either way


def grid_iou(first, second, cells: int = 700) -> float:
    """IoU estimated by counting grid points inside each box (in each box's own frame)."""
    reach = max(abs(first[2]), abs(first[3]), abs(second[2]), abs(second[3]))
    xs = np.linspace(min(first[0], second[0]) - reach, max(first[0], second[0]) + reach, cells)
    ys = np.linspace(min(first[1], second[1]) - reach, max(first[1], second[1]) + reach, cells)
    px, py = np.meshgrid(xs, ys)

    def inside(box):
        x, y, w, h, angle = box
        u = math.cos(angle) * (px - x) + math.sin(angle) * (py - y)
        v = -math.sin(angle) * (px - x) + math.cos(angle) * (py - y)
        return (np.abs(u) <= w / 2) & (np.abs(v) <= h / 2)

    a, b = inside(first), inside(second)
    return float((a & b).sum() / max((a | b).sum(), 1))


# ----------------------------------------------------------------------------
# the reference
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_reference_iou_matches_a_grid_estimate(seed):
    rng = np.random.default_rng(seed)
    first = [*rng.uniform(-1, 1, 2), *rng.uniform(0.5, 3, 2), rng.uniform(-4, 4)]
    second = [*(np.array(first[:2]) + rng.uniform(-1, 1, 2)), *rng.uniform(0.5, 3, 2), rng.uniform(-4, 4)]
    assert abs(rotated_iou(first, second) - grid_iou(first, second)) < 0.02


def test_reference_iou_known_cases():
    rng = np.random.default_rng(1)
    for _ in range(20):  # axis-aligned (angle 0 or pi): the plain rectangle IoU
        (x1, y1), (x2, y2) = rng.uniform(0, 3, 2), rng.uniform(0, 3, 2)
        (w1, h1), (w2, h2) = rng.uniform(0.5, 3, 2), rng.uniform(0.5, 3, 2)
        dx = max(0.0, min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2))
        dy = max(0.0, min(y1 + h1 / 2, y2 + h2 / 2) - max(y1 - h1 / 2, y2 - h2 / 2))
        plain = dx * dy / (w1 * h1 + w2 * h2 - dx * dy)
        assert rotated_iou([x1, y1, w1, h1, 0.0], [x2, y2, w2, h2, math.pi]) == pytest.approx(plain, abs=1e-12)
    box, other = [0.3, -0.2, 2.0, 1.0, 0.4], [0.9, 0.1, 1.5, 0.7, -0.3]
    assert rotated_iou(box, box) == pytest.approx(1.0, abs=1e-12)
    turned = [0.3, -0.2, 1.0, 2.0, 0.4 + math.pi / 2]  # the same rectangle, w and h swapped
    assert rotated_iou(box, turned) == pytest.approx(1.0, abs=1e-12)
    assert rotated_iou(turned, other) == pytest.approx(rotated_iou(box, other), abs=1e-12)
    assert rotated_iou(box, other) == pytest.approx(rotated_iou(other, box), abs=1e-12)
    assert rotated_iou(box, [9.0, 9.0, 2.0, 1.0, 0.4]) == 0.0
    assert rotated_iou(box, [0.3, -0.2, 0.0, 1.0, 0.4]) == 0.0  # w * h below 1e-14
    assert rotated_iou([0, 0, 2, 1, 0], [1, 0, 2, 1, 0]) == pytest.approx(1 / 3, abs=1e-12)


def test_reference_corners_are_mmcvs_counter_clockwise_rotation():
    corners = rotated_corners([1.0, 2.0, 4.0, 2.0, math.pi / 2])
    assert np.allclose(corners, [(0.0, 0.0), (2.0, 0.0), (2.0, 4.0), (0.0, 4.0)])  # (-w/2, +h/2) turned by 90 deg


def test_reference_greedy_order_and_threshold():
    boxes = [[0, 0, 2, 1, 0], [0, 0, 2, 1, 0], [0.1, 0, 2, 1, 0], [5, 5, 1, 1, 0]]
    assert rotated_nms_per_box(boxes, [0.5, 0.5, 0.9, 0.5], 0.5) == [2, 3]  # ties: the lower index first
    assert rotated_nms_per_box(boxes, [0.5, 0.5, 0.9, 0.5], 1.0) == [2, 0, 3]  # identical: IoU 1 >= 1
    assert rotated_nms_per_box(boxes, [0.5, 0.5, 0.9, 0.5], 0.0) == [2]  # every IoU >= 0
    assert rotated_nms_per_box(boxes, [0.5, 0.5, 0.9, 0.5], 0.5, pre_max_size=1) == [2]
    assert descending_order([0.1, float("nan"), 0.3, 0.3]) == [1, 2, 3, 0]


# ----------------------------------------------------------------------------
# the IoU of the implementations
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pair_iou_matches_the_reference(dtype):
    g = torch.Generator().manual_seed(3)
    boxes = torch.cat([torch.rand(40, 2, generator=g) * 4, torch.rand(40, 2, generator=g) * 3 + 0.05,
                       (torch.rand(40, 1, generator=g) - 0.5) * 2e4], 1).to(dtype)
    boxes[5] = boxes[4]
    boxes[6, :2] = boxes[4, :2] + 1e-6
    geometry = box_geometry(boxes, dtype)
    got = pair_iou(geometry[:, None], geometry[None, :]).double()
    want = torch.tensor([[rotated_iou(a, b) for b in boxes.tolist()] for a in boxes.tolist()], dtype=torch.float64)
    assert (got - want).abs().max() < TOLERANCE[dtype] / 10
    assert bool((got.diagonal() == 1).all()) and got[4, 5] == 1 and got[5, 4] == 1  # identical: exactly 1


def test_pair_iou_shared_and_touching_edges():
    boxes = torch.tensor([[0, 0, 2, 1, 0], [1, 0, 2, 1, 0], [2, 0, 2, 1, 0], [0.5, 0, 1, 1, 0]], dtype=torch.float64)
    geometry = box_geometry(boxes, torch.float64)
    iou = pair_iou(geometry[:, None], geometry[None, :])
    assert iou[0, 1].item() == pytest.approx(1 / 3, abs=1e-15)  # bottom and top edges on the same lines
    assert iou[0, 2].item() == 0.0 and iou[2, 0].item() == 0.0  # touching along x = 1
    assert iou[0, 3].item() == pytest.approx(0.5, abs=1e-15)  # inside, sharing three edges


@st.composite
def near_copies(draw, dtype, copies: int = 4):
    """A box and copies of it at the same angle, x, y, w, h each moved by 0, a few ulps or 1e-7 to
    1e-5 of itself: edges on one line in exact arithmetic, not quite once rounded (as ``dtype`` rows)."""
    value, size = st.floats(0, 4, width=32), st.floats(0.0625, 3, width=32)
    angle = st.one_of(st.floats(-4, 4, width=32), st.sampled_from([0.0, math.pi / 2, 2.0]))
    base = [draw(value), draw(value), draw(size), draw(size), draw(angle)]
    ulp = float(torch.finfo(dtype).eps)
    nudge = st.one_of(st.just(0.0), st.integers(-4, 4).map(lambda k: k * ulp),
                      st.tuples(st.floats(-7, -5), st.sampled_from([-1, 1])).map(lambda p: p[1] * 10 ** p[0]))
    boxes = [base] + [[v * (1 + draw(nudge)) for v in base[:4]] + [base[4]] for _ in range(copies)]
    return torch.tensor(boxes, dtype=dtype).tolist()


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_pair_iou_of_near_copies_matches_the_reference(data, dtype):
    boxes = data.draw(near_copies(dtype))
    geometry = box_geometry(torch.tensor(boxes, dtype=dtype), dtype)
    got = pair_iou(geometry[:, None], geometry[None, :]).double()
    want = torch.tensor([[rotated_iou(a, b) for b in boxes] for a in boxes], dtype=torch.float64)
    assert (got - want).abs().max() < TOLERANCE[dtype] / 2
    assert bool((got.diagonal() == 1).all())


def test_pair_iou_of_edges_on_one_line_once_rounded():
    boxes = [[0, 0, 1, 1.75, 2.0], [1e-6, 0, 1, 1.75, 2.0], [0, 0, 1, 1.750001, 2.0],  # float32: lines not quite one
             [0, 0, 2, 1, 1e-7], [2, 0, 2, 1, 1e-7], [1.827932596206665, 0.459022581577301, 0.06958653777837753,
                                                      2.512631416320801, 3.7331225872039795]]
    boxes.append(boxes[-1][:2] + [0.06958753615617752] + boxes[-1][3:])  # a thin box, 1e-6 wider
    geometry = box_geometry(torch.tensor(boxes), torch.float32)
    got = pair_iou(geometry[:, None], geometry[None, :]).double()
    want = torch.tensor([[rotated_iou(a, b) for b in boxes] for a in boxes], dtype=torch.float64)
    assert (got - want).abs().max() < TOLERANCE[torch.float32] / 2
    assert got[3, 4] == 0 and got[4, 3] == 0  # touching along a line turned by 1e-7


# ----------------------------------------------------------------------------
# greedy results against the reference
# ----------------------------------------------------------------------------


def assert_greedy(kept: list, boxes, scores, thresh: float, pre, post, dtype):
    """``kept`` is a greedy result under the reference IoU: each decision forced where the IoU is
    farther than the tolerance from the threshold, at 0 (every IoU >= 0), and for identical boxes
    (IoU exactly 1); free otherwise."""
    order = descending_order(scores)[:pre]
    limit, tol = float(np.float32(thresh)), TOLERANCE[dtype]
    position = {box: rank for rank, box in enumerate(order)}
    assert len(set(kept)) == len(kept) and all(i in position for i in kept), kept
    assert [position[i] for i in kept] == sorted(position[i] for i in kept), "not in visiting order"
    chosen = []
    for i in order:
        if post is not None and len(chosen) == post:
            break
        must, may = False, False
        for k in chosen:
            same = list(boxes[k]) == list(boxes[i]) and boxes[i][2] * boxes[i][3] >= 1e-14
            iou = rotated_iou(boxes[k], boxes[i])
            must |= iou >= limit + tol or limit <= 0 or (same and limit <= 1)
            may |= iou >= limit - tol
        taken = len(chosen) < len(kept) and kept[len(chosen)] == i
        assert not (taken and must), f"box {i} kept, though a kept box suppresses it ({kept})"
        assert taken or may, f"box {i} suppressed by no kept box ({kept})"
        if taken:
            chosen.append(i)
    assert chosen == kept


@st.composite
def problems(draw, max_boxes=10):
    """One problem: boxes near each other, with duplicates, near-duplicates, zero sizes, huge angles,
    tied scores."""
    n = draw(st.integers(0, max_boxes))
    coordinate = st.floats(0, 4, width=32)
    size = st.one_of(st.just(0.0), st.floats(0.0625, 3, width=32))
    angle = st.one_of(st.floats(-4, 4, width=32), st.floats(-1e4, 1e4, width=32), st.sampled_from([0.0, math.pi / 2]))
    boxes = []
    for _ in range(n):
        kind = draw(st.sampled_from(["new", "new", "copy", "near"])) if boxes else "new"
        if kind == "new":
            boxes.append([draw(coordinate), draw(coordinate), draw(size), draw(size), draw(angle)])
        else:
            base = list(draw(st.sampled_from(boxes)))
            if kind == "near":
                base[draw(st.integers(0, 4))] += draw(st.sampled_from([1e-6, -1e-5, 1e-3]))
            boxes.append(base)
    scores = [draw(st.one_of(st.sampled_from([0.25, 0.5]), st.floats(0, 1, width=32))) for _ in range(n)]
    return boxes, scores


def _limits(draw, n):
    return draw(st.one_of(st.none(), st.integers(0, n + 1)))


@SETTINGS
@given(cases=st.lists(problems(), min_size=1, max_size=3), data=st.data(),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_backends_give_greedy_results_and_the_same_bits(cases, data, dtype):
    longest = max(len(s) for _, s in cases)
    thresholds = [data.draw(st.sampled_from([0.0, 1.0, 0.1, 0.5, 0.7, 0.99])) for _ in cases]
    pre, post = _limits(data.draw, longest), _limits(data.draw, longest)
    boxes = [torch.tensor(b, dtype=dtype).reshape(-1, 5) for b, _ in cases]
    scores = [torch.tensor(s, dtype=dtype) for _, s in cases]
    results = {backend: rotated_nms_batched(boxes, scores, thresholds, pre_max_size=pre, post_max_size=post,
                                            backend=backend) for backend in BACKENDS}
    first = results[BACKENDS[0]]
    for backend, kept in results.items():
        assert torch.equal(kept.indices, first.indices) and torch.equal(kept.counts, first.counts), backend
    for b, (box_list, score_list) in enumerate(cases):
        count = int(first.counts[b])
        kept = first.indices[b, :count].tolist()
        assert (first.indices[b, count:] == -1).all()
        assert_greedy(kept, boxes[b].tolist(), scores[b].tolist(), thresholds[b], pre, post, dtype)


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]),
       thresh=st.sampled_from([0.5, 0.9, 0.999]))
def test_backends_suppress_near_copies(data, dtype, thresh):
    boxes = data.draw(near_copies(dtype, copies=5)) + [[0.0] * 5] + data.draw(near_copies(dtype, copies=3))
    scores = [0.25] * len(boxes)  # ties: visited in index order
    kept = {backend: rotated_nms(torch.tensor(boxes, dtype=dtype), torch.tensor(scores, dtype=dtype), thresh,
                                 backend=backend).tolist() for backend in BACKENDS}
    first = kept[BACKENDS[0]]
    assert all(result == first for result in kept.values()), kept
    assert_greedy(first, boxes, scores, thresh, None, None, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_near_copy_is_suppressed(backend):
    zero, box = [0.0] * 5, [0, 0, 1, 1.75, 2.0]
    boxes = torch.tensor([box, [1e-6, 0, 1, 1.75, 2.0], zero, zero, box, zero, box, zero, box,
                          [0, 0, 1, 1.750001, 2.0]])
    kept = rotated_nms(boxes, torch.full((10,), 0.25), 0.5, backend=backend).tolist()
    assert 9 not in kept  # IoU ~ 1 with box 0 (was missed: its long edges counted twice against box 0's)
    assert_greedy(kept, boxes.tolist(), [0.25] * 10, 0.5, None, None, torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["list", "ragged", "padded"])
def test_batched_forms_equal_each_problem_alone(backend, form):
    g = torch.Generator().manual_seed(5)
    sizes = [9, 0, 4, 70 if form == "padded" else 13]  # 70: two words of suppression bits
    boxes = [torch.cat([torch.rand(n, 2, generator=g) * 5, torch.rand(n, 2, generator=g) * 2 + 0.2,
                        torch.rand(n, 1, generator=g) * 6], 1) for n in sizes]
    scores = [torch.rand(n, generator=g) for n in sizes]
    thresholds = [0.2, 0.5, 0.0, 0.1]
    if form == "list":
        kept = rotated_nms_batched(boxes, scores, thresholds, post_max_size=50, backend=backend)
    elif form == "ragged":
        kept = rotated_nms_batched(Ragged.from_list(boxes), Ragged.from_list(scores), thresholds, post_max_size=50,
                                   backend=backend)
    else:
        padded_b, padded_s = Ragged.from_list(boxes), Ragged.from_list(scores)
        padded_b.tensor[padded_b.tensor == 0] = float("nan")  # padding is never read
        kept = rotated_nms_batched(padded_b.tensor, padded_s.tensor, thresholds, post_max_size=50,
                                   counts=torch.tensor(sizes), backend=backend)
    for b in range(len(sizes)):
        expected = rotated_nms_per_box(boxes[b].numpy(), scores[b].numpy(), thresholds[b], post_max_size=50)
        assert kept.indices[b, : int(kept.counts[b])].tolist() == expected
        if sizes[b] < 20:
            alone = rotated_nms(boxes[b], scores[b], thresholds[b], post_max_size=50, backend=backend)
            assert alone.tolist() == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_boxes_are_computed_in_float32(backend):
    g = torch.Generator().manual_seed(6)
    boxes = torch.cat([torch.rand(30, 2, generator=g) * 4, torch.rand(30, 3, generator=g) + 0.3], 1).half()
    scores = torch.rand(30, generator=g).half()
    half = rotated_nms(boxes, scores, 0.3, backend=backend)
    assert half.tolist() == rotated_nms(boxes.float(), scores.float(), 0.3, backend=backend).tolist()
    assert half.tolist() == rotated_nms_per_box(boxes.float().numpy(), scores.float().numpy(), 0.3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_thresholds_zero_and_one(backend):
    boxes = torch.tensor([[0, 0, 2, 1, 0.3], [0, 0, 2, 1, 0.3], [0.001, 0, 2, 1, 0.3], [9, 9, 1, 1, 0],
                          [4, 4, 0, 1, 0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95])
    assert rotated_nms(boxes, scores, 1.0, backend=backend).tolist() == [4, 0, 2, 3]  # only the identical pair
    assert rotated_nms(boxes, scores, 0.0, backend=backend).tolist() == [4]  # a zero-area box: IoU 0 >= 0
    assert rotated_nms(boxes, scores, 0.5, pre_max_size=3, post_max_size=1, backend=backend).tolist() == [4]
    assert rotated_nms(boxes[:0], scores[:0], 0.5, backend=backend).tolist() == []


# ----------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------


def test_rotated_nms_bad_arguments():
    boxes, scores = torch.rand(3, 5), torch.rand(3)
    with raises_text(ValueError, "boxes must be (N, 5)"):
        rotated_nms(torch.rand(3, 4), scores, 0.5)
    with raises_text(ValueError, "scores must be (3,), one score per box"):
        rotated_nms(boxes, torch.rand(2), 0.5)
    with raises_text(TypeError, "use rotated_nms_batched"):
        rotated_nms([boxes], scores, 0.5)
    with raises_text(ValueError, "pre_max_size must be an integer >= 0 or None; got -1"):
        rotated_nms(boxes, scores, 0.5, pre_max_size=-1)
    with raises_text(ValueError, "post_max_size must be an integer >= 0 or None; got 2.0"):
        rotated_nms(boxes, scores, 0.5, post_max_size=2.0)
    with raises_text(ValueError, "thresh must be a number (not NaN) or one number per problem (2)"):
        rotated_nms_batched([boxes, boxes], [scores, scores], [0.5])
    with raises_text(ValueError, "thresh must be a number (not NaN)"):
        rotated_nms(boxes, scores, float("nan"))
    with raises_text(ValueError, "boxes must have shape (1, 3, 5), one box per score"):
        rotated_nms_batched(torch.rand(1, 2, 5), torch.rand(1, 3), 0.5, counts=torch.tensor([2]))
    with raises_text(ValueError, "backend must be one of"):
        rotated_nms(boxes, scores, 0.5, backend="cuda")


def test_rotated_nms_value_checks():
    boxes, scores = torch.rand(2, 4, 5), torch.rand(2, 4)
    with raises_text(ValueError, "counts must be in [0, 4]"):
        rotated_nms_batched(boxes, scores, 0.5, counts=torch.tensor([5, 1]))
    boxes[1, 2, 4] = float("inf")
    with raises_text(ValueError, "boxes must be finite; got [" ):
        rotated_nms_batched(boxes, scores, 0.5, counts=torch.tensor([4, 3]))
    kept = rotated_nms_batched(boxes, scores, 0.5, counts=torch.tensor([4, 2]))  # the bad box is padding
    assert kept.counts.tolist()[1] <= 2
    kept = rotated_nms_batched(boxes, scores, 0.5, counts=torch.tensor([4, 9]), validate=False)  # clamped, no error
    assert kept.indices.shape == (2, 4)
    assert rotated_nms([[0, 0, 1, 1, 0], [0, 0, 1, 1, 0.1]], [0.2, 0.9], 0.5).tolist() == [1]  # Python lists
