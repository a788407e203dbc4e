"""Decoding on a GPU: no host sync, CUDA-graph capture, and the GPU kernels against the CPU path on
larger inputs (NaN and infinite scores included); the ops' registration (opcheck) on every device."""

from __future__ import annotations

import pytest
import torch

from gaussdraw import circle_nms_batched, heatmap_peaks
from gaussdraw.ops.circle_nms import circle_nms_op, sorted_candidates
from gaussdraw.ops.local_maximum import local_maximum_op, local_maximum_torch

from .helpers import capture_and_replay

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def nms_batch(device, samples=3, count=700, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = [torch.rand(count - 100 * b, 2, generator=g).mul(60).to(device) for b in range(samples)]
    scores = [torch.rand(count - 100 * b, generator=g).to(device) for b in range(samples)]
    return centers, scores


@cuda
def test_decode_is_sync_free_and_graph_capturable():
    heat = torch.rand(2, 3, 40, 50, device="cuda")
    centers, scores = nms_batch("cuda")
    longest = max(len(s) for s in scores)
    padded_c = torch.zeros(3, longest, 2, device="cuda")
    padded_s = torch.zeros(3, longest, device="cuda")
    for b, (c, s) in enumerate(zip(centers, scores)):
        padded_c[b, : len(s)], padded_s[b, : len(s)] = c, s
    counts = torch.tensor([len(s) for s in scores], device="cuda")

    def decode():
        return heatmap_peaks(heat, 50), circle_nms_batched(padded_c, padded_s, 4.0, counts=counts)

    expected, captured = capture_and_replay(decode)
    for got, want in zip((*captured[0], *captured[1]), (*expected[0], *expected[1])):
        assert torch.equal(got, want)


@cuda
@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_local_maximum_kernel_matches_torch(kernel, dtype):
    g = torch.Generator().manual_seed(kernel)
    heat = (torch.randint(0, 6, (2, 5, 67, 131), generator=g).float() / 5).to(dtype)
    heat[0, 0, 3, 4], heat[0, 1, 0, 0], heat[1, 2, 66, 130] = float("nan"), float("inf"), float("-inf")
    out = local_maximum_op(heat.cuda(), kernel, True)
    torch.testing.assert_close(out.cpu(), local_maximum_torch(heat, kernel), rtol=0, atol=0, equal_nan=True)


@cuda
def test_circle_nms_gpu_matches_cpu_on_large_batches():
    centers, scores = nms_batch("cpu", samples=4, count=4000, seed=3)
    cpu = circle_nms_batched(centers, scores, 2.0, post_max_size=500)
    gpu = circle_nms_batched([c.cuda() for c in centers], [s.cuda() for s in scores], 2.0, post_max_size=500)
    assert torch.equal(gpu.indices.cpu(), cpu.indices) and torch.equal(gpu.counts.cpu(), cpu.counts)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_decode_ops_pass_opcheck(device):
    heat = torch.rand(2, 3, 9, 11, device=device)
    torch.library.opcheck(local_maximum_op, (heat, 3, device == "cuda"))
    centers, scores = nms_batch(device, samples=2, count=150)
    padded_c = torch.stack([torch.nn.functional.pad(c, (0, 0, 0, 150 - len(c))) for c in centers])
    padded_s = torch.stack([torch.nn.functional.pad(s, (0, 150 - len(s))) for s in scores])
    counts = torch.tensor([len(s) for s in scores], device=device)
    order = sorted_candidates(padded_s, counts)
    thresholds = torch.full((2,), 4.0, device=device)
    torch.library.opcheck(circle_nms_op, (padded_c, order, counts, thresholds, 83, device == "cuda"))


@cuda
def test_decode_compiles_fullgraph():
    heat = torch.rand(2, 3, 40, 50, device="cuda")
    centers = torch.rand(2, 300, 2, device="cuda") * 40
    scores = torch.rand(2, 300, device="cuda")
    counts = torch.tensor([300, 120], device="cuda")

    def decode(heat, centers, scores, counts):
        peaks = heatmap_peaks(heat, 20)
        kept = circle_nms_batched(centers, scores, 4.0, counts=counts)
        return peaks.scores, peaks.indices, kept.indices, kept.counts

    compiled = torch.compile(decode, fullgraph=True)
    for got, want in zip(compiled(heat, centers, scores, counts), decode(heat, centers, scores, counts)):
        assert torch.equal(got, want)


def _poisoned_outputs(num_samples, size):
    """Fill the caching allocator's next blocks of the outputs' sizes with -7, so that an entry the
    kernel does not write shows (torch.empty then reuses them)."""
    blocks = [torch.full((num_samples, size), -7, dtype=torch.int64, device="cuda"),
              torch.full((num_samples,), -7, dtype=torch.int64, device="cuda")]
    del blocks


def _padded_cuda(centers, scores, longest=None, dtype=torch.float32):
    longest = longest or max(len(s) for s in scores)
    padded_c = torch.full((len(scores), longest, 2), float("nan"), dtype=dtype)
    padded_s = torch.full((len(scores), longest), float("nan"), dtype=dtype)
    for b, (c, s) in enumerate(zip(centers, scores)):
        padded_c[b, : len(s)], padded_s[b, : len(s)] = c.to(dtype), s.to(dtype)
    return padded_c.cuda(), padded_s.cuda(), torch.tensor([len(s) for s in scores]).cuda()


@cuda
@pytest.mark.parametrize("samples, count, levels", [(1, 1000, 10**6), (24, 500, 10**6), (24, 500, 7), (2, 4096, 50),
                                                    (3, 4097, 10**6), (5, 17, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_circle_nms_one_launch_matches_cpu(samples, count, levels, dtype):
    """The one-launch sorted walk (up to 4096 candidates; 4097 takes the two-launch path) against the
    CPU, ties included (few score levels), samples of different lengths, poisoned outputs."""
    g = torch.Generator().manual_seed(count + levels)
    lengths = [count - count // 5 * b // max(samples - 1, 1) for b in range(samples)]
    centers = [(torch.rand(n, 2, generator=g) * 60).to(dtype) for n in lengths]
    scores = [(torch.randint(0, levels, (n,), generator=g).float() / levels).to(dtype) for n in lengths]
    for post in (83, None, 1) if dtype == torch.float32 else (83,):  # None: every block walked
        cpu = circle_nms_batched(centers, scores, 2.0, post_max_size=post)
        padded_c, padded_s, counts = _padded_cuda(centers, scores, dtype=dtype)
        _poisoned_outputs(samples, cpu.indices.shape[1])
        gpu = circle_nms_batched(padded_c, padded_s, 2.0, post_max_size=post, counts=counts)
        assert torch.equal(gpu.indices.cpu(), cpu.indices) and torch.equal(gpu.counts.cpu(), cpu.counts)


@cuda
def test_circle_nms_repeated_calls_relaunch_with_their_tensors():
    """Unchecked calls of one layout repeat an earlier one's launch (gaussdraw.draw_plans) with their own
    tensors; other thresholds plan anew; validate=True still checks."""
    from gaussdraw.draw_plans import PLANS
    from gaussdraw.ops.launch import direct_launch_active

    PLANS.clear()
    for seed in range(5):
        centers, scores = nms_batch("cpu", samples=4, count=500, seed=seed)
        thresh = [4.0, 2.0, 4.0, 1.0] if seed < 4 else 3.0
        cpu = circle_nms_batched(centers, scores, thresh)
        padded_c, padded_s, counts = _padded_cuda(centers, scores, longest=500)
        _poisoned_outputs(4, 83)
        gpu = circle_nms_batched(padded_c, padded_s, thresh, counts=counts)
        assert torch.equal(gpu.indices.cpu(), cpu.indices) and torch.equal(gpu.counts.cpu(), cpu.counts), seed
    if direct_launch_active():
        assert sum(key[0] == "circle_nms" for key in PLANS) == 2  # the fifth call's thresholds: a layout of its own
    with pytest.raises(ValueError, match="counts must be in"):
        circle_nms_batched(padded_c, padded_s, 3.0, counts=counts + 1000, validate=True)


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("shape, k, kernel, per_class_k", [((4, 80, 128, 128), 100, 3, None),
                                                           ((4, 10, 128, 128), 500, 1, 500),
                                                           ((4, 2, 128, 128), 500, 1, 500),
                                                           ((2, 3, 96, 200), 64, 3, None)],
                         ids=["centernet", "centerpoint", "centerpoint-2-classes", "odd-width"])
@pytest.mark.parametrize("launch", [None, "shuffle", "strips"])
def test_peaks_kernels_match_the_torch_backend_on_detector_shapes(shape, k, kernel, per_class_k, launch):
    """The four-launch path on the benchmarks' shapes (16-byte rows, warp strips, shuffles, one-row groups for
    per_class_k = k) against the torch backend on the same GPU, NaN and infinities included."""
    import dataclasses

    from gaussdraw.ops import peaks

    from gaussdraw.bench.decode import peak_inputs

    heat = peak_inputs(shape, "cuda")
    heat[0, 1, 5, 7], heat[-1, 0, 0, 0], heat[-1, -1, -1, -1] = float("nan"), float("inf"), float("-inf")
    expected = heatmap_peaks(heat, k, kernel, per_class_k=per_class_k, backend="torch")
    if launch is None:
        found = heatmap_peaks(heat, k, kernel, per_class_k=per_class_k, backend="triton")
    else:
        changes = dict(shuffle=True) if launch == "shuffle" else dict(strips=4, rows=8)
        tile = dataclasses.replace(peaks.TILE_BOUND, **changes)
        found = peaks.peaks_triton(heat, k, kernel, shape=tile)
        if peaks.launch_shape(tile, *heat.shape[1:], k, kernel) is None:  # too few groups: refused, documented
            assert found is None
            return
    for ours, theirs in zip(found, expected):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
