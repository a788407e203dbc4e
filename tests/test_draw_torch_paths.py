"""The torch kernel's three ways of drawing (a few boxes one by one, groups of small windows by
scatter, large windows into their slices, both of the latter from stamps kept across calls or
made for the call), each against the per-box reference on maps large enough to reach all three,
in every dtype, with and without the zeroing of tiny values."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussdraw import draw_heatmap, draw_heatmap_batched
from gaussdraw.ops import draw_gaussians_torch as kernel
from gaussdraw.reference import draw_heatmap_per_box

from .helpers import assert_close, tolerance
from .test_draw import background

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@st.composite
def wide_scenes(draw):
    """(planes, H, W, centers, radii, idxes): windows up to 241 px a side on maps up to 200 x 170,
    centers on and off the map."""
    height, width = draw(st.integers(1, 170)), draw(st.integers(1, 200))
    planes = draw(st.integers(1, 3))
    count = draw(st.integers(0, 12))
    radii = draw(st.lists(st.one_of(st.integers(0, 6), st.integers(20, 120)), min_size=count, max_size=count))
    centers = [(draw(st.integers(-r - 2, width + r + 1)), draw(st.integers(-r - 2, height + r + 1))) for r in radii]
    idxes = draw(st.lists(st.integers(0, planes - 1), min_size=count, max_size=count))
    return (planes, height, width, torch.tensor(centers, dtype=torch.int64).reshape(count, 2),
            torch.tensor(radii, dtype=torch.int64), torch.tensor(idxes, dtype=torch.int64))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scene=wide_scenes(), dtype=st.sampled_from(DTYPES), factor=st.sampled_from([6.0, 20.0]),
       k=st.sampled_from([1.0, 0.25]), seed=st.integers(0, 2**16))
def test_every_way_of_drawing_matches_the_reference(scene, dtype, factor, k, seed):
    """factor 20 makes far corners fall below epsilon (zeroed); 6 does not (the zeroing is skipped)."""
    planes, height, width, centers, radii, idxes = scene
    start = background((planes, height, width), dtype, seed=seed)
    expected = draw_heatmap_per_box(start.clone(), centers, radii, idxes, factor, k)
    heatmap = start.clone()
    draw_heatmap(heatmap, centers, radii, idxes, factor, k, backend="torch")
    assert_close(heatmap, expected, tolerance(dtype) * max(k, 1.0), f"torch kernel ({dtype}, factor {factor}):")


@pytest.mark.parametrize("few, large, group_pixels, cached_radius, cache_pixels", [
    (0, 10**6, 10**9, 64, 1 << 20), (0, 10**6, 1, 64, 1 << 20), (0, 0, 1, 64, 1 << 20), (100, 64, 8192, 64, 1 << 20),
    (0, 0, 1, -1, 1 << 20), (100, 0, 1, -1, 1 << 20), (0, 0, 1, 64, 1), (100, 0, 1, 10**6, 1 << 20)],
    ids=["one-group", "groups-by-size", "all-slices", "one-by-one", "slices-uncached", "one-by-one-uncached",
         "cache-starting-over", "every-radius-cached"])
@pytest.mark.parametrize("factor, k", [(6.0, 1.0), (20.0, 0.5)], ids=["plain", "zeroing-scaled"])
def test_each_way_alone_gives_the_same_heatmap(monkeypatch, few, large, group_pixels, cached_radius, cache_pixels,
                                               factor, k):
    """Forcing every box through one way gives the default's heatmap bit for bit (the same arithmetic,
    the same zeroing of values below epsilon, which a tolerance would not see); slices cut from
    cached whole-window stamps, from a radius's shared stamp or from each box's own agree."""
    g = torch.Generator().manual_seed(3)
    count = 60
    centers = torch.stack([torch.randint(-20, 150, (count,), generator=g), torch.randint(-20, 110, (count,), generator=g)], 1)
    radii = torch.cat([torch.randint(0, 8, (count // 2,), generator=g), torch.randint(8, 90, (count - count // 2,), generator=g)])
    labels = torch.randint(0, 3, (count,), generator=g)
    start = torch.zeros(2, 3, 100, 130)  # zeros: a value zeroed below epsilon shows
    default = draw_heatmap_batched(start.clone(), [centers[:40], centers[40:]], [radii[:40], radii[40:]], factor, k,
                                   labels=[labels[:40], labels[40:]], backend="torch")
    monkeypatch.setattr(kernel, "FEW", few)
    monkeypatch.setattr(kernel, "LARGE", large)
    monkeypatch.setattr(kernel, "ONE_GROUP_PIXELS", group_pixels)
    monkeypatch.setattr(kernel, "CACHED_RADIUS", cached_radius)
    monkeypatch.setattr(kernel, "STAMP_CACHE_PIXELS", cache_pixels)
    monkeypatch.setattr(kernel, "_STAMPS", {})
    forced = draw_heatmap_batched(start.clone(), [centers[:40], centers[40:]], [radii[:40], radii[40:]], factor, k,
                                  labels=[labels[:40], labels[40:]], backend="torch")
    assert torch.equal(forced, default)
    assert not torch.equal(default, start)


def test_nan_stays_nan_in_every_way(monkeypatch):
    heatmap = torch.zeros(1, 150, 150)
    heatmap[0, 75, 75] = float("nan")
    heatmap[0, 10, 10] = float("nan")
    centers, radii, idxes = torch.tensor([[75, 75], [10, 10], [12, 9]]), torch.tensor([80, 2, 3]), torch.zeros(3, dtype=torch.long)
    for few in (0, 100):
        monkeypatch.setattr(kernel, "FEW", few)
        out = draw_heatmap(heatmap.clone(), centers, radii, idxes, backend="torch")
        assert out[0, 75, 75].isnan() and out[0, 10, 10].isnan() and out.isnan().sum() == 2


def test_kept_stamps_stay_bounded_and_read_only(monkeypatch):
    """Stamps kept across calls never pass the cap by more than one stamp, cannot be written
    through, and a heatmap drawn after the cache started over equals one drawn before."""
    monkeypatch.setattr(kernel, "_STAMPS", {})
    monkeypatch.setattr(kernel, "_STAMP_PIXELS", 0)
    monkeypatch.setattr(kernel, "STAMP_CACHE_PIXELS", 5000)
    radii = torch.arange(0, 65)
    centers = torch.full((65, 2), 60)
    idxes = torch.arange(65) % 4
    first = draw_heatmap(torch.zeros(4, 120, 120), centers, radii, idxes, backend="torch")
    kept = list(kernel._STAMPS.values())
    assert kept and sum(s.shape[0] * s.shape[1] for s in kept) <= 5000 + 129 * 129
    assert not any(s.flags.writeable for s in kept)
    again = draw_heatmap(torch.zeros(4, 120, 120), centers, radii, idxes, backend="torch")
    assert torch.equal(first, again)
