"""gaussian_radius against mmdet's and mmdet3d's own functions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaussdraw import gaussian_radius

from .helpers import raises_text
from .oracles import mmdet3d_gaussian_radius, mmdet_gaussian_radius

SIZES = st.one_of(
    st.floats(0, 8, width=32), st.floats(0, 600, width=32), st.floats(0, 2e4, width=32), st.sampled_from([0.0, 1.0])
)
OVERLAPS = st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]) | st.floats(0.01, 0.99)


def _oracle(formula, heights, widths, min_overlap):
    """The reference, one box at a time on 0-d float32 tensors (as the heads call it)."""
    radius = mmdet_gaussian_radius() if formula == "mmdet" else mmdet3d_gaussian_radius()
    return torch.stack([torch.as_tensor(radius([h, w], min_overlap)).float()
                        for h, w in zip(heights.unbind(), widths.unbind())])


def _assert_agrees(actual, expected, heights, widths):
    """Equal to 1e-6 relative, or to a few float32 ulps of the square roots' size (h + w): the
    roots nearly cancel for thin boxes, and mmdet3d's float32 ``torch.sqrt`` on the CPU can be
    an ulp off where ours is correctly rounded (as CUDA's is). ``int()`` equal except within that
    error of an integer."""
    a, e = actual.double(), expected.double()
    tolerance = 1e-6 * e.abs().clamp(min=1) + 2.0**-21 * (heights.double() + widths.double())
    assert torch.all((a - e).abs() <= tolerance), ((a - e).abs() / tolerance).max()
    near_integer = (e - e.round()).abs() <= tolerance
    assert torch.equal(a.long()[~near_integer], e.long()[~near_integer])


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.tuples(SIZES, SIZES), min_size=1, max_size=30), min_overlap=OVERLAPS,
       formula=st.sampled_from(["cornernet", "mmdet"]))
def test_matches_references_float32(sizes, min_overlap, formula):
    heights = torch.tensor([h for h, _ in sizes], dtype=torch.float32)
    widths = torch.tensor([w for _, w in sizes], dtype=torch.float32)
    actual = gaussian_radius(heights, widths, min_overlap, formula=formula)
    assert actual.dtype == torch.float32
    expected = _oracle(formula, heights, widths, min_overlap)
    _assert_agrees(actual, expected, heights, widths)
    if formula == "mmdet":  # the same float32 operations in the same order, sqrt correctly rounded: equal
        assert torch.equal(actual, expected)


@settings(max_examples=30, deadline=None)
@given(height=st.floats(0, 1e4), width=st.floats(0, 1e4), min_overlap=OVERLAPS)
def test_mmdet_python_numbers_in_float64(height, width, min_overlap):
    actual = gaussian_radius(height, width, min_overlap, formula="mmdet")
    assert actual.dtype == torch.float64
    expected = mmdet_gaussian_radius()([height, width], min_overlap)
    assert actual.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_cornernet_numbers_are_float32_like_mmdet3d():
    actual = gaussian_radius(40.0, 40.0, 0.7)
    assert actual.dtype == torch.float32
    expected = mmdet3d_gaussian_radius()((torch.tensor(40.0), torch.tensor(40.0)), 0.7)
    assert torch.equal(actual, expected)


def test_formulas_differ():
    cornernet = gaussian_radius(torch.tensor(30.0), torch.tensor(60.0), 0.7, formula="cornernet")
    mmdet = gaussian_radius(torch.tensor(30.0), torch.tensor(60.0), 0.7, formula="mmdet")
    assert cornernet.item() > 2 * mmdet.item()


def test_broadcasting_and_dtypes():
    heights = torch.arange(1, 5, dtype=torch.float64).view(4, 1)
    widths = torch.tensor([3.0, 7.0, 11.0], dtype=torch.float64)
    radii = gaussian_radius(heights, widths, 0.5)
    assert radii.shape == (4, 3) and radii.dtype == torch.float64
    assert radii[2, 1].item() == pytest.approx(gaussian_radius(3.0, 7.0, 0.5).item(), rel=1e-6)
    assert gaussian_radius(torch.tensor([4, 8]), torch.tensor([4, 8]), 0.5).dtype == torch.float32
    assert gaussian_radius(torch.tensor(0.0), torch.tensor(0.0)).item() == 0.0


def test_radius_grows_with_size_and_shrinks_with_overlap():
    sizes = torch.linspace(1, 200, 50)
    for formula in ("cornernet", "mmdet"):
        r = gaussian_radius(sizes, sizes, 0.5, formula=formula)
        assert torch.all(r[1:] > r[:-1])
        assert torch.all(gaussian_radius(sizes, sizes, 0.8, formula=formula) < r)
        assert math.isfinite(r.sum().item())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(min_overlap=0.0), ValueError, r"min_overlap must be in \(0, 1\); got 0.0"),
        (dict(min_overlap=1.5), ValueError, r"min_overlap must be in \(0, 1\); got 1.5"),
        (dict(min_overlap="0.5"), TypeError, r"min_overlap must be a Python number"),
        (dict(formula="centernet"), ValueError, r"formula must be one of \('cornernet', 'mmdet'\)"),
        (dict(height="10"), TypeError, r"height must be a tensor or a real number; got str"),
        (dict(width=torch.tensor([True])), TypeError, r"width must be a real tensor"),
    ],
    ids=["overlap-0", "overlap-1.5", "overlap-str", "formula", "height-str", "width-bool"],
)
def test_bad_arguments(kwargs, error, match):
    args = dict(height=10.0, width=20.0, min_overlap=0.7, formula="cornernet")
    args.update(kwargs)
    formula = args.pop("formula")
    with pytest.raises(error, match=match):
        gaussian_radius(**args, formula=formula)


def test_gaussian_radius_takes_mmdets_call_with_a_formula():
    with raises_text(ValueError, 'det_size (10, 20) needs formula=: mmdet and mmdet3d both call '
                             'gaussian_radius(det_size, min_overlap) but with different formulas; pass '
                             'formula="mmdet" (mmdet 3.x) or formula="cornernet" (mmdet3d 1.x), or call '
                             'gaussian_radius(10, 20, 0.7) for CornerNet\'s'):
        gaussian_radius((10, 20), 0.7)
    mmdet = gaussian_radius((10, 20), 0.7, formula="mmdet")
    assert mmdet.item() == pytest.approx(mmdet_gaussian_radius()((10, 20), 0.7), rel=1e-12)
    assert torch.equal(mmdet, gaussian_radius(10, 20, 0.7, formula="mmdet"))
    h, w = torch.tensor(10.0), torch.tensor(20.0)  # mmdet3d's call: 0-d tensors, min_overlap by keyword
    cornernet = gaussian_radius([h, w], min_overlap=0.5, formula="cornernet")
    assert torch.equal(cornernet, mmdet3d_gaussian_radius()((h, w), min_overlap=0.5))
    with raises_text(TypeError, "gaussian_radius takes (height, width, min_overlap) or (det_size, min_overlap); got "
                            "det_size (10, 20) and both width=0.7 and min_overlap=0.5"):
        gaussian_radius((10, 20), 0.7, 0.5, formula="mmdet")
    with raises_text(TypeError, "height must be a tensor or a real number; got a list of 3: for several boxes pass "
                            "torch.tensor(heights), torch.tensor(widths)"):
        gaussian_radius([10, 20, 30], [1, 2, 3], 0.7)
    with raises_text(TypeError, "width is required: call gaussian_radius(height, width, min_overlap), or "
                            "gaussian_radius((height, width), min_overlap, formula=...) as mmdet does"):
        gaussian_radius(10.0)
