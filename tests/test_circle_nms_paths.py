"""Circle NMS's Triton paths against each other and the torch path: the one-launch sorted walk (padded
lengths up to SORTED_LONGEST) and the two-launch path beyond it, on ties, thresholds at the float32
boundary, empty samples, one candidate, samples of different lengths, post_max_size 0 / 1 / None,
float16 / float64 and strided inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gaussdraw.ops.circle_nms as circle_nms_module
from gaussdraw import circle_nms, circle_nms_batched

from .oracles import mmdet3d_circle_nms

PATHS = ["sorted walk", "two launches"]


@pytest.fixture(params=PATHS)
def triton_path(request, device_backend, monkeypatch):
    """(device, path): the Triton backend on its device, with the sorted walk or (its limit set to 0)
    the two-launch path."""
    device, backend = device_backend
    if backend != "triton":
        pytest.skip("the paths are the Triton backend's")
    if request.param == "two launches":
        monkeypatch.setattr(circle_nms_module, "SORTED_LONGEST", 0)
    return device, request.param


def _samples(lengths, levels, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centers = [torch.randint(0, spread, (n, 2), generator=g).float() * 0.5 for n in lengths]
    scores = [torch.randint(0, levels, (n,), generator=g).float() / levels for n in lengths]
    return centers, scores


def _padded(centers, scores, device, dtype=torch.float32, fill=float("nan")):
    """Padded (S, N, 2) centers (a strided view: every other column of a wider tensor) and (S, N)
    scores (a transposed view), filled past each sample's length, with the counts."""
    longest = max(len(s) for s in scores)
    wide = torch.full((len(scores), longest, 4), fill, dtype=dtype)
    scores_t = torch.full((longest, len(scores)), fill, dtype=dtype)
    for b, (c, s) in enumerate(zip(centers, scores)):
        wide[b, : len(s), ::2], scores_t[: len(s), b] = c.to(dtype), s.to(dtype)
    counts = torch.tensor([len(s) for s in scores])
    return wide.to(device)[..., ::2], scores_t.to(device).t(), counts.to(device)


def _torch_result(centers, scores, thresholds, post):
    return circle_nms_batched(centers, scores, thresholds, post_max_size=post, backend="torch")


@pytest.mark.parametrize("lengths", [[0], [1], [0, 5, 1], [40, 0, 17, 3], [130, 64, 129]],
                         ids=["empty", "one", "empty-five-one", "mixed", "past-a-block"])
@pytest.mark.parametrize("post", [83, 0, 1, None])
@pytest.mark.parametrize("levels", [3, 10**6], ids=["ties", "distinct"])
def test_triton_paths_match_torch(triton_path, lengths, post, levels):
    device, _ = triton_path
    centers, scores = _samples(lengths, levels, spread=12, seed=len(lengths) + levels)
    thresholds = [1.0, 0.25, 2.0, 4.0][: len(lengths)] + [1.0] * max(0, len(lengths) - 4)
    expected = _torch_result(centers, scores, thresholds, post)
    padded_c, padded_s, counts = _padded(centers, scores, device)
    kept = circle_nms_batched(padded_c, padded_s, thresholds, post_max_size=post, counts=counts, backend="triton")
    assert kept.indices.shape == expected.indices.shape
    assert torch.equal(kept.indices.cpu(), expected.indices) and torch.equal(kept.counts.cpu(), expected.counts)
    oracle = mmdet3d_circle_nms(stable=True)
    for b, (c, s) in enumerate(zip(centers, scores)):
        dets = torch.cat([c, s[:, None]], 1).numpy()
        want = oracle(dets, thresholds[b], post if post is not None else 10**9) if len(s) else []
        assert kept.indices[b, : int(kept.counts[b])].tolist() == [int(i) for i in want]


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_triton_paths_read_other_dtypes_as_float32(triton_path, dtype):
    """Scores and centers of other float dtypes are compared and measured in float32 on every path."""
    device, _ = triton_path
    g = torch.Generator().manual_seed(7)
    centers = [torch.rand(n, 2, generator=g, dtype=torch.float64) * 9 for n in (60, 23)]
    scores = [torch.rand(n, generator=g, dtype=torch.float64) for n in (60, 23)]
    if dtype == torch.float16:
        centers, scores = [c.half() for c in centers], [s.half() for s in scores]  # ties among the scores
    expected = _torch_result(centers, scores, 1.5, 83)
    padded_c, padded_s, counts = _padded(centers, scores, device, dtype)
    kept = circle_nms_batched(padded_c, padded_s, 1.5, counts=counts, backend="triton")
    assert torch.equal(kept.indices.cpu(), expected.indices) and torch.equal(kept.counts.cpu(), expected.counts)


def test_thresholds_at_the_float32_boundary(triton_path):
    """A box at float32 squared distance d from a better one is suppressed exactly when d <= thresh,
    compared in double: thresholds at d, one float32 step below, and a hair (1e-12) either side."""
    device, _ = triton_path
    step = np.float32(0.1)
    d = float(step * step)  # the float32 squared distance of (0, 0) and (0.1, 0)
    centers = torch.tensor([[0.0, 0.0], [float(step), 0.0]])
    scores = torch.tensor([0.9, 0.8])
    for thresh in (d, float(np.nextafter(np.float32(d), np.float32(0))), d - 1e-12, d + 1e-12):
        want = [0] if d <= thresh else [0, 1]
        assert circle_nms(centers.to(device), scores.to(device), thresh, backend="triton").tolist() == want, thresh
        assert circle_nms(centers, scores, thresh, backend="torch").tolist() == want, thresh


def test_equal_scores_go_later_box_first(triton_path):
    """Equal scores: the later box first (mmdet3d's argsort()[::-1] of a stable sort), -0.0 equal to 0.0."""
    device, _ = triton_path
    centers = torch.tensor([[0.0, 0.0], [0.5, 0.0], [9.0, 0.0], [9.2, 0.0], [20.0, 0.0]])
    scores = torch.tensor([0.5, 0.5, 0.0, -0.0, 0.5])
    assert circle_nms(centers.to(device), scores.to(device), 1.0, backend="triton").tolist() == [4, 1, 3]
