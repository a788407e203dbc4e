"""torch.library integration: opcheck, torch.compile(fullgraph=True), CUDA graphs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from gaussdraw import draw_heatmap, draw_heatmap_batched
from gaussdraw.ops.draw_gaussians import draw_gaussians_op

from .helpers import assert_close
from .test_draw import background

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _op_args(device, classwise):
    g = torch.Generator().manual_seed(0)
    heatmap = background((6, 11, 13)).to(device)
    centers = torch.randint(-2, 14, (2, 5, 2), generator=g).to(device)
    radii = torch.randint(0, 6, (2, 5), generator=g).to(device)
    if classwise:
        labels = torch.randint(0, 3, (2, 5), generator=g).to(device)
        return (heatmap, centers, radii, labels, torch.tensor([5, 3], device=device), 3, 6.0, 1.0, device == "cuda")
    return (heatmap, centers.view(1, 10, 2), radii.view(1, 10), torch.randint(0, 6, (1, 10), generator=g).to(device),
            None, 0, 4.0, 0.5, device == "cuda")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("classwise", [False, True], ids=["concat", "classwise"])
def test_opcheck(device, classwise):
    torch.library.opcheck(draw_gaussians_op, _op_args(device, classwise))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    torch._dynamo.reset()

    def targets(heatmap, centers, radii, idxes, labels, counts):
        draw_heatmap(heatmap[0], centers.flatten(0, 1), radii.flatten(), idxes, validate=False)
        draw_heatmap_batched(heatmap[1], centers, radii, labels=labels, counts=counts, validate=False)
        return heatmap * 2

    g = torch.Generator().manual_seed(1)
    centers = torch.randint(-2, 20, (2, 6, 2), generator=g).to(device)
    radii = torch.randint(0, 7, (2, 6), generator=g).to(device)
    idxes = torch.randint(0, 6, (12,), generator=g).to(device)
    labels = torch.randint(0, 3, (2, 6), generator=g).to(device)
    counts = torch.tensor([6, 2], device=device)
    start = background((2, 2, 3, 15, 19)).to(device)
    expected = targets(start.clone(), centers, radii, idxes, labels, counts)
    compiled = torch.compile(targets, fullgraph=True)
    actual = compiled(start.clone(), centers, radii, idxes, labels, counts)
    assert_close(actual, expected, 1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_capture_without_validation():
    g = torch.Generator().manual_seed(2)
    heatmap = torch.zeros(4, 3, 20, 50, device="cuda")
    centers = torch.randint(0, 50, (4, 30, 2), generator=g).cuda()
    radii = torch.randint(0, 5, (4, 30), generator=g).cuda()
    labels = torch.randint(0, 3, (4, 30), generator=g).cuda()
    counts = torch.randint(0, 31, (4,), generator=g).cuda()

    def step():
        heatmap.fill_(-1.0)  # poison: every run starts from garbage
        draw_heatmap_batched(heatmap, centers, radii, labels=labels, counts=counts, validate=False)

    step()  # compile outside capture
    torch.cuda.synchronize()
    expected = heatmap.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    heatmap.zero_()
    graph.replay()
    torch.cuda.synchronize()
    assert_close(heatmap, expected, 0.0)
    assert (heatmap > 0).any()


def _centernet_args(device):
    g = torch.Generator().manual_seed(4)
    xy = torch.rand(2, 6, 2, generator=g) * 60
    boxes = torch.cat([xy, xy + torch.rand(2, 6, 2, generator=g) * 30], -1).to(device)
    labels = torch.randint(0, 3, (2, 6), generator=g).to(device)
    counts = torch.tensor([6, 3], device=device)
    return boxes, labels, counts


def _centerpoint_args(device):
    g = torch.Generator().manual_seed(5)
    boxes = torch.cat([torch.rand(2, 7, 2, generator=g) * 8 - 4, torch.rand(2, 7, 7, generator=g) + 0.5], -1)
    labels = torch.randint(0, 3, (2, 7), generator=g)
    return boxes.to(device), labels.to(device), torch.tensor([7, 4], device=device)


_CENTERPOINT_OPTIONS = dict(point_cloud_range=[-4.0, -4.0, -3, 4, 4, 1], voxel_size=[0.1, 0.1, 4],
                            grid_size=[80, 88, 1], out_size_factor=4, max_objs=5)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_targets(device):
    from gaussdraw.ops.centernet_targets import centernet_targets_op
    from gaussdraw.ops.centerpoint_targets import centerpoint_targets_op

    boxes, labels, counts = _centernet_args(device)
    torch.library.opcheck(centernet_targets_op, (boxes, labels, counts, 3, 20, 24, 80.0, 96.0, 0.3,
                                                  device == "cuda"))
    boxes, labels, counts = _centerpoint_args(device)
    torch.library.opcheck(centerpoint_targets_op, (boxes, labels, counts, [1, 2], 22, 20, [-4.0, -4.0], [0.1, 0.1],
                                                   4, 0.1, 2, 5, True, device == "cuda"))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph_targets(device):
    from gaussdraw import centernet_targets, centerpoint_targets

    torch._dynamo.reset()

    def both(boxes, labels, counts, boxes3d, labels3d, counts3d):
        net = centernet_targets(boxes, labels, 3, (20, 24), (80, 96), counts=counts, validate=False)
        point = centerpoint_targets(boxes3d, labels3d, [1, 2], counts=counts3d, validate=False, **_CENTERPOINT_OPTIONS)
        return net.heatmap + 1, net.avg_factor * 2, point.heatmaps[1] * 2, point.inds[0] + 1

    args = (*_centernet_args(device), *_centerpoint_args(device))
    expected = both(*args)
    actual = torch.compile(both, fullgraph=True)(*args)
    for a, e in zip(actual, expected):
        assert_close(a, e, 0.0)
    assert expected[1].item() > 2


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_target_kernels_compile_for_hopper():
    """The interpreter runs code that Triton's compiler rejects: compile the kernels for sm_90 too."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-m", "tests.compile_kernels"], capture_output=True, text=True, env=env,
                            cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    from .compile_kernels import KERNELS

    unfused = sum(1 for _, _, without_fma, *_ in KERNELS if without_fma)
    assert result.stdout.count(" 0 fused multiply-adds") >= unfused, result.stdout
    assert result.stdout.count("PTX lines") == len(KERNELS), result.stdout


def test_eager_cpu_calls_do_not_import_the_compiler_stack():
    """A fresh process (a data-loader worker, a CPU training job) that draws, builds targets and
    takes a loss step on the CPU never imports torch._dynamo (the custom ops' first call would,
    at ~1 s), nor Triton where it is installed (~0.3 s with the kernels' set-up). Without Triton
    installed (a CPU-only install), as with it."""
    code = ("import sys, torch, gaussdraw\n"
            "heatmap = gaussdraw.draw_heatmap(torch.zeros(2, 8, 8), torch.tensor([[3, 3]]), torch.tensor([2]),"
            " torch.tensor([1]))\n"
            "targets = gaussdraw.centernet_targets([torch.tensor([[2.0, 2.0, 20.0, 24.0]])], [torch.tensor([1])],"
            " num_classes=2, feat_size=(8, 8), img_size=(32, 32))\n"
            "pred = torch.rand(1, 2, 8, 8, requires_grad=True)\n"
            "gaussdraw.gaussian_focal_loss(pred, targets.heatmap).backward()\n"
            "assert pred.grad is not None\n"
            "print(sorted(name for name, module in sys.modules.items()\n"
            "             if module is not None and name.startswith(('torch._dynamo', 'triton'))))\n")
    for block_triton in (False, True):
        prefix = "import sys; sys.modules['triton'] = None\n" if block_triton else ""
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        out = subprocess.run([sys.executable, "-c", prefix + code], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "[]", out.stdout
