"""Keypoint decoding on a GPU: the Triton kernel against the torch path (CUDA and CPU) on a WholeBody-sized
batch in every dtype and refinement, sync-free, captured in a CUDA graph and replayed into poisoned outputs."""

from __future__ import annotations

import pytest
import torch

from gaussdraw import keypoint_decode

from .test_keypoints_decode import DTYPES, MODES, _integer_locations, assert_keypoints_close


def _coco_like(shape, device, seed=0):
    """Blobs of sigma 2 at random centres with noise, some maps empty: a pose head's output."""
    g = torch.Generator().manual_seed(seed)
    batch, joints, height, width = shape
    centre = torch.rand(batch, joints, 2, 1, 1, generator=g) * torch.tensor([width, height]).view(1, 1, 2, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    squared = (xs - centre[:, :, 0]) ** 2 + (ys - centre[:, :, 1]) ** 2
    heat = torch.exp(-squared / 8) + 0.02 * torch.randn(shape, generator=g)
    heat[:, ::7] = -0.01 * torch.rand(heat[:, ::7].shape, generator=g)  # invisible keypoints
    return heat.to(device)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("refine", MODES)
def test_cuda_triton_equals_torch_sync_free_and_capturable(refine, dtype):
    heat = _coco_like((8, 133, 96, 72), "cuda").to(dtype)
    heat[0, 1] = torch.randn(96, 72, device="cuda").to(dtype)  # clamps bite: the whole-map path
    want = keypoint_decode(heat, refine=refine, backend="torch")
    cpu = keypoint_decode(heat.cpu(), refine=refine, backend="torch")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = keypoint_decode(heat, refine=refine, backend="triton")
    finally:
        torch.cuda.set_sync_debug_mode(0)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = keypoint_decode(heat, refine=refine, backend="triton")
    torch.cuda.current_stream().wait_stream(stream)
    captured.keypoints.fill_(float("nan"))  # poison, then replay
    captured.scores.fill_(-7)
    graph.replay()
    torch.cuda.synchronize()
    integer = _integer_locations(heat.cpu())
    for keypoints, scores in (got, captured, cpu):
        assert torch.equal(scores.cpu(), want.scores.cpu())
        assert_keypoints_close(keypoints.cpu(), want.keypoints.cpu(), integer, refine, "cuda:")
    assert (want.keypoints.cpu() != integer).any() or refine is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("refine", MODES)
def test_cuda_every_launch_shape_equals_torch(refine):
    """The profile's launch shapes (fused or a second launch, several maps a program) on CUDA, sync-free."""
    from gaussdraw.ops.keypoint_decode import REFINE_MODES, DecodeLaunchShape, keypoint_decode_triton

    from .test_keypoints_decode import LAUNCH_SHAPES

    heat = _coco_like((3, 133, 96, 72), "cuda")
    heat[0, 1] = torch.randn(96, 72, device="cuda")  # clamps bite: the whole-map path
    want = keypoint_decode(heat, refine=refine, backend="torch")
    integer = _integer_locations(heat.cpu())
    for shape in LAUNCH_SHAPES + [dict(maps=2, block=8192, warps=8), dict(fused=False, step_maps=32, step_warps=4)]:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            keypoints, scores = keypoint_decode_triton(heat, REFINE_MODES[refine], 11, shape=DecodeLaunchShape(**shape))
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert torch.equal(scores.cpu(), want.scores.cpu()), shape
        assert_keypoints_close(keypoints.cpu(), want.keypoints.cpu(), integer, refine, f"{shape}:")
