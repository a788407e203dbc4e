"""heatmap_peaks and circle NMS against mmdet / mmdet3d's own code, every backend against the others."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussdraw import circle_nms, circle_nms_batched, heatmap_peaks

from .oracles import mmdet3d_centerpoint_topk, mmdet3d_circle_nms, mmdet_topk_peaks

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@st.composite
def heatmaps(draw):
    """(B, C, H, W) scores with plateaus (few distinct levels), peaks on borders, odd sizes, and a k
    from 1 to C * H * W."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 13)), draw(st.integers(1, 17)))
    levels = draw(st.sampled_from([3, 8, 1000]))  # few levels: plateaus and ties
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    heat = torch.randint(0, levels, shape, generator=g).float() / levels
    heat[torch.rand(shape, generator=g) < 0.5] = 0.0  # K can pass the positive pixels
    k = draw(st.integers(1, shape[1] * shape[2] * shape[3]))
    return heat, k


@SETTINGS
@given(case=heatmaps(), dtype=st.sampled_from(DTYPES), kernel=st.sampled_from([1, 3, 5]))
def test_peaks_match_mmdet(device_backend, case, dtype, kernel):
    device, backend = device_backend
    heat, k = case
    heat = heat.to(dtype)
    batch, classes, height, width = heat.shape
    scores, inds, clses, ys, xs = mmdet_topk_peaks()(heat.float(), k, kernel)  # exact in float32
    ours = heatmap_peaks(heat.to(device), k, kernel, backend=backend)
    ours = type(ours)(*(t.cpu() for t in ours))
    assert ours.scores.dtype == dtype and ours.labels.dtype == torch.int64
    assert torch.equal(ours.scores.float(), scores), "scores"
    assert torch.equal(ours.indices, ours.ys * width + ours.xs)
    for b in range(batch):
        above = scores[b] > scores[b, -1]
        mine = set(zip(ours.labels[b][above].tolist(), ours.indices[b][above].tolist()))
        theirs = set(zip(clses[b][above].tolist(), inds[b][above].tolist()))
        assert mine == theirs
        theirs_all = {(c, i) for c, i in zip(clses[b].tolist(), inds[b].tolist())}
        assert len(theirs_all) == k == len(set(zip(ours.labels[b].tolist(), ours.indices[b].tolist())))
        # our order: equal scores by ascending flat index
        flat = (ours.labels[b] * height * width + ours.indices[b]).tolist()
        for i in range(k - 1):
            if ours.scores[b, i] == ours.scores[b, i + 1]:
                assert flat[i] < flat[i + 1]
        # every peak we report is a local maximum (or, as in mmdet, a zero where peaks ran out)
        for c, i, s in zip(ours.labels[b].tolist(), ours.indices[b].tolist(), ours.scores[b].float().tolist()):
            y, x = divmod(i, width)
            pad = (kernel - 1) // 2
            window = heat[b, c, max(0, y - pad):y + pad + 1, max(0, x - pad):x + pad + 1].float()
            assert s == 0.0 or (s == heat[b, c, y, x].float().item() and s == window.max().item())


@SETTINGS
@given(case=heatmaps(), dtype=st.sampled_from([torch.float32, torch.float64]), data=st.data())
def test_per_class_k_matches_centerpoint_topk(device_backend, case, dtype, data):
    device, backend = device_backend
    heat, _ = case
    heat = heat.to(dtype)
    batch, classes, height, width = heat.shape
    per_class = data.draw(st.integers(1, height * width))
    k = data.draw(st.integers(1, min(per_class, classes * per_class)))  # mmdet3d takes K for both stages
    scores, inds, clses, ys, xs = mmdet3d_centerpoint_topk()(heat, per_class) if k == per_class else (None,) * 5
    ours = heatmap_peaks(heat.to(device), k, kernel=1, per_class_k=per_class, backend=backend)
    ours = type(ours)(*(t.cpu() for t in ours))
    if scores is None:  # k != per_class_k: against the plain two-stage composition
        first = torch.topk(heat.reshape(batch, classes, -1), per_class).values
        scores = torch.topk(first.reshape(batch, -1), k).values
        assert torch.equal(ours.scores, scores)
        return
    assert torch.equal(ours.scores, scores)
    for b in range(batch):
        above = scores[b] > scores[b, -1]
        mine = set(zip(ours.labels[b][above].tolist(), ours.indices[b][above].tolist()))
        theirs = set(zip(clses[b][above].tolist(), inds[b][above].tolist()))
        assert mine == theirs
        pixels = set(zip(ours.labels[b][above].tolist(), ours.ys[b][above].tolist(), ours.xs[b][above].tolist()))
        assert pixels == set(zip(clses[b][above].tolist(), ys[b][above].long().tolist(), xs[b][above].long().tolist()))


def test_peaks_examples_and_borders(device_backend):
    device, backend = device_backend
    heat = torch.zeros(1, 2, 5, 6)
    heat[0, 0, 0, 0] = 0.7            # a corner
    heat[0, 1, 4, 5] = 0.9            # the other corner
    heat[0, 1, 2, 2:4] = 0.5          # a plateau of two: both are peaks
    heat[0, 0, 2, 3] = 0.6
    ours = heatmap_peaks(heat.to(device), k=5, backend=backend)
    assert ours.scores.cpu().tolist() == [[pytest.approx(0.9), pytest.approx(0.7), pytest.approx(0.6), 0.5, 0.5]]
    assert ours.labels.cpu().tolist() == [[1, 0, 0, 1, 1]]
    assert ours.ys.cpu().tolist() == [[4, 0, 2, 2, 2]] and ours.xs.cpu().tolist() == [[5, 0, 3, 2, 3]]


@pytest.mark.parametrize("bad, match", [
    (dict(k=0), "k must be"), (dict(k=2.0), "k must be"), (dict(k=10**6), "k must be at most"),
    (dict(kernel=2), "kernel must be odd"), (dict(kernel=0), "kernel must be"),
    (dict(per_class_k=0), "per_class_k"), (dict(per_class_k=1000), "per_class_k must be at most"),
    (dict(k=7, per_class_k=3), "C \\* per_class_k"), (dict(backend="cuda"), "backend"),
])
def test_peaks_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        heatmap_peaks(torch.zeros(1, 2, 8, 8), **{"k": 3, **bad})


def test_peaks_bad_heatmaps():
    with pytest.raises(ValueError, match="B, C, H, W"):
        heatmap_peaks(torch.zeros(2, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        heatmap_peaks(torch.zeros(1, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        heatmap_peaks(np.zeros((1, 1, 8, 8)))


# ----------------------------------------------------------------------------
# circle NMS
# ----------------------------------------------------------------------------


@st.composite
def detections(draw):
    """(N, 2) float32 centers and (N,) scores: clusters, ties in score (few levels), exact-threshold
    distances (centers on a grid, thresholds that are squares of grid steps)."""
    n = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    grid = draw(st.sampled_from([0.5, 1.0, 0.1]))
    spread = draw(st.sampled_from([4, 20, 100]))
    centers = (torch.randint(0, spread, (n, 2), generator=g).float() * grid)
    levels = draw(st.sampled_from([5, 10**6]))
    scores = torch.randint(0, levels, (n,), generator=g).float() / levels
    thresh = draw(st.sampled_from([0.25, 1.0, 2.0, 4.0, 0.01, 0.3]))
    post = draw(st.sampled_from([83, 5, 1, 1000, None]))
    return centers, scores, thresh, post


@SETTINGS
@given(case=detections())
def test_circle_nms_matches_mmdet3d(device_backend, case):
    """Equal scores: against mmdet3d's loop with a stable argsort (the order we document)."""
    device, backend = device_backend
    centers, scores, thresh, post = case
    dets = torch.cat([centers, scores[:, None]], 1).numpy()
    oracle = mmdet3d_circle_nms(stable=True)
    expected = oracle(dets, thresh, post if post is not None else 10**9) if len(dets) else []
    kept = circle_nms(centers.to(device), scores.to(device), thresh, post_max_size=post, backend=backend)
    assert kept.cpu().tolist() == [int(i) for i in expected]
    if len(set(scores.tolist())) == len(scores):  # no ties: mmdet3d's code exactly as it is
        assert kept.cpu().tolist() == [int(i) for i in mmdet3d_circle_nms()(dets, thresh, post or 10**9)]


@SETTINGS
@given(cases=st.lists(detections(), min_size=1, max_size=4), form=st.sampled_from(["lists", "padded"]))
def test_circle_nms_batched_equals_each_sample(device_backend, cases, form):
    device, backend = device_backend
    post = 83
    centers = [c[0].to(device) for c in cases]
    scores = [c[1].to(device) for c in cases]
    thresholds = [c[2] for c in cases]
    if form == "lists":
        kept = circle_nms_batched(centers, scores, thresholds, post_max_size=post, backend=backend)
    else:
        longest = max(max(len(s) for s in scores), 1)
        padded_c = torch.full((len(cases), longest, 2), float("nan"), device=device)
        padded_s = torch.full((len(cases), longest), float("nan"), device=device)
        for b, (c, s) in enumerate(zip(centers, scores)):
            padded_c[b, : len(s)], padded_s[b, : len(s)] = c, s
        counts = torch.tensor([len(s) for s in scores], device=device)
        kept = circle_nms_batched(padded_c, padded_s, thresholds, post_max_size=post, counts=counts, backend=backend)
    for b in range(len(cases)):
        alone = circle_nms(centers[b], scores[b], thresholds[b], post_max_size=post, backend=backend)
        n = int(kept.counts[b])
        assert kept.indices[b, :n].tolist() == alone.tolist()
        assert (kept.indices[b, n:] == -1).all()


def test_circle_nms_exact_threshold_and_chains(device_backend):
    device, backend = device_backend
    # 0 keeps and suppresses 1 (distance^2 = 1 <= 1); 2 is 1 from 1 but 4 from 0: kept, since 1 is gone
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.5, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert circle_nms(centers.to(device), scores.to(device), 1.0, backend=backend).tolist() == [0, 2]
    # a threshold just under the float32 distance keeps both
    assert circle_nms(centers[:2].to(device), scores[:2].to(device), 0.9999999, backend=backend).tolist() == [0, 1]
    # a chain longer than a block: every other box survives
    chain = torch.stack([torch.arange(300).float(), torch.zeros(300)], 1)
    kept = circle_nms(chain.to(device), torch.linspace(1, 0, 300).to(device), 1.0, post_max_size=None, backend=backend)
    assert kept.tolist() == list(range(0, 300, 2))


def test_circle_nms_bad_arguments():
    c, s = torch.zeros(3, 2), torch.zeros(3)
    with pytest.raises(ValueError, match="post_max_size"):
        circle_nms(c, s, 1.0, post_max_size=-1)
    with pytest.raises(ValueError, match="thresh"):
        circle_nms_batched([c, c], [s, s], [1.0])
    with pytest.raises(TypeError, match="floating-point"):
        circle_nms(c.long(), s, 1.0)
    with pytest.raises(ValueError, match="shape|must be"):
        circle_nms(torch.zeros(3, 3), s, 1.0)
    with pytest.raises(ValueError, match="counts is required"):
        circle_nms_batched(torch.zeros(2, 3, 2), torch.zeros(2, 3), 1.0)


def test_circle_nms_refuses_what_it_would_cut_or_clamp():
    """Inputs that the kernels would silently cut or clamp are errors: centers and scores of different
    lengths (never cut to the shorter), counts outside [0, N] and sample sizes that disagree (checked
    on the CPU by default, on a GPU with validate=True)."""
    c, s = torch.rand(10, 2), torch.rand(9)
    with pytest.raises(ValueError, match=r"scores must be \(10,\), one score per center of centers \(10, 2\) "
                                         r".*; got \(9,\)"):
        circle_nms(c, s, 1.0)
    with pytest.raises(ValueError, match=r"centers must have shape \(1, 9, 2\), one center per score; got \(1, 10, 2\)"):
        circle_nms_batched(c[None], s[None], 1.0, counts=torch.tensor([9]))
    padded_c, padded_s = torch.rand(2, 5, 2), torch.rand(2, 5)
    for bad in ([6, 2], [-1, 2]):
        with pytest.raises(ValueError, match=r"counts must be in \[0, 5\]"):
            circle_nms_batched(padded_c, padded_s, 1.0, counts=torch.tensor(bad))
    kept = circle_nms_batched(padded_c, padded_s, 1.0, counts=torch.tensor([6, 2]), validate=False)
    assert int(kept.counts[0]) <= 5  # unchecked: clamped to the padded length, never read past it
    from gaussdraw import Ragged

    ragged_s = Ragged(padded_s, torch.tensor([5, 2]))
    with pytest.raises(ValueError, match="centers.sample_sizes must equal scores.sample_sizes"):
        circle_nms_batched(Ragged(padded_c, torch.tensor([4, 2])), ragged_s, 1.0)


def test_circle_nms_order_is_the_same_from_both_key_builders(device_backend):
    """The Triton key kernel and the torch keys order boxes alike: -0.0 ties 0.0, NaN first, padding last."""
    from gaussdraw.ops.circle_nms import sorted_candidates, sorted_candidates_triton

    device, backend = device_backend
    if backend != "triton":
        pytest.skip("the key kernel is Triton's")
    scores = torch.tensor([[0.5, -0.0, 0.0, float("nan"), -1.0, float("inf"), 0.5, 7.0],
                           [1.0, 1.0, 1.0, 1.0, 2.0, -float("inf"), 3.0, 3.0]], device=device)
    counts = torch.tensor([8, 6], device=device)
    expected = sorted_candidates(scores, counts)
    assert torch.equal(sorted_candidates_triton(scores, counts), expected)
    # NaN, inf, 7, the two 0.5 (the later box first), 0.0 and -0.0 as equals (the later first), -1
    assert expected[0].tolist() == [3, 5, 7, 6, 0, 2, 1, 4]
    assert expected[1, :6].tolist() == [4, 3, 2, 1, 0, 5] and sorted(expected[1, 6:].tolist()) == [6, 7]


@pytest.mark.parametrize("levels, shape, ks, chunk", [(1000, (2, 3, 24, 130), (1, 12), 32),
                                                       (2, (1, 2, 20, 70), (1, 5), 256)],
                         ids=["distinct", "plateaus-overflow"])
def test_tile_bound_peaks_match_mmdet(device_backend, levels, shape, ks, chunk):
    """Maps with more groups than k take the tile-bound path: against mmdet, with few candidates
    (distinct values) and with candidates that overflow a small buffer (two levels: plateaus), where
    the select kernel takes every pixel."""
    from gaussdraw.ops.peaks import PeaksLaunchShape, peaks_triton

    device, backend = device_backend
    if backend != "triton":
        pytest.skip("the tile-bound path is the Triton backend's")
    launch_shape = PeaksLaunchShape(chunk=chunk, capacity=(1, 24))
    g = torch.Generator().manual_seed(levels)
    heat = torch.randint(0, levels, shape, generator=g).float() / levels
    plane = shape[2] * shape[3]
    for k in ks:
        scores, inds, clses, _, _ = mmdet_topk_peaks()(heat, k, 3)
        found = peaks_triton(heat.to(device), k, 3, shape=launch_shape)
        assert found is not None
        found_scores, labels, ys, xs, indices = (t.cpu() for t in found)
        flat = labels * plane + indices
        assert torch.equal(found_scores, scores) and torch.equal(indices, ys * shape[3] + xs)
        for b in range(shape[0]):
            above = scores[b] > scores[b, -1]
            assert set(zip(labels[b][above].tolist(), indices[b][above].tolist())) == \
                set(zip(clses[b][above].tolist(), inds[b][above].tolist()))
            ties = scores[b] == scores[b, -1]
            assert flat[b][ties].tolist() == sorted(flat[b][ties].tolist())  # equal scores: ascending index
        # the same peaks as the torch backend, ties included (both take the smallest indices)
        alone = heatmap_peaks(heat, k, backend="torch")
        if levels == 2:
            assert torch.equal(flat, alone.labels * plane + alone.indices)


def test_bench_baselines_match_the_references():
    """The compositions and the loop the decode bench times give mmdet's / mmdet3d's results."""
    from gaussdraw.reference import centerpoint_topk_composed, circle_nms_per_box, heatmap_peaks_composed

    g = torch.Generator().manual_seed(11)
    heat = torch.rand(2, 3, 17, 23, generator=g)
    for got, want in zip(heatmap_peaks_composed(heat, 40, 3), mmdet_topk_peaks()(heat, 40, 3)):
        assert torch.equal(got.float(), want.float())
    for got, want in zip(centerpoint_topk_composed(heat, 30), mmdet3d_centerpoint_topk()(heat, 30)):
        assert torch.equal(got.float(), want.float())
    centers, scores = torch.rand(400, 2, generator=g) * 30, torch.rand(400, generator=g)
    dets = torch.cat([centers, scores[:, None]], 1).numpy()
    for thresh, post in ((1.0, 83), (4.0, 10)):
        got = circle_nms_per_box(dets[:, 0].copy(), dets[:, 1].copy(), dets[:, 2].copy(), thresh, post)
        assert [int(i) for i in got] == [int(i) for i in mmdet3d_circle_nms()(dets, thresh, post)]
