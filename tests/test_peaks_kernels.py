"""The peaks kernels' own paths (ops/peaks.py: group maxima, bound, candidates, select; ops/class_peaks.py:
the per-class top-k) against a plain reference that orders every peak by (score, ascending index): the
order both paths promise, ties at the k-th place included. Small launch shapes put tiny maps (the
interpreter's) on the tile-bound path; every kernel size branch (3: by rows; 1, 5: the 2-d stencil)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gaussdraw import heatmap_peaks
from gaussdraw.ops.class_peaks import class_peaks_triton
from gaussdraw.ops.local_maximum import local_maximum_torch
from gaussdraw.ops.peaks import TILE_BOUND, PeaksLaunchShape, launch_shape, peaks_triton

from .oracles import mmdet_topk_peaks

SETTINGS = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])  # the interpreter is too slow to shrink
SMALL = PeaksLaunchShape(rows=4, group=2, block_w=16, capacity=(2, 32), chunk=32)  # many groups on a tiny map
SHAPES = [SMALL, dataclasses.replace(SMALL, shuffle=True, strips=1, rows=2),  # neighbours by warp shuffles
          dataclasses.replace(SMALL, strips=4, rows=2, programs=3, candidate_warps=4)]


def ordered_peaks(heat: torch.Tensor, k: int, kernel: int, per_class_k: int | None = None):
    """(scores (B, k) float64, flat indices (B, k)) by loops: every pixel's local-maximum value (mmdet's
    composition, in float32), best first (NaN above everything), equal scores by ascending index; with
    ``per_class_k``, each class's first ``per_class_k`` of that order, then the first k."""
    values = local_maximum_torch(heat.float(), kernel)
    batch, classes, height, width = heat.shape
    scores, flats = [], []
    for b in range(batch):
        chosen = []
        for c in range(classes):
            plane = values[b, c].reshape(-1).double().tolist()
            ranked = sorted(((v == v, -v), c * height * width + i) for i, v in enumerate(plane))  # NaN first
            chosen += ranked[:per_class_k] if per_class_k else ranked
        chosen = sorted(chosen)[:k]
        scores.append([-s for (_, s), _ in chosen])
        flats.append([f for _, f in chosen])
    return torch.tensor(scores, dtype=torch.float64), torch.tensor(flats)


def assert_same(found, heat, k, kernel, per_class_k=None):
    """The five outputs against :func:`ordered_peaks`, exactly (NaN where NaN)."""
    scores, flat = ordered_peaks(heat, k, kernel, per_class_k)
    plane, width = heat.shape[2] * heat.shape[3], heat.shape[3]
    found = [t.cpu() for t in found]
    assert found[0].dtype == heat.dtype and all(t.dtype == torch.int64 for t in found[1:])
    torch.testing.assert_close(found[0].double(), scores, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(found[1] * plane + found[4], flat), "peaks and their order"
    assert torch.equal(found[4], found[2] * width + found[3]) and torch.equal(found[4], flat % plane)


def triton_device(device_backend):
    device, backend = device_backend
    if backend != "triton":
        pytest.skip("the kernels are the Triton backend's")
    return device


def random_map(seed, shape, levels, zeros=0.5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    heat = torch.randint(0, levels, shape, generator=g).float() / levels
    heat[torch.rand(shape, generator=g) < zeros] = 0.0
    return heat.to(dtype)


@SETTINGS
@given(seed=st.integers(0, 2**16), levels=st.sampled_from([2, 5, 1000]), kernel=st.sampled_from([3, 1]),
       shape=st.sampled_from([(2, 2, 9, 20), (1, 3, 7, 33), (2, 1, 16, 16)]), launch=st.sampled_from(SHAPES),
       nan=st.booleans(), data=st.data())
def test_tile_bound_path_orders_every_peak(device_backend, seed, levels, kernel, shape, launch, nan, data):
    """Random maps with plateaus (few levels: group maxima equal to the bound), peaks on borders and odd
    sizes, a NaN or two; k up to past the positive peaks (zeros then fill the tail, smallest indices
    first); the small capacity overflows on plateaus. Every launch shape: strips, shuffles, programs."""
    device = triton_device(device_backend)
    heat = random_map(seed, shape, levels)
    if nan:
        heat.view(-1)[torch.randperm(heat.numel(), generator=torch.Generator().manual_seed(seed))[:2]] = float("nan")
    one_row_groups = shape[1] * shape[2] * -(-shape[3] // launch.block_w)  # fewer than 2 k of them: no path
    k = data.draw(st.integers(1, min(one_row_groups // 2, 60)))
    assert launch_shape(launch, shape[1], shape[2], shape[3], k, kernel) is not None
    found = peaks_triton(heat.to(device), k, kernel, shape=launch)
    assert found is not None
    assert_same(found, heat, k, kernel)
    assert peaks_triton(heat.to(device), k, 5, shape=launch) is None  # windows over 3: the plain top-k


@SETTINGS
@given(seed=st.integers(0, 2**16), levels=st.sampled_from([2, 1000]), kernel=st.sampled_from([3, 1]),
       shape=st.sampled_from([(1, 2, 6, 9), (2, 1, 5, 4), (1, 1, 3, 13)]), data=st.data())
def test_default_shape_takes_large_k_by_smaller_groups(device_backend, seed, levels, kernel, shape, data):
    """The default launch shape on maps smaller than a tile: groups shrink to one row until a sample has 2 k
    of them; k up to half the number of such groups, every pixel a candidate where plateaus reach the bound."""
    device = triton_device(device_backend)
    heat = random_map(seed, shape, levels)
    most = shape[1] * shape[2]  # one row a group, one column block (widths here are at most 16)
    k = data.draw(st.integers(1, most // 2))
    fitted = launch_shape(TILE_BOUND, shape[1], shape[2], shape[3], k)
    assert fitted is not None and fitted.block_w >= 4 and fitted.rows % fitted.group == 0
    found = peaks_triton(heat.to(device), k, kernel)
    assert found is not None
    assert_same(found, heat, k, kernel)
    assert launch_shape(TILE_BOUND, shape[1], shape[2], shape[3], most + 1) is None  # fewer groups than k


@pytest.mark.parametrize("fill, dtype", [(0.0, torch.float16), (0.25, torch.bfloat16), (-1.0, torch.float32)],
                         ids=["zeros", "flat", "negative-flat"])
def test_tile_bound_path_on_flat_maps(device_backend, fill, dtype):
    """Every pixel equal (every pixel a peak; every group at the bound; candidates overflow), every dtype."""
    device = triton_device(device_backend)
    heat = torch.full((1, 2, 6, 20), fill, dtype=dtype)
    for k in (1, 12):
        assert_same(peaks_triton(heat.to(device), k, 3, shape=SMALL), heat, k, 3)


def test_tile_bound_path_nan_and_infinities(device_backend):
    """As mmdet's composition: a NaN pixel is a NaN peak (first), its neighbours 0; inf a peak; -inf alone
    in its window a NaN (-inf * 0)."""
    device = triton_device(device_backend)
    heat = random_map(3, (1, 2, 8, 24), 1000)
    heat[0, 0, 3, 4], heat[0, 1, 0, 0], heat[0, 1, 7, 23] = float("nan"), float("inf"), 0.75
    heat[0, 0, 6, 10] = float("nan")
    for k in (1, 2, 5, 16):
        assert_same(peaks_triton(heat.to(device), k, 3, shape=SMALL), heat, k, 3)
    heat = torch.full((1, 1, 6, 20), float("-inf"))
    heat[0, 0, 2, 2] = 1.0
    assert_same(peaks_triton(heat.to(device), 6, 3, shape=SMALL), heat, 6, 3)


def test_tile_bound_path_matches_mmdet_on_distinct_values(device_backend):
    """With distinct values mmdet's own top-k gives the same peaks, element for element."""
    device = triton_device(device_backend)
    g = torch.Generator().manual_seed(1)
    heat = torch.rand(2, 3, 10, 30, generator=g)
    for k in (1, 30):
        scores, inds, clses, ys, xs = mmdet_topk_peaks()(heat, k, 3)
        found = [t.cpu() for t in peaks_triton(heat.to(device), k, 3, shape=SMALL)]
        assert torch.equal(found[0], scores) and torch.equal(found[1], clses) and torch.equal(found[4], inds)
        assert torch.equal(found[2], ys.long()) and torch.equal(found[3], xs.long())


@SETTINGS
@given(seed=st.integers(0, 2**16), levels=st.sampled_from([2, 5, 1000]), kernel=st.sampled_from([1, 3]),
       shape=st.sampled_from([(2, 3, 5, 7), (1, 4, 8, 8), (3, 1, 3, 11)]), data=st.data())
def test_per_class_path_orders_every_peak(device_backend, seed, levels, kernel, shape, data):
    """CenterPoint's two-stage top-k in two kernels: per_class_k from 1 to H * W, k from 1 to C * per_class_k
    (past the positive pixels too), ties at both stages' last places (smallest indices first)."""
    device = triton_device(device_backend)
    heat = random_map(seed, shape, levels)
    per_class_k = data.draw(st.integers(1, shape[2] * shape[3]))
    k = data.draw(st.integers(1, shape[1] * per_class_k))
    found = class_peaks_triton(heat.to(device), k, kernel, per_class_k)
    assert found is not None
    assert_same(found, heat, k, kernel, per_class_k)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_per_class_path_flat_maps_nan_and_dtypes(device_backend, dtype):
    device = triton_device(device_backend)
    heat = torch.zeros(2, 3, 4, 5, dtype=dtype)
    assert_same(class_peaks_triton(heat.to(device), 11, 1, 6), heat, 11, 1, 6)
    heat = random_map(7, (2, 3, 4, 5), 8, dtype=dtype)
    heat[0, 1, 2, 2], heat[1, 0, 0, 0], heat[1, 2, 3, 4] = float("nan"), float("inf"), float("-inf")
    for k, per_class_k in ((1, 1), (5, 3), (30, 20)):
        assert_same(class_peaks_triton(heat.to(device), k, 1, per_class_k), heat, k, 1, per_class_k)


@SETTINGS
@given(seed=st.integers(0, 2**16), levels=st.sampled_from([2, 5, 1000]), data=st.data())
def test_per_class_k_at_least_k_is_the_one_stage_top_k(device_backend, seed, levels, data, monkeypatch):
    """No class holds more than k of a sample's top k: with per_class_k >= k the two-stage top-k is the one-stage
    one (the same keys), which the public call takes on the tile-bound path; ties at both places included
    (k at most half the map's one-row groups, 3 x 12: the tile path applies; past it, ties straddling the
    k-th place are the plain top-k's choice, as documented)."""
    device = triton_device(device_backend)
    from gaussdraw.decode import peaks as decode_peaks

    heat = random_map(seed, (2, 3, 12, 24), levels)
    k = data.draw(st.integers(1, 18))
    assert launch_shape(TILE_BOUND, 3, 12, 24, k, 1) is not None
    per_class_k = data.draw(st.integers(k, 12 * 24))
    taken = []
    monkeypatch.setattr(decode_peaks, "class_peaks_triton", lambda *a: taken.append(a) or None)
    assert_same(heatmap_peaks(heat.to(device), k, 1, per_class_k=per_class_k, backend="triton"), heat, k, 1,
                per_class_k)
    assert not taken, "the per-class kernels ran"


def test_public_call_takes_the_kernel_paths(device_backend):
    """heatmap_peaks on the Triton backend returns the kernels' results (float64: the top-k path)."""
    device = triton_device(device_backend)
    heat = random_map(5, (1, 2, 40, 130), 1000)
    assert_same(heatmap_peaks(heat.to(device), 12, backend="triton"), heat, 12, 3)
    assert_same(heatmap_peaks(heat.to(device), 12, 1, per_class_k=9, backend="triton"), heat, 12, 1, 9)
    assert peaks_triton(heat.double().to(device), 12, 3) is None
    assert class_peaks_triton(heat.double().to(device), 12, 1, 9) is None
