"""Both launch paths give the same bits: every op with a Triton kernel, run with the direct launch
allowed and forbidden (gaussdraw.ops.launch.set_direct_launch), several calls of one layout each (the
later ones relaunched), into outputs poisoned beforehand with a different pattern per path. Where the
Triton version is one the direct path was tested with, the allowed run must have taken it."""

from __future__ import annotations

import importlib

import pytest
import torch

import gaussdraw
from gaussdraw import Ragged

from .test_repeated_calls_gpu import _batch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SEEDS = (0, 1, 2)  # the first call of a layout compiles, the second launches directly, the third is relaunched
POISON = {True: 0xFF, False: 0x7F}  # bytes: NaN / a large float in float32, -1 / a large int in int64


def _poison_free_memory(byte: int) -> None:
    """Fill blocks of the caching allocator with ``byte`` and free them, so that the tensors allocated
    next start as that garbage rather than as whatever was freed last."""
    torch.cuda.synchronize()
    blocks = [torch.full((size,), byte, dtype=torch.uint8, device="cuda")
              for size in (2**k for k in range(9, 26)) for _ in range(4)]
    torch.cuda.synchronize()
    del blocks


def _tensors(result) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    return [t for item in result for t in _tensors(item)]


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes (floats: NaN payloads and signed zeros compared too)."""
    tensor = tensor.detach().contiguous().reshape(-1)
    return tensor.view(torch.uint8) if tensor.dtype.is_floating_point else tensor


def _both_paths(run, kernels):
    """``run(seed)``'s outputs with the direct path allowed and forbidden, compared bit for bit; ``kernels``
    ("module.kernel" in gaussdraw.ops.kernels): those the calls launch, whose last launch must have taken
    the path expected."""
    from gaussdraw.draw_plans import PLANS
    from gaussdraw.ops.launch import direct_launch_status, last_launch_path, set_direct_launch

    kernels = [getattr(importlib.import_module(f"gaussdraw.ops.kernels.{name.split('.')[0]}"), name.split(".")[1])
               for name in kernels]
    outputs, paths = {}, {}
    for direct in (True, False):
        previous = set_direct_launch(direct)
        try:
            PLANS.clear()
            outputs[direct] = []
            for seed in SEEDS:
                _poison_free_memory(POISON[direct])
                outputs[direct].append([t.clone() for t in _tensors(run(seed))])
            torch.cuda.synchronize()
            paths[direct] = {kernel.fn.__name__: last_launch_path(kernel) for kernel in kernels}
            relaunched = len(PLANS)
        finally:
            set_direct_launch(previous)
        if not direct:
            assert relaunched == 0, "a relaunch was planned with the direct path forbidden"
    for seed, (allowed, forbidden) in enumerate(zip(outputs[True], outputs[False])):
        assert len(allowed) == len(forbidden)
        for i, (a, b) in enumerate(zip(allowed, forbidden)):
            assert a.dtype == b.dtype and a.shape == b.shape, (seed, i)
            same = _bits(a) == _bits(b)
            assert bool(same.all()), f"call {seed}, output {i}: {int((~same).sum())} bytes differ"
    status = direct_launch_status()
    expected = "direct" if status["tested"] and not status["hooks"] else "public"
    assert paths[True] == {name: expected for name in paths[True]}, (status, paths[True])
    assert paths[False] == {name: "public" for name in paths[False]}, paths[False]


# ----------------------------------------------------------------------------
# drawing (the relaunch included)
# ----------------------------------------------------------------------------


def _boxes(seed, **sizes):
    """(centers, radii, labels, counts) on CUDA: the repeated-call tests' batch."""
    return [t.cuda() for t in _batch(seed, **sizes)]


def _start(shape, seed, dtype=torch.float32):
    """A heatmap to draw into: random values, a NaN and a negative NaN among them."""
    g = torch.Generator().manual_seed(100 + seed)
    heatmap = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
    flat = heatmap.view(-1)
    flat[7], flat[-3] = float("nan"), -float("nan")
    return heatmap.cuda()


DRAW = ["draw_gaussians.draw_gaussians_kernel"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
def test_draw_heatmap(dtype):
    def run(seed):
        centers, radii, _, _ = _boxes(seed)
        idxes = torch.randint(0, 6, (radii.numel(),), generator=torch.Generator().manual_seed(seed)).cuda()
        return gaussdraw.draw_heatmap(_start((2, 3, 20, 30), seed, dtype), centers.view(-1, 2), radii.view(-1),
                                      idxes, 4.0, 0.8)

    _both_paths(run, DRAW)  # float16: through a float32 copy


@pytest.mark.parametrize("form", ["padded-classwise", "padded", "ragged", "lists", "strided-heatmap"])
def test_draw_heatmap_batched(form):
    def run(seed):
        centers, radii, labels, counts = _boxes(seed)
        if form == "padded-classwise":
            return gaussdraw.draw_heatmap_batched(_start((3, 4, 20, 30), seed), centers, radii, labels=labels,
                                                  counts=counts)
        if form == "padded":
            return gaussdraw.draw_heatmap_batched(_start((3, 20, 30), seed), centers, radii, counts=counts)
        if form == "ragged":
            return gaussdraw.draw_heatmap_batched(_start((3, 4, 20, 30), seed), Ragged(centers, counts),
                                                  Ragged(radii, counts), labels=Ragged(labels, counts))
        if form == "lists":
            sizes = counts.tolist()
            return gaussdraw.draw_heatmap_batched(_start((3, 4, 20, 30), seed),
                                                  [c[:n] for c, n in zip(centers, sizes)],
                                                  [r[:n] for r, n in zip(radii, sizes)],
                                                  labels=[lab[:n] for lab, n in zip(labels, sizes)])
        wide = _start((3, 4, 20, 40), seed)
        gaussdraw.draw_heatmap_batched(wide[..., 5:35], centers, radii, labels=labels, counts=counts)
        return wide

    _both_paths(run, DRAW)


@pytest.mark.parametrize("form", ["concat", "batched"])
def test_render_heatmaps(form):
    def run(seed):
        centers, radii, labels, counts = _boxes(seed)
        if form == "concat":
            idxes = torch.randint(0, 6, (radii.numel(),), generator=torch.Generator().manual_seed(seed)).cuda()
            return gaussdraw.render_heatmaps((2, 3, 20, 30), centers.view(-1, 2), radii.view(-1), idxes)
        return gaussdraw.render_heatmaps_batched((3, 4, 20, 30), centers, radii, labels=labels, counts=counts)

    _both_paths(run, DRAW)


# ----------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------

CENTERPOINT = dict(tasks=[["car"], ["truck", "bus"], ["ped", "cone"]], point_cloud_range=[-8.0, -6.4, -3, 8, 6.4, 1],
                   voxel_size=[0.1, 0.1, 4], grid_size=[160, 128, 1], out_size_factor=4, max_objs=9)


def test_centernet_targets():
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        xy = torch.rand(4, 9, 2, generator=g) * torch.tensor([90.0, 70.0])
        boxes = torch.cat([xy, xy + torch.rand(4, 9, 2, generator=g) * 30], -1).clamp(max=95)
        boxes[:, 2] = boxes[:, 1]  # a shared center pixel
        labels = torch.randint(0, 5, (4, 9), generator=g)
        counts = torch.tensor([5, 0, 9, 3])
        return gaussdraw.centernet_targets(boxes.cuda(), labels.cuda(), 5, (24, 32), (96, 128), counts=counts.cuda())

    _both_paths(run, ["centernet_targets.centernet_boxes_kernel", "centernet_targets.centernet_regress_kernel",
                      "draw_gaussians.draw_gaussians_kernel"])


@pytest.mark.parametrize("velocity", [True, False], ids=["9-values", "7-values"])
def test_centerpoint_targets(velocity):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        boxes = torch.cat([(torch.rand(3, 12, 2, generator=g) - 0.5) * 15,
                           torch.rand(3, 12, 7 if velocity else 5, generator=g) + 0.3], -1)
        labels = torch.randint(0, 5, (3, 12), generator=g)
        counts = torch.tensor([12, 0, 7])
        return gaussdraw.centerpoint_targets(boxes.cuda(), labels.cuda(), counts=counts.cuda(), **CENTERPOINT)

    _both_paths(run, ["centerpoint_targets.centerpoint_assign_kernel", "draw_gaussians.draw_gaussians_kernel"])


# ----------------------------------------------------------------------------
# focal loss: forward, the stored gradient scaled, a second backward recomputing it
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("logits", [False, True], ids=["probabilities", "logits"])
@pytest.mark.parametrize("reduction, dtype", [("mean", torch.float32), ("sum", torch.float16),
                                               ("none", torch.float32)], ids=lambda v: str(v))
def test_gaussian_focal_loss(logits, reduction, dtype):
    loss_fn = gaussdraw.gaussian_focal_loss_with_logits if logits else gaussdraw.gaussian_focal_loss

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        pred = torch.rand(2, 3, 37, 41, generator=g)
        target = torch.rand(2, 3, 37, 41, generator=g) ** 4
        target[torch.rand(target.shape, generator=g) < 0.01] = 1.0
        x = (torch.logit(pred.clamp(0.01, 0.99)) if logits else pred).to(dtype).cuda().requires_grad_()
        loss = loss_fn(x, target.cuda(), reduction=reduction)
        upstream = torch.full_like(loss, 0.7)
        loss.backward(upstream, retain_graph=True)
        stored = x.grad.clone()
        x.grad = None
        loss.backward(upstream)  # recomputed
        return [loss.detach(), stored, x.grad]

    kernels = ["focal_loss.focal_loss_forward_kernel", "focal_loss.focal_loss_finalize_kernel",
               "focal_loss.focal_loss_backward_kernel"]
    if reduction != "none" and dtype != torch.float16:  # a stored gradient, scaled by the first backward
        kernels.append("focal_loss.focal_loss_scale_gradient_kernel")
    _both_paths(run, kernels)


# ----------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("per_class_k", [None, 9], ids=["tile-bound", "per-class"])
def test_heatmap_peaks(per_class_k):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        heat = (torch.randint(0, 50, (2, 3, 40, 300), generator=g).float() / 50).cuda()  # plateaus and ties
        return gaussdraw.heatmap_peaks(heat, 20, per_class_k=per_class_k)

    # the tile-bound path: four kernels; the per-class path: two
    _both_paths(run, ["peaks.group_max_kernel", "peaks.bound_kernel", "peaks.candidates_kernel", "peaks.select_kernel"]
                if per_class_k is None else ["class_peaks.class_top_kernel", "class_peaks.class_select_kernel"])


def test_circle_nms_batched():
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        counts = torch.tensor([300, 0, 217, 1])
        centers = (torch.rand(4, 300, 2, generator=g) * 40).cuda()
        scores = torch.rand(4, 300, generator=g)
        scores[0, :20] = 0.5  # equal scores
        return gaussdraw.circle_nms_batched(centers, scores.cuda(), 2.0, counts=counts.cuda(), post_max_size=83)

    _both_paths(run, ["circle_nms.order_keys_kernel", "circle_nms.circle_nms_kernel"])
