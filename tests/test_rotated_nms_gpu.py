"""Rotated NMS on a GPU: the Triton kernels against the torch path (CUDA and CPU) on detection-sized
batches, over poisoned memory; no host sync, CUDA-graph capture; the op's registration (opcheck)."""

from __future__ import annotations

import pytest
import torch

from gaussdraw import rotated_nms, rotated_nms_batched
from gaussdraw.ops.rotated_nms import rotated_nms_op

from .helpers import capture_and_replay
from .test_rotated_nms import assert_greedy

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def detections(problems=24, most=500, seed=0, dtype=torch.float32):
    """Padded (S, most, 5) boxes on a 60 m square (0.5 to 5 m, every angle, a tenth duplicated),
    (S, most) scores with ties and a few NaN/inf, (S,) counts; the padding is NaN."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, most + 1, (problems,), generator=g)
    counts[0] = most
    boxes = torch.cat([torch.rand(problems, most, 2, generator=g) * 60, torch.rand(problems, most, 2, generator=g)
                       * 4.5 + 0.5, (torch.rand(problems, most, 1, generator=g) - 0.5) * 8], 2).to(dtype)
    boxes[:, 1::10] = boxes[:, ::10][:, : boxes[:, 1::10].shape[1]]
    scores = (torch.rand(problems, most, generator=g) * 50).round() / 50
    scores[:, 7] = float("inf")
    scores[:, 11] = float("nan")
    padding = torch.arange(most) >= counts[:, None]
    return boxes.masked_fill(padding[..., None], float("nan")), scores.masked_fill(padding, float("nan")), counts


def poison_allocator():
    """Fill the caching allocator's free memory with -7 (int64) so that fresh outputs start dirty."""
    torch.cuda.empty_cache()
    junk = torch.full((64 << 20,), -7, dtype=torch.int64, device="cuda")
    del junk


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(24, 500), (1, 1000)], ids=["24x500", "1x1000"])
def test_cuda_triton_equals_the_torch_path(shape, dtype):
    boxes, scores, counts = detections(*shape, dtype=dtype)
    options = dict(pre_max_size=900, post_max_size=83, counts=counts)
    on_cpu = rotated_nms_batched(boxes, scores, 0.2, backend="torch", **options)
    poison_allocator()
    on_gpu = rotated_nms_batched(boxes.cuda(), scores.cuda(), 0.2, backend="triton", **{**options,
                                 "counts": counts.cuda()})
    poison_allocator()
    torch_gpu = rotated_nms_batched(boxes.cuda(), scores.cuda(), 0.2, backend="torch", **{**options,
                                    "counts": counts.cuda()})
    for kept in (on_gpu, torch_gpu):
        assert torch.equal(kept.indices.cpu(), on_cpu.indices) and torch.equal(kept.counts.cpu(), on_cpu.counts)
    assert on_cpu.counts.max() > 10  # something to compare
    first = int(counts[0])
    assert_greedy(on_cpu.indices[0, : int(on_cpu.counts[0])].tolist(), boxes[0, :first].tolist(),
                  scores[0, :first].tolist(), 0.2, 900, 83, dtype)


def near_copies_batch(problems=16, bases=12, copies=6, seed=4, dtype=torch.float32):
    """(S, bases * copies, 5) boxes: copies of a few boxes at the same angle, x, y, w, h each moved
    by 0, a few ulps or up to 1e-5 of itself (edges on one line in exact arithmetic); tied scores."""
    g = torch.Generator().manual_seed(seed)
    base = torch.cat([torch.rand(problems, bases, 2, generator=g) * 8, torch.rand(problems, bases, 2, generator=g)
                      * 3 + 0.0625, (torch.rand(problems, bases, 1, generator=g) - 0.5) * 8], 2).to(dtype)
    boxes = base.repeat_interleave(copies, 1)
    kind = torch.randint(0, 3, (problems, bases * copies, 4), generator=g)
    ulps = torch.randint(-4, 5, kind.shape, generator=g) * torch.finfo(dtype).eps
    tiny = 10 ** (torch.rand(kind.shape, generator=g) * 2 - 7) * (torch.randint(0, 2, kind.shape, generator=g) * 2 - 1)
    nudge = torch.where(kind == 0, 0.0, torch.where(kind == 1, ulps, tiny)).to(dtype)
    boxes[..., :4] = boxes[..., :4] * (1 + nudge)
    return boxes, torch.full(boxes.shape[:2], 0.25, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_near_copies_equal_the_torch_path(dtype):
    boxes, scores = near_copies_batch(dtype=dtype)
    thresholds = [0.5, 0.9, 0.999, 0.3] * (boxes.shape[0] // 4)
    counts = torch.full(boxes.shape[:1], boxes.shape[1])
    on_cpu = rotated_nms_batched(boxes, scores, thresholds, counts=counts, backend="torch")
    poison_allocator()
    on_gpu = rotated_nms_batched(boxes.cuda(), scores.cuda(), thresholds, counts=counts.cuda(), backend="triton")
    assert torch.equal(on_gpu.indices.cpu(), on_cpu.indices) and torch.equal(on_gpu.counts.cpu(), on_cpu.counts)
    for b in range(boxes.shape[0]):
        kept = on_cpu.indices[b, : int(on_cpu.counts[b])].tolist()
        assert_greedy(kept, boxes[b].tolist(), scores[b].tolist(), thresholds[b], None, None, dtype)


def test_sync_free_and_graph_capturable():
    boxes, scores, counts = (t.cuda() for t in detections(8, 300, seed=1))

    def decode():
        return rotated_nms_batched(boxes, scores, [0.2] * 8, pre_max_size=256, post_max_size=83, counts=counts)

    expected, captured = capture_and_replay(decode)
    for got, want in zip(captured, expected):
        assert torch.equal(got, want)


def test_one_problem_and_other_device_index():
    boxes, scores, _ = detections(1, 200, seed=2)
    device = f"cuda:{torch.cuda.device_count() - 1}"
    kept = rotated_nms(boxes[0].to(device), scores[0].to(device), 0.1)
    assert kept.device == torch.device(device)
    assert kept.tolist() == rotated_nms(boxes[0], scores[0], 0.1).tolist()


@pytest.mark.parametrize("use_triton", [False, True])
def test_opcheck(use_triton):
    from gaussdraw.ops.rotated_nms import box_geometry, stable_score_order

    boxes, scores, counts = (t.cuda() for t in detections(3, 40, seed=3))
    order = stable_score_order(scores, counts)
    geometry = box_geometry(torch.gather(boxes, 1, order[..., None].expand(3, 40, 5)), torch.float32)
    thresholds = torch.full((3,), 0.3, device="cuda")
    torch.library.opcheck(rotated_nms_op, (geometry, order, counts, thresholds, 10, use_triton))
