"""Whole-head decoding on a GPU: no host sync, CUDA-graph capture with poisoned outputs, the GPU
against the CPU on nuScenes-sized inputs, and opcheck of the CenterNet box op on every device."""

from __future__ import annotations

import pytest
import torch

from gaussdraw import centernet_decode, centerpoint_decode
from gaussdraw.ops.centernet_boxes import centernet_boxes_op
from gaussdraw.ops.centerpoint_candidates import centerpoint_candidates_op, centerpoint_candidates_torch
from gaussdraw.ops.centerpoint_merge import centerpoint_merge_op, centerpoint_merge_torch

from .helpers import capture_and_replay

NUSCENES_CLASSES = [1, 2, 2, 1, 2, 2]
NUSCENES = dict(point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], voxel_size=[0.2, 0.2, 8], out_size_factor=4,
                post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], max_num=500, score_threshold=0.1,
                min_radius=[4, 12, 10, 1, 0.85, 0.175], post_max_size=83)
TASKS = [dict(num_class=c, class_names=[f"c{t}_{i}" for i in range(c)]) for t, c in enumerate(NUSCENES_CLASSES)]


def nuscenes_heads(device, batch=2, size=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    heads = []
    for count in NUSCENES_CLASSES:
        head = {"heatmap": torch.randn(batch, count, size, size, generator=g) * 2 - 2}
        for name, channels in (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)):
            head[name] = torch.randn(batch, channels, size, size, generator=g)
        heads.append({name: value.to(device) for name, value in head.items()})
    return heads


@pytest.mark.gpu
# the torch backend's circle NMS loops over problems on the host (it reads their lengths: a sync); the
# GPU's route ("auto", "triton") does not
@pytest.mark.parametrize("backend, nms", [("triton", "circle"), ("triton", "none"), ("torch", "none")])
def test_centerpoint_decode_is_sync_free_and_graph_capturable(nms, backend):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    heads = nuscenes_heads("cuda")
    expected, captured = capture_and_replay(lambda: tuple(centerpoint_decode(heads, TASKS, nms=nms, backend=backend,
                                                                              **NUSCENES)))
    assert int(expected[3].min()) > 0, "a test with boxes"
    for got, want in zip(captured, expected):
        assert torch.equal(got, want)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_centernet_decode_is_sync_free_and_graph_capturable(backend):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    g = torch.Generator().manual_seed(1)
    heat = torch.rand(4, 80, 128, 128, generator=g).cuda()
    wh, offset = (torch.rand(4, 2, 128, 128, generator=g) * 30).cuda(), torch.rand(4, 2, 128, 128, generator=g).cuda()
    expected, captured = capture_and_replay(lambda: tuple(centernet_decode(heat, wh, offset, (512, 512),
                                                                            backend=backend)))
    for got, want in zip(captured, expected):
        assert torch.equal(got, want)


@pytest.mark.gpu
@pytest.mark.parametrize("size", [128, 180])
def test_centerpoint_gpu_matches_cpu_at_nuscenes_size(size):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    heads = nuscenes_heads("cpu", batch=2, size=size, seed=size)
    cpu = centerpoint_decode(heads, TASKS, **NUSCENES)
    gpu = centerpoint_decode([{k: v.cuda() for k, v in h.items()} for h in heads], TASKS, **NUSCENES)
    assert torch.equal(gpu.counts.cpu(), cpu.counts) and int(cpu.counts.min()) > 0
    assert torch.equal(gpu.labels.cpu(), cpu.labels)
    # sigmoid, exp and atan2 of the CPU's vectorized loops and of CUDA may differ by an ulp or two
    torch.testing.assert_close(gpu.scores.cpu(), cpu.scores, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(gpu.boxes.cpu(), cpu.boxes, rtol=1e-6, atol=1e-5)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_centernet_boxes_op_passes_opcheck(device):
    g = torch.Generator().manual_seed(2)
    wh, offset = torch.rand(2, 2, 5, 6, generator=g).to(device), torch.rand(2, 2, 5, 6, generator=g).to(device)
    indices = torch.randint(0, 30, (2, 7), generator=g).to(device)
    torch.library.opcheck(centernet_boxes_op, (wh, offset, indices, 6, 4.0, 3.5, device == "cuda"))


def _merge_inputs(device, tasks=3, batch=2, candidates=11, width=5, columns=9, seed=3):
    g = torch.Generator().manual_seed(seed)
    problems = tasks * batch
    boxes = torch.randn(problems, candidates, columns, generator=g).to(device)
    scores = torch.rand(problems, candidates, generator=g).to(device)
    labels = torch.randint(0, 7, (problems, candidates), generator=g).to(device)
    kept_counts = torch.randint(0, width + 1, (problems,), generator=g)
    kept_counts[0] = width
    kept = torch.stack([torch.cat([torch.randperm(candidates, generator=g)[:n], torch.full((width - n,), -1)])
                        for n in kept_counts.tolist()]).to(device)
    return boxes, scores, labels, kept, kept_counts.to(device), tasks


@pytest.mark.parametrize("device", DEVICES)
def test_centerpoint_merge_op_passes_opcheck(device):
    torch.library.opcheck(centerpoint_merge_op, (*_merge_inputs(device), device == "cuda"))


@pytest.mark.gpu
@pytest.mark.parametrize("columns", [7, 9])
def test_centerpoint_merge_kernel_matches_torch_on_poisoned_outputs(columns):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    inputs = _merge_inputs("cuda", tasks=6, batch=4, candidates=500, width=83, columns=columns)
    expected = centerpoint_merge_torch(*inputs)
    for _ in range(2):  # the kernel writes every output element: empty memory is poisoned first
        torch.empty(4 * 6 * 83 * columns * 2, device="cuda").fill_(float("nan"))
        got = centerpoint_merge_op(*inputs, True)
        for a, e in zip(got, expected):
            assert torch.equal(a, e)


def _candidate_inputs(device, tasks=2, batch=2, k=37, channels=10, seed=4, with_range=True, threshold=0.3):
    g = torch.Generator().manual_seed(seed)
    problems = tasks * batch
    gathered = torch.randn(problems, channels, k, generator=g)
    dims, yaw = torch.exp(gathered[:, 3:6]), torch.atan2(gathered[:, 6], gathered[:, 7])
    scores = torch.rand(problems, k, generator=g)
    xs, ys = torch.randint(0, 20, (problems, k), generator=g), torch.randint(0, 20, (problems, k), generator=g)
    labels = torch.randint(0, 2, (problems, k), generator=g)
    offsets = torch.tensor([0, 1, 3][:tasks])
    bounds = torch.tensor([-3.0, -2.5, -1.0, 4.0, 3.5, 1.0]) if with_range else torch.empty(0)
    tensors = [t.to(device) for t in (gathered, dims, yaw, scores, xs, ys, labels, offsets)]
    return (*tensors, 4.0, 0.2, 0.3, -4.0, -3.2, bounds.to(device), threshold)


@pytest.mark.parametrize("device", DEVICES)
def test_centerpoint_candidates_op_passes_opcheck(device):
    torch.library.opcheck(centerpoint_candidates_op, (*_candidate_inputs(device), device == "cuda"))


@pytest.mark.gpu
@pytest.mark.parametrize("channels", [8, 10])
def test_centerpoint_candidates_kernel_matches_torch(channels):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    for with_range, threshold in ((True, 0.3), (False, float("nan"))):
        inputs = _candidate_inputs("cuda", tasks=6, batch=4, k=500, channels=channels, with_range=with_range,
                                   threshold=threshold)
        expected = centerpoint_candidates_torch(*inputs)
        got = centerpoint_candidates_op(*inputs, True)
        for a, e in zip(got, expected):
            assert torch.equal(a, e)
