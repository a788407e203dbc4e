"""draw_heatmap / draw_heatmap_batched / render_*: every backend against the oracles and each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gaussdraw
from gaussdraw import Ragged, draw_heatmap, draw_heatmap_batched, render_heatmaps, render_heatmaps_batched
from gaussdraw.reference import draw_heatmap_batched_per_box, draw_heatmap_per_box

from .helpers import assert_close, tolerance
from .oracles import draw_with_oracle

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def scenes(draw, max_boxes=20, in_map=False):
    """(planes, H, W, centers (T, 2), radii (T,), heatmap_idxes (T,)) with borders,
    out-of-map centers, r = 0 and r larger than the map."""
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 40))
    planes = draw(st.integers(1, 3))
    count = draw(st.integers(0, max_boxes))
    big = max(height, width) + 4
    radii = draw(st.lists(st.one_of(st.integers(0, 4), st.integers(0, big)), min_size=count, max_size=count))
    centers = []
    for r in radii:
        if in_map:
            centers.append((draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))))
        else:
            centers.append((draw(st.integers(-r - 3, width + r + 2)), draw(st.integers(-r - 3, height + r + 2))))
    idxes = draw(st.lists(st.integers(0, planes - 1), min_size=count, max_size=count))
    return (
        planes, height, width,
        torch.tensor(centers, dtype=torch.int64).reshape(count, 2),
        torch.tensor(radii, dtype=torch.int64),
        torch.tensor(idxes, dtype=torch.int64),
    )


def background(shape, dtype=torch.float32, seed=0):
    """A heatmap that is not all zeros: some existing values survive the max-merge."""
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(shape, generator=g) * 0.6
    return torch.where(torch.rand(shape, generator=g) < 0.5, values, torch.zeros(())).to(dtype)


def to(device, *tensors):
    return [t.to(device) for t in tensors]


# ----------------------------------------------------------------------------
# against mmdet / mmdet3d
# ----------------------------------------------------------------------------


@SETTINGS
@given(scene=scenes(), k=st.sampled_from([1.0, 0.5, 2.0]), seed=st.integers(0, 2**16))
def test_matches_mmdet3d(device_backend, scene, k, seed):
    device, backend = device_backend
    planes, height, width, centers, radii, idxes = scene
    start = background((planes, height, width), seed=seed)
    expected = draw_with_oracle(start.clone(), centers, radii, idxes, k=k, which="mmdet3d")
    heatmap, c, r, i = to(device, start, centers, radii, idxes)
    out = draw_heatmap(heatmap, c, r, i, k_scale=k, backend=backend)
    assert out is heatmap
    assert_close(heatmap, expected, 1e-6, "vs mmdet3d:")


@SETTINGS
@given(
    scene=scenes(in_map=True),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_matches_mmdet_in_map(device_backend, scene, dtype, seed):
    """mmdet's gen_gaussian_target (its own dtype rules) for centers inside the map."""
    device, backend = device_backend
    planes, height, width, centers, radii, idxes = scene
    start = background((planes, height, width), dtype, seed=seed)
    expected = draw_with_oracle(start.clone(), centers, radii, idxes, which="mmdet")
    heatmap, c, r, i = to(device, start, centers, radii, idxes)
    draw_heatmap(heatmap, c, r, i, backend=backend)
    # fp16: mmdet computes the Gaussian in fp16 itself; allow two fp16 ulps at 1.0.
    atol = 2 * tolerance(dtype) if dtype == torch.float16 else tolerance(dtype)
    assert_close(heatmap, expected, atol, f"vs mmdet ({dtype}):")


# ----------------------------------------------------------------------------
# against the per-box reference: any dtype, sigma factor and k
# ----------------------------------------------------------------------------


@SETTINGS
@given(
    scene=scenes(),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
    factor=st.sampled_from([6.0, 3.0, 20.0, 0.7]),
    k=st.sampled_from([1.0, 0.25, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_matches_reference(device_backend, scene, dtype, factor, k, seed):
    device, backend = device_backend
    planes, height, width, centers, radii, idxes = scene
    start = background((planes, height, width), dtype, seed=seed)
    expected = draw_heatmap_per_box(start.clone(), centers, radii, idxes, factor, k)
    heatmap, c, r, i = to(device, start, centers, radii, idxes)
    draw_heatmap(heatmap, c, r, i, factor, k, backend=backend)
    assert heatmap.dtype == dtype
    assert_close(heatmap, expected, tolerance(dtype) * max(k, 1.0), f"vs reference ({dtype}, factor {factor}):")


@pytest.mark.parametrize(
    "height, width, center, radius",
    [
        (20, 50, (0, 0), 1),  # corner
        (20, 50, (49, 19), 3),  # far corner
        (20, 50, (10, 5), 0),  # r = 0: one pixel
        (20, 50, (25, 10), 200),  # r larger than the map
        (1, 37, (5, 0), 4),  # one row
        (37, 1, (0, 36), 4),  # one column
        (20, 50, (-3, 5), 4),  # left of the map, window reaches in
        (20, 50, (55, 25), 8),  # beyond the far corner, window reaches in
        (20, 50, (-10, 5), 4),  # window entirely outside
        (20, 50, (10**12, -(10**12)), 10**12),  # huge values: no overflow
    ],
    ids=["corner", "far-corner", "r0", "r-larger-than-map", "H1-W37", "H37-W1", "left-out", "beyond",
         "all-outside", "huge"],
)
def test_edge_cases(device_backend, height, width, center, radius):
    device, backend = device_backend
    start = background((2, height, width))
    centers, radii, idxes = torch.tensor([center]), torch.tensor([radius]), torch.tensor([1])
    expected = draw_heatmap_per_box(start.clone(), centers, radii, idxes)
    heatmap, c, r, i = to(device, start, centers, radii, idxes)
    draw_heatmap(heatmap, c, r, i, backend=backend)
    assert_close(heatmap, expected, 1e-6)
    assert_close(heatmap[0], start[0], 0.0, "untouched plane:")
    if radius == 0:
        assert heatmap[1, center[1], center[0]].item() == 1.0


def test_many_boxes_on_one_heatmap(device_backend):
    device, backend = device_backend
    g = torch.Generator().manual_seed(1)
    count = 300
    centers = torch.stack([torch.randint(0, 37, (count,), generator=g), torch.randint(0, 23, (count,), generator=g)], 1)
    radii = torch.randint(0, 9, (count,), generator=g)
    idxes = torch.zeros(count, dtype=torch.long)
    start = background((1, 23, 37))
    expected = draw_with_oracle(start.clone(), centers, radii, idxes)
    heatmap, c, r, i = to(device, start, centers, radii, idxes)
    draw_heatmap(heatmap, c, r, i, backend=backend)
    assert_close(heatmap, expected, 1e-6)


def test_empty_inputs(device_backend):
    device, backend = device_backend
    start = background((3, 5, 6))
    heatmap = start.to(device)
    empty = torch.zeros(0, dtype=torch.long, device=device)
    draw_heatmap(heatmap, empty.reshape(0, 2), empty, empty, backend=backend)
    assert_close(heatmap, start, 0.0)
    draw_heatmap_batched(heatmap, [empty.reshape(0, 2)] * 3, [empty] * 3, backend=backend)
    assert_close(heatmap, start, 0.0)


def test_int32_and_strided_inputs(device_backend):
    """int32 indices, non-contiguous centers/radii/indices and a non-contiguous heatmap."""
    device, backend = device_backend
    g = torch.Generator().manual_seed(2)
    count = 25
    centers = torch.randint(-4, 30, (count, 2), generator=g)
    radii = torch.randint(0, 7, (count,), generator=g)
    idxes = torch.randint(0, 6, (count,), generator=g)
    start = background((2, 3, 21, 26))
    expected = draw_heatmap_per_box(start.clone(), centers, radii, idxes)

    strided_centers = centers.t().contiguous().t().int()  # column-major (T, 2)
    strided_radii = torch.stack([radii, radii], 1)[:, 1].int()  # stride 2
    strided_idxes = torch.stack([idxes, idxes], 1)[:, 0]
    heatmap = start.to(device).permute(1, 0, 3, 2).contiguous().permute(1, 0, 3, 2)  # not view-flattenable
    assert not heatmap.is_contiguous()
    c, r, i = to(device, strided_centers, strided_radii, strided_idxes)
    out = draw_heatmap(heatmap, c, r, i, backend=backend)
    assert out is heatmap
    assert_close(heatmap, expected, 1e-6)


def test_backends_agree_on_a_large_scene(device_backend):
    device, backend = device_backend
    g = torch.Generator().manual_seed(3)
    count = 200
    centers = torch.stack([torch.randint(-20, 150, (count,), generator=g), torch.randint(-20, 90, (count,), generator=g)], 1)
    radii = torch.randint(0, 60, (count,), generator=g)
    idxes = torch.randint(0, 4, (count,), generator=g)
    start = background((4, 70, 130))
    expected = draw_heatmap(start.clone(), centers, radii, idxes, backend="torch")
    heatmap, c, r, i = to(device, start, centers, radii, idxes)
    draw_heatmap(heatmap, c, r, i, backend=backend)
    assert_close(heatmap, expected, 1e-6)


# ----------------------------------------------------------------------------
# batched format: every input form gives the same result
# ----------------------------------------------------------------------------


class RaggedBatchLike:
    """The attributes of ACCV-Lab's RaggedBatch that matter here (padded .tensor, .sample_sizes, .mask)."""

    def __init__(self, tensor, sample_sizes):
        self.tensor, self.sample_sizes = tensor, sample_sizes
        self.mask = torch.arange(tensor.shape[1], device=tensor.device) < sample_sizes[:, None]


def _batch(seed, samples=4, classes=3, height=17, width=29, max_boxes=9):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(0, max_boxes + 1, (samples,), generator=g).tolist()
    centers = [torch.stack([torch.randint(-5, width + 5, (n,), generator=g),
                            torch.randint(-5, height + 5, (n,), generator=g)], 1) for n in sizes]
    radii = [torch.randint(0, 12, (n,), generator=g) for n in sizes]
    labels = [torch.randint(0, classes, (n,), generator=g) for n in sizes]
    return sizes, centers, radii, labels


def _padded(tensors, fill, extra=2):
    """Padded tensor whose padding holds garbage that must never be read."""
    tmax = max(t.shape[0] for t in tensors) + extra
    out = torch.full((len(tensors), tmax, *tensors[0].shape[1:]), fill, dtype=tensors[0].dtype)
    for b, t in enumerate(tensors):
        out[b, : t.shape[0]] = t
    return out


@pytest.mark.parametrize("classwise", [False, True], ids=["per-sample", "classwise"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_forms_agree(device_backend, classwise, seed):
    device, backend = device_backend
    sizes, centers, radii, labels = _batch(seed)
    samples, classes = len(sizes), 3
    shape = (samples, classes, 17, 29) if classwise else (samples, 17, 29)
    start = background(shape, seed=seed)
    expected = draw_heatmap_batched_per_box(start.clone(), centers, radii, labels_list=labels if classwise else None)

    dev = lambda ts: [t.to(device) for t in ts]  # noqa: E731
    counts = torch.tensor(sizes, device=device)
    padded = {
        "centers": _padded(centers, 10**6).to(device),
        "radii": _padded(radii, -7).to(device),
        "labels": _padded(labels, 999).to(device),
    }
    forms = {
        "list": (dict(centers=dev(centers), radii=dev(radii), labels=dev(labels)), None),
        "Ragged": ({k: Ragged(v, counts) for k, v in padded.items()}, None),
        "RaggedBatch": ({k: RaggedBatchLike(v, counts) for k, v in padded.items()}, None),
        "padded+counts": (padded, counts.int()),
        "mixed": (dict(centers=dev(centers), radii=Ragged(padded["radii"], counts), labels=padded["labels"]), None),
    }
    for name, (inputs, given_counts) in forms.items():
        heatmap = start.to(device)
        out = draw_heatmap_batched(
            heatmap, inputs["centers"], inputs["radii"], labels=inputs["labels"] if classwise else None,
            counts=given_counts, backend=backend,
        )
        assert out is heatmap
        assert_close(heatmap, expected, 1e-6, f"form {name}:")

    # the concatenated format with idx = b * C + label draws the same
    flat_idx = torch.cat([torch.full((n,), b) * (classes if classwise else 1) + (lab if classwise else 0)
                          for b, (n, lab) in enumerate(zip(sizes, labels))])
    heatmap = start.to(device)
    draw_heatmap(heatmap, torch.cat(centers).to(device), torch.cat(radii).to(device), flat_idx.to(device),
                 backend=backend)
    assert_close(heatmap, expected, 1e-6, "concatenated:")


def test_render_forms(device_backend):
    device, backend = device_backend
    sizes, centers, radii, labels = _batch(5)
    expected = draw_heatmap_batched_per_box(torch.zeros(4, 3, 17, 29), centers, radii, labels_list=labels)
    out = render_heatmaps_batched(
        (4, 3, 17, 29), [c.to(device) for c in centers], [r.to(device) for r in radii],
        labels=[lab.to(device) for lab in labels], backend=backend,
    )
    assert out.device.type == device
    assert_close(out, expected, 1e-6, "render batched:")
    flat_idx = torch.cat([torch.full((n,), b) * 3 + lab for b, (n, lab) in enumerate(zip(sizes, labels))])
    out = render_heatmaps(
        (4, 3, 17, 29), torch.cat(centers).to(device), torch.cat(radii).to(device), flat_idx.to(device),
        dtype=torch.float64, backend=backend,
    )
    assert out.dtype == torch.float64
    assert_close(out, expected.double(), 1e-6, "render concatenated:")


# ----------------------------------------------------------------------------
# validate=False: invalid boxes are skipped, nothing is written out of bounds
# ----------------------------------------------------------------------------


def test_invalid_boxes_are_skipped_without_validation(device_backend):
    device, backend = device_backend
    # a guard band around the heatmap: any write outside it would show there
    guarded = background((5, 12, 15), seed=4)
    start = guarded[1:4].clone()
    centers = torch.tensor([[3, 3], [5, 5], [7, 7], [9, 9], [2, 8]])
    radii = torch.tensor([2, -1, 3, 2, 4])
    idxes = torch.tensor([0, 1, 3, -1, 2])  # 3 and -1 are out of range for 3 planes
    valid = torch.tensor([True, False, False, False, True])
    expected = draw_heatmap_per_box(start.clone(), centers[valid], radii[valid], idxes[valid])
    guard = guarded.to(device)
    heatmap = guard[1:4]
    c, r, i = to(device, centers, radii, idxes)
    draw_heatmap(heatmap, c, r, i, backend=backend, validate=False)
    assert_close(heatmap, expected, 1e-6)
    assert_close(guard[0], guarded[0], 0.0, "guard before:")
    assert_close(guard[4], guarded[4], 0.0, "guard after:")

    # batched: labels out of range, counts past Tmax or negative
    start = background((3, 2, 12, 15), seed=5)
    centers = torch.tensor([[[3, 3], [6, 6]], [[4, 4], [8, 8]], [[5, 5], [2, 2]]])
    radii = torch.tensor([[2, 3], [1, 2], [3, 3]])
    labels = torch.tensor([[0, 2], [1, 1], [0, 1]])
    counts = torch.tensor([2, 5, -1])  # sample 1: 5 > Tmax = 2 reads only 2; sample 2: none
    expected = draw_heatmap_batched_per_box(
        start.clone(), [centers[0, :1], centers[1]], [radii[0, :1], radii[1]], labels_list=[labels[0, :1], labels[1]]
    )
    heatmap = start.to(device)
    c, r, lab, n = to(device, centers, radii, labels, counts)
    draw_heatmap_batched(heatmap, c, r, labels=lab, counts=n, backend=backend, validate=False)
    assert_close(heatmap, expected, 1e-6)


# ----------------------------------------------------------------------------
# bad input: a clear error before anything is written
# ----------------------------------------------------------------------------

T = torch.tensor
L = torch.long


def _concat_case(**override):
    args = dict(
        heatmap=background((2, 3, 10, 12)), centers=T([[1, 2], [3, 4]]), radii=T([1, 2]), heatmap_idxes=T([0, 5]),
    )
    args.update(override)
    return args


CONCAT_BAD = {
    "negative-radius": (_concat_case(radii=T([1, -2])), ValueError, r"radii must be >= 0; got -2 at position 1"),
    "idx-too-large": (_concat_case(heatmap_idxes=T([0, 6])), ValueError, r"heatmap_idxes must be in \[0, 6\).*got 6"),
    "idx-negative": (_concat_case(heatmap_idxes=T([-1, 0])), ValueError, r"got -1 at position 0"),
    "float-radii": (_concat_case(radii=T([1.0, 2.0])), TypeError, r"radii must be int32 or int64"),
    "centers-shape": (_concat_case(centers=T([[1, 2, 3], [3, 4, 5]])), ValueError, r"centers must have shape \(\*, 2\)"),
    "radii-length": (_concat_case(radii=T([1, 2, 3])), ValueError, r"radii must have shape \(2\); got \(3,\)"),
    "int-heatmap": (_concat_case(heatmap=torch.zeros(2, 3, 4, dtype=L)), TypeError, r"heatmap must be float16"),
    "1d-heatmap": (_concat_case(heatmap=torch.zeros(5)), ValueError, r"heatmap must have at least 2 dimensions"),
    "negative-k": (dict(_concat_case(), k_scale=-1.0), ValueError, r"k_scale must be finite and >= 0.*got -1.0"),
    "zero-factor": (dict(_concat_case(), diameter_to_sigma_factor=0.0), ValueError, r"diameter_to_sigma_factor"),
    "bad-backend": (dict(_concat_case(), backend="cuda"), ValueError, r"backend must be one of"),
    "expanded-heatmap": (
        _concat_case(heatmap=torch.zeros(1, 10, 12).expand(6, 10, 12)), ValueError, r"elements overlap in memory"),
    "aliased-planes": (
        _concat_case(heatmap=torch.zeros(400).as_strided((6, 10, 12), (40, 12, 1))), ValueError,
        r"elements overlap in memory \(shape \(6, 10, 12\), strides \(40, 12, 1\)"),
    "heatmap-requires-grad": (
        _concat_case(heatmap=torch.zeros(6, 10, 12, requires_grad=True)), ValueError,
        r"heatmap requires grad: drawing writes it in place.*heatmap.detach\(\)"),
    "float-centers": (_concat_case(centers=torch.tensor([[1.5, 2.0], [3.0, 4.0]])), TypeError,
                      r"centers must be int32 or int64; got torch.float32: round or truncate to integer pixels, "
                      r"e.g. centers.long\(\)"),
    "numpy-radii": (_concat_case(radii=np.array([1, 2])), TypeError,
                    r"radii must be a torch.Tensor; got ndarray \(torch.as_tensor\(x\) converts a NumPy array\)"),
    "sigma-factor-huge": (_concat_case(diameter_to_sigma_factor=1e20), ValueError,
                          r"diameter_to_sigma_factor must be in \(0, 1e\+09\]"),
    "k-scale-above-dtype": (_concat_case(heatmap=torch.zeros(6, 10, 12, dtype=torch.float16), k_scale=1e5),
                            ValueError, r"k_scale must be at most the largest torch.float16 \(65504\)"),
}


@pytest.mark.parametrize("case", list(CONCAT_BAD), ids=list(CONCAT_BAD))
def test_bad_concat_input_raises_and_leaves_heatmap_unchanged(case):
    args, error, match = CONCAT_BAD[case]
    heatmap = args["heatmap"]
    before = heatmap.clone()
    with pytest.raises(error, match=match):
        draw_heatmap(**args)
    assert torch.equal(heatmap, before)


def _batched_case(**override):
    args = dict(
        heatmap=background((2, 3, 10, 12)),
        centers=T([[[1, 2], [3, 4]], [[5, 6], [0, 0]]]),
        radii=T([[1, 2], [3, 0]]),
        labels=T([[0, 2], [1, 0]]),
        counts=T([2, 1]),
    )
    args.update(override)
    return args


BATCHED_BAD = {
    "label-too-large": (_batched_case(labels=T([[0, 2], [3, 0]])), ValueError,
                        r"labels must be in \[0, 3\) for a heatmap of 3 classes; got 3 at sample 1, position 0"),
    "negative-radius": (_batched_case(radii=T([[1, -2], [3, 0]])), ValueError,
                        r"radii must be >= 0; got -2 at sample 0, position 1"),
    "counts-too-large": (_batched_case(counts=T([2, 3])), ValueError,
                         r"counts must be in \[0, 2\].*got 3 at sample 1"),
    "counts-negative": (_batched_case(counts=T([-1, 1])), ValueError, r"got -1 at sample 0"),
    "counts-missing": (_batched_case(counts=None), ValueError, r"counts is required"),
    "counts-float": (_batched_case(counts=T([2.0, 1.0])), TypeError, r"counts must be int32 or int64"),
    "batch-mismatch": (_batched_case(radii=T([[1, 2]])), ValueError, r"radii must have shape \(2, \*\)"),
    "heatmap-3d-with-labels": (_batched_case(heatmap=torch.zeros(2, 10, 12)), ValueError,
                               r"heatmap must be \(B, C, H, W\) when labels are given; got \(2, 10, 12\)"),
    "sizes-disagree": (_batched_case(counts=None, centers=Ragged(T([[[1, 2], [3, 4]], [[5, 6], [0, 0]]]), T([2, 1])),
                                     radii=Ragged(T([[1, 2], [3, 0]]), T([2, 2]))), ValueError,
                       r"radii.sample_sizes must equal centers.sample_sizes; got 2 at sample 1"),
    "list-shape": (_batched_case(centers=[T([[1, 2]]), T([[1, 2, 3]])], counts=None), ValueError,
                   r"centers\[1\] must have shape \(n, 2\); got \(1, 3\)"),
    "not-a-batch": (_batched_case(centers="boxes"), TypeError, r"centers must be a ragged batch"),
}


@pytest.mark.parametrize("case", list(BATCHED_BAD), ids=list(BATCHED_BAD))
def test_bad_batched_input_raises_and_leaves_heatmap_unchanged(case):
    args, error, match = BATCHED_BAD[case]
    heatmap = args["heatmap"]
    before = heatmap.clone()
    with pytest.raises(error, match=match):
        draw_heatmap_batched(**args)
    assert torch.equal(heatmap, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs two devices")
def test_tensors_on_different_devices_raise():
    heatmap = background((2, 10, 12)).cuda()
    before = heatmap.clone()
    with pytest.raises(ValueError, match=r"centers is on cpu but heatmap is on cuda"):
        draw_heatmap(heatmap, T([[1, 2]]), T([1]).cuda(), T([0]).cuda())
    assert torch.equal(heatmap, before)


def test_public_names():
    assert set(gaussdraw.__all__) >= {"draw_heatmap", "draw_heatmap_batched", "render_heatmaps",
                                       "render_heatmaps_batched", "Ragged"}


# ----------------------------------------------------------------------------
# kernel launch shapes: boxes per program and window splits all draw the same
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("boxes, split, warps", [(1, 1, None), (4, 1, 1), (2, 3, 2), (16, 2, 4)],
                         ids=lambda v: str(v))
def test_launch_shapes_agree(device_backend, boxes, split, warps):
    device, backend = device_backend
    if backend != "triton":
        pytest.skip("launch shapes are the Triton kernel's")
    from gaussdraw.ops.draw_gaussians import DrawLaunchShape, draw_gaussians_triton

    sizes, centers, radii, labels = _batch(11, samples=3, height=40, width=70, max_boxes=7)
    radii = [r * 3 for r in radii]  # windows of several tiles
    start = background((3, 3, 40, 70), seed=11)
    expected = draw_heatmap_batched_per_box(start.clone(), centers, radii, labels_list=labels)
    heatmap = start.to(device)
    padded = [_padded(t, -1).to(device) for t in (centers, radii, labels)]  # padding never read
    draw_gaussians_triton(heatmap.view(9, 40, 70), *padded, torch.tensor(sizes, device=device), 3, 6.0, 1.0,
                          shape=DrawLaunchShape(boxes=boxes, split=split, warps=warps))
    assert_close(heatmap, expected, 1e-6)


def test_plane_stride():
    from gaussdraw.draw import _plane_stride

    x = torch.zeros(2, 3, 5, 7)
    assert _plane_stride(x) == 35
    assert _plane_stride(x[:, 1:]) is None  # strides (105, 35): no single plane stride
    assert _plane_stride(x[:1, 1:]) == 35  # a size-1 dim does not count
    assert _plane_stride(x[:, :1]) == 105
    assert _plane_stride(x.permute(1, 0, 2, 3)) is None
    assert _plane_stride(torch.zeros(5, 7)) == 0


def test_lists_packed_in_one_copy():
    """The GPU's packing of lists (concatenate, then one indexed copy) on CPU tensors: rows land at b * Tmax + t,
    padding left unwritten."""
    from gaussdraw.ragged import _destination_rows, _pad_concatenated, pad_list

    g = torch.Generator().manual_seed(4)
    for sizes in ([3, 0, 2, 4], [0, 0, 0], [5], [1, 7, 1, 0, 2]):
        tensors = [torch.randint(-9, 9, (n, 2), generator=g) for n in sizes]
        padded, counts = _pad_concatenated(torch.cat(tensors), sizes, _destination_rows(sizes, torch.device("cpu")))
        expected, expected_counts = pad_list(tensors, "centers")  # one copy per sample on the CPU
        assert padded.shape == expected.shape and torch.equal(counts, expected_counts)
        for b, n in enumerate(sizes):  # the padding is never read, so it is left unwritten
            assert torch.equal(padded[b, :n], expected[b, :n])


@pytest.mark.parametrize("validate", [True, False, None])
def test_list_lengths_that_disagree_raise_without_reading_values(validate):
    """List lengths are known on the host: a short list is named on every path, checked or not."""
    heatmap = torch.zeros(2, 3, 8, 8)
    centers = [T([[1, 2], [3, 4]]), T([[5, 5]])]
    with pytest.raises(ValueError, match=r"radii\[0\] has 1 entries but centers\[0\] has 2"):
        draw_heatmap_batched(heatmap, centers, [T([1]), T([2])], labels=[T([0, 1]), T([2])], validate=validate)
    with pytest.raises(ValueError, match=r"labels\[1\] has 2 entries but centers\[1\] has 1"):
        draw_heatmap_batched(heatmap, centers, [T([1, 1]), T([2])], labels=[T([0, 1]), T([2, 0])], validate=validate)
    with pytest.raises(ValueError, match=r"radii has 1 samples but centers has 2"):
        draw_heatmap_batched(heatmap, centers, [T([1, 1])], labels=[T([0, 1]), T([2])], validate=validate)
    assert not heatmap.any()


def test_lists_share_one_packing():
    """Lists of equal lengths packed together give each list's own padding."""
    from gaussdraw.ragged import to_padded_all

    g = torch.Generator().manual_seed(6)
    sizes = [3, 0, 5, 2]
    centers = [torch.randint(0, 9, (n, 2), generator=g) for n in sizes]
    radii = [torch.randint(0, 9, (n,), generator=g) for n in sizes]
    packed = to_padded_all({"centers": centers, "radii": radii, "labels": None})
    assert set(packed) == {"centers", "radii"}
    for name, values in (("centers", centers), ("radii", radii)):
        tensor, counts = packed[name]
        assert counts.tolist() == sizes
        for b, v in enumerate(values):
            assert torch.equal(tensor[b, : sizes[b]], v) and not tensor[b, sizes[b]:].any()



@pytest.mark.parametrize("radius", [2**40, 2**62, 2**63 - 1], ids=["2^40", "2^62", "2^63-1"])
def test_radii_near_the_int64_limit(device_backend, radius):
    """2r + 1 would wrap in int64: sigma is computed in floats, so every backend draws the wide Gaussian."""
    device, backend = device_backend
    far = -(2**39)
    centers, idxes = torch.tensor([[3, 2], [far, 2]], device=device), torch.tensor([0, 1], device=device)
    heatmap = torch.zeros(2, 5, 7, device=device)
    draw_heatmap(heatmap, centers, torch.tensor([radius, radius], device=device), idxes, backend=backend)
    assert bool((heatmap[0] == 1).all())  # sigma ~ r / 3: 1.0 everywhere near the center
    sigma = (2.0 * radius + 1) / 6
    x = torch.arange(7, dtype=torch.float64) - far
    y = torch.arange(5, dtype=torch.float64) - 2
    expected = torch.exp(-(x[None, :] ** 2 + y[:, None] ** 2) / (2 * sigma**2))
    assert_close(heatmap[1], expected, 1e-6, "far center:")
    assert heatmap[1].min() > 0.3
