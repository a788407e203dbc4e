"""Repeated unchecked CUDA calls with one layout repeat the first call's launch with their own tensors."""

from __future__ import annotations

import pytest
import torch

from gaussdraw import Ragged, draw_heatmap, draw_heatmap_batched, set_default_validate
from gaussdraw.draw_plans import PLANS

from .helpers import assert_close
from .test_draw import background

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _batch(seed, samples=3, tmax=7, classes=4, height=20, width=30):
    g = torch.Generator().manual_seed(seed)
    centers = torch.stack([torch.randint(-3, width + 3, (samples, tmax), generator=g),
                           torch.randint(-3, height + 3, (samples, tmax), generator=g)], -1)
    radii = torch.randint(0, 6, (samples, tmax), generator=g)
    labels = torch.randint(0, classes, (samples, tmax), generator=g)
    counts = torch.randint(0, tmax + 1, (samples,), generator=g)
    return centers, radii, labels, counts


def _expected(start, centers, radii, labels, counts):
    heatmap = start.clone()
    draw_heatmap_batched(heatmap, centers, radii, labels=labels, counts=counts, backend="torch")
    return heatmap


@pytest.mark.parametrize("form", ["padded", "ragged"])
def test_same_layout_new_values(form):
    PLANS.clear()
    for seed in range(4):  # the first call plans, the others repeat its launch with their tensors
        centers, radii, labels, counts = _batch(seed)
        start = background((3, 4, 20, 30), seed=seed)
        expected = _expected(start, centers, radii, labels, counts)
        heatmap = start.cuda()
        c, r, lab, n = (t.cuda() for t in (centers, radii, labels, counts))
        if form == "padded":
            draw_heatmap_batched(heatmap, c, r, labels=lab, counts=n)
        else:
            draw_heatmap_batched(heatmap, Ragged(c, n), Ragged(r, n), labels=Ragged(lab, n))
        assert_close(heatmap, expected, 1e-6, f"call {seed}:")
    assert len(PLANS) == 1


def test_other_layouts_plan_anew_and_stay_right():
    PLANS.clear()
    centers, radii, labels, counts = _batch(5)
    for tmax in (7, 5, 7):
        start = background((3, 4, 20, 30), seed=tmax)
        c, r, lab = centers[:, :tmax].contiguous(), radii[:, :tmax].contiguous(), labels[:, :tmax].contiguous()
        n = counts.clamp(max=tmax)
        expected = _expected(start, c, r, lab, n)
        heatmap = start.cuda()
        draw_heatmap_batched(heatmap, c.cuda(), r.cuda(), labels=lab.cuda(), counts=n.cuda())
        assert_close(heatmap, expected, 1e-6, f"tmax {tmax}:")
        # a strided heatmap view: another layout
        wide = torch.zeros(3, 4, 20, 40, device="cuda")
        view = wide[..., 5:35]
        view.copy_(start.cuda())
        draw_heatmap_batched(view, c.cuda(), r.cuda(), labels=lab.cuda(), counts=n.cuda())
        assert_close(view, expected, 1e-6, f"strided, tmax {tmax}:")
        assert not wide[..., :5].any() and not wide[..., 35:].any()
    assert len(PLANS) == 4


def test_concat_repeats_and_skips_invalid_entries():
    PLANS.clear()
    g = torch.Generator().manual_seed(9)
    for call in range(3):
        centers = torch.randint(-2, 25, (12, 2), generator=g)
        radii = torch.randint(0, 5, (12,), generator=g)
        idxes = torch.randint(0, 6, (12,), generator=g)
        if call:
            radii[3], idxes[4] = -1, 99  # unchecked on CUDA: skipped, never written
        valid = (radii >= 0) & (idxes < 6)
        start = background((6, 18, 25), seed=call)
        expected = start.clone()
        draw_heatmap(expected, centers[valid], radii[valid], idxes[valid])
        heatmap = start.cuda()
        draw_heatmap(heatmap, centers.cuda(), radii.cuda(), idxes.cuda())
        assert_close(heatmap, expected, 1e-6, f"call {call}:")


def test_checked_calls_do_not_take_the_repeat():
    PLANS.clear()
    centers, radii, labels, counts = (t.cuda() for t in _batch(1))
    heatmap = torch.zeros(3, 4, 20, 30, device="cuda")
    draw_heatmap_batched(heatmap, centers, radii, labels=labels, counts=counts)
    bad = labels.clone()
    bad[0, 0] = 9
    counts = counts.clone()
    counts[0] = 7
    with pytest.raises(ValueError, match="labels must be in"):
        draw_heatmap_batched(heatmap, centers, radii, labels=bad, counts=counts, validate=True)
    previous = set_default_validate(True)
    try:
        with pytest.raises(ValueError, match="labels must be in"):
            draw_heatmap_batched(heatmap, centers, radii, labels=bad, counts=counts)
    finally:
        set_default_validate(previous)


def test_repeat_follows_the_stream_and_the_current_device():
    PLANS.clear()
    centers, radii, labels, counts = _batch(2)
    start = background((3, 4, 20, 30), seed=2)
    expected = _expected(start, centers, radii, labels, counts)
    for index in range(torch.cuda.device_count()):
        args = [t.to(f"cuda:{index}") for t in (centers, radii, labels, counts)]
        for _ in range(2):
            heatmap = start.to(f"cuda:{index}")
            with torch.cuda.device((index + 1) % torch.cuda.device_count()):
                stream = torch.cuda.Stream(device=index)
                stream.wait_stream(torch.cuda.current_stream(index))
                with torch.cuda.stream(stream):
                    draw_heatmap_batched(heatmap, args[0], args[1], labels=args[2], counts=args[3])
                torch.cuda.current_stream(index).wait_stream(stream)
            assert_close(heatmap, expected, 1e-6, f"cuda:{index}:")


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["msra", "udp", "dark"])
def test_keypoint_encodes_take_their_plan_with_new_values(monkeypatch, method):
    """From the call after the kernel's compile, an unchecked keypoint encode of one layout repeats its
    launch (gaussdraw.keypoints.plans) on fresh, poisoned outputs: new values, the CPU path's; inputs
    one element into their storage take the plan too; another σ or size plans anew."""
    from gaussdraw import keypoint_heatmaps
    from gaussdraw.keypoints.plans import KeypointPlan
    from gaussdraw.ops.launch import direct_launch_active
    from gaussdraw.targets import plans

    from .helpers import calls_of
    from .test_keypoints_encode import CUDA_TOLERANCE, assert_matches

    monkeypatch.setattr(plans, "PLANS", {})
    served = calls_of(monkeypatch, KeypointPlan)
    was_served = []
    for sigma, size in [(2.0, (48, 64)), (2.5, (48, 64)), (2.0, (40, 56))]:
        for seed in range(4):
            g = torch.Generator().manual_seed(seed)
            keypoints = torch.rand(8, 2, 17, 2, generator=g) * torch.tensor([size[0] * 1.1, size[1] * 1.1]) - 2
            visible = torch.randint(0, 3, (8, 2, 17), generator=g).float()
            counts = torch.randint(0, 3, (8,), generator=g)
            expected = keypoint_heatmaps(keypoints, visible, size, sigma, method=method, counts=counts)
            storage = torch.empty(keypoints.numel() + seed % 2, device="cuda")  # odd seeds: 4 bytes in
            cuda_keypoints = storage[seed % 2:].view(keypoints.shape).copy_(keypoints)
            poison = torch.full((4 << 20,), float("nan"), device="cuda")  # the allocator hands these out next
            del poison
            before = len(served)
            actual = keypoint_heatmaps(cuda_keypoints, visible.cuda(), size, sigma, method=method,
                                       counts=counts.cuda(), validate=False)
            was_served.append(len(served) > before)
            assert_matches(actual, expected, f"{method} sigma {sigma} size {size} seed {seed}", method,
                           CUDA_TOLERANCE)
            assert expected.heatmaps.sum() > 0
    if direct_launch_active():  # by its 4th call (4 bytes in) each layout has a plan, which serves it
        assert len(plans.PLANS) == 3 and was_served[3::4] == [True] * 3, was_served


@pytest.mark.gpu
@pytest.mark.parametrize("nms", ["circle", None])
def test_centerpoint_decodes_take_their_plan_with_new_values(monkeypatch, nms):
    """From the call after the kernels' compile, a CenterPoint decode of nuScenes' layout repeats its
    launches (gaussdraw.decode.centerpoint_plans) on fresh, poisoned outputs: the values of the
    unplanned call (plans off) on the same inputs, regression maps 4 bytes into their storage too;
    another batch or map size plans anew."""
    from gaussdraw import centerpoint_decode
    from gaussdraw.decode import centerpoint as decode_module
    from gaussdraw.decode.centerpoint_plans import CenterPointDecodePlan
    from gaussdraw.ops.launch import direct_launch_active
    from gaussdraw.targets import plans

    from .helpers import calls_of

    monkeypatch.setattr(plans, "PLANS", {})
    served = calls_of(monkeypatch, CenterPointDecodePlan)
    classes, channels = [1, 2, 2, 1, 2, 2], [("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)]
    tasks = [dict(num_class=c) for c in classes]
    options = dict(point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], voxel_size=[0.2, 0.2, 8],
                   post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], max_num=500, score_threshold=0.1,
                   nms=nms, min_radius=[4, 12, 10, 1, 0.85, 0.175], post_max_size=83)
    real_key, was_served = decode_module.plan_key, []
    for batch, size in [(1, 128), (4, 128), (1, 180)]:
        for seed in range(4):
            g = torch.Generator().manual_seed(seed)
            preds = [{"heatmap": (torch.randn(batch, c, size, size, generator=g) * 2 - 2).cuda(),
                      **{name: torch.randn(batch, n, size, size, generator=g).cuda() for name, n in channels}}
                     for c in classes]
            if seed % 2:  # odd seeds: the regression maps 4 bytes into their storage (not specialized on)
                for head in preds:
                    storage = torch.empty(head["dim"].numel() + 1, device="cuda")
                    head["dim"] = storage[1:].view(head["dim"].shape).copy_(head["dim"])
            monkeypatch.setattr(decode_module, "plan_key", lambda *args: None)  # plans off: the checked path
            expected = centerpoint_decode(preds, tasks, out_size_factor=4 * 128 // size, **options)
            monkeypatch.setattr(decode_module, "plan_key", real_key)
            poison = torch.full((16 << 20,), float("nan"), device="cuda")  # the allocator hands these out next
            del poison
            before = len(served)
            actual = centerpoint_decode(preds, tasks, out_size_factor=4 * 128 // size, **options)
            was_served.append(len(served) > before)
            for name, a, e in zip(expected._fields, actual, expected):
                assert torch.equal(a, e), f"batch {batch} size {size} seed {seed}: {name} differs"
            assert int(expected.counts.min()) > 0
    if direct_launch_active():  # by its 4th call each layout has a plan, which serves it
        assert len(plans.PLANS) == 3 and was_served[3::4] == [True] * 3, was_served
