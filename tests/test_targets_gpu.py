"""Target assignment on CUDA: no host sync, CUDA-graph capture, streams and devices."""

from __future__ import annotations

import pytest
import torch

from gaussdraw import centernet_targets, centerpoint_targets

from .helpers import assert_close

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

CENTERPOINT = dict(tasks=[["car"], ["truck", "bus"], ["ped", "cone"]], point_cloud_range=[-8.0, -6.4, -3, 8, 6.4, 1],
                   voxel_size=[0.1, 0.1, 4], grid_size=[160, 128, 1], out_size_factor=4, max_objs=9)


def _centernet_inputs(device, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([5, 0, 9, 3])
    xy = torch.rand(4, 9, 2, generator=g) * torch.tensor([90.0, 70.0])
    boxes = torch.cat([xy, xy + torch.rand(4, 9, 2, generator=g) * 30], -1).clamp(max=95)
    boxes[:, 2] = boxes[:, 1]  # a shared center pixel
    labels = torch.randint(0, 5, (4, 9), generator=g)
    return boxes.to(device), labels.to(device), counts.to(device)


def _centerpoint_inputs(device, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([12, 0, 7])
    boxes = torch.cat([(torch.rand(3, 12, 2, generator=g) - 0.5) * 15, torch.rand(3, 12, 7, generator=g) + 0.3], -1)
    labels = torch.randint(0, 5, (3, 12), generator=g)
    return boxes.to(device), labels.to(device), counts.to(device)


def _centernet(boxes, labels, counts, **kw):
    return centernet_targets(boxes, labels, 5, (24, 32), (96, 128), counts=counts, **kw)


def _centerpoint(boxes, labels, counts, **kw):
    return centerpoint_targets(boxes, labels, counts=counts, **CENTERPOINT, **kw)


def _flat(targets):
    return [t for item in targets for t in (item if isinstance(item, list) else [item])]


@pytest.mark.parametrize("head", ["centernet", "centerpoint"])
def test_no_host_sync_by_default_on_cuda(head):
    call, inputs = (_centernet, _centernet_inputs) if head == "centernet" else (_centerpoint, _centerpoint_inputs)
    boxes, labels, counts = inputs("cuda")
    call(boxes, labels, counts)  # compile the kernels, cache the task table
    lists = ([b[:n] for b, n in zip(boxes, counts.tolist())], [lab[:n] for lab, n in zip(labels, counts.tolist())])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        padded = call(boxes, labels, counts)
        from_lists = call(*lists, None)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for a, b in zip(_flat(padded), _flat(from_lists)):
        assert_close(a, b, 0.0)


@pytest.mark.parametrize("head", ["centernet", "centerpoint"])
def test_cuda_graph_replay_rewrites_poisoned_outputs(head):
    call, inputs = (_centernet, _centernet_inputs) if head == "centernet" else (_centerpoint, _centerpoint_inputs)
    boxes, labels, counts = inputs("cuda")
    expected = [t.clone() for t in _flat(call(boxes, labels, counts))]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        call(boxes, labels, counts)  # warm up on the capture stream
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = call(boxes, labels, counts, validate=False)
    for t in _flat(captured):  # poison every output: the replay must write all of it
        t.fill_(7 if t.dtype in (torch.uint8, torch.int64) else float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    for a, e in zip(_flat(captured), expected):
        assert_close(a, e, 0.0)
    assert any(t.float().abs().sum() > 0 for t in expected)


@pytest.mark.parametrize("head", ["centernet", "centerpoint"])
def test_side_stream_and_other_current_device(head):
    call, inputs = (_centernet, _centernet_inputs) if head == "centernet" else (_centerpoint, _centerpoint_inputs)
    expected = _flat(call(*inputs("cpu")))
    devices = range(torch.cuda.device_count())
    for index in devices:
        inputs_on = inputs(f"cuda:{index}")
        with torch.cuda.device((index + 1) % len(devices)):  # the current device is another one
            stream = torch.cuda.Stream(device=index)
            stream.wait_stream(torch.cuda.current_stream(index))
            with torch.cuda.stream(stream):
                actual = _flat(call(*inputs_on))
            torch.cuda.current_stream(index).wait_stream(stream)
        for a, e in zip(actual, expected):
            assert a.device == torch.device("cuda", index)
            atol = 1e-6 if a.is_floating_point() else 0.0
            assert_close(a, e, atol)


@pytest.mark.parametrize("head", ["centernet", "centerpoint"])
def test_validate_true_raises_on_cuda(head):
    call, inputs = (_centernet, _centernet_inputs) if head == "centernet" else (_centerpoint, _centerpoint_inputs)
    boxes, labels, counts = inputs("cuda")
    labels = labels.clone()
    labels[0, 1] = 99
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\).*got 99 at sample 0, position 1"):
        call(boxes, labels, counts, validate=True)
    call(boxes, labels, counts)  # unchecked by default on CUDA: the box is skipped


def _syncs(fn) -> int:
    """How many host syncs ``fn`` makes, by torch's sync debug mode (a warning each)."""
    import warnings

    fn()  # compile and cache first
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message).lower() and "prototype" not in str(w.message) for w in caught)


@pytest.mark.parametrize("form", ["padded", "list"])
def test_validate_true_checks_everything_in_one_sync(form):
    """validate=True reads every value check of a call in one host sync (counts, sample sizes, boxes)."""
    from gaussdraw import circle_nms_batched, draw_heatmap_batched

    net, point = _centernet_inputs("cuda"), _centerpoint_inputs("cuda")
    if form == "list":
        net = ([b[:n] for b, n in zip(net[0], net[2].tolist())], [l[:n] for l, n in zip(net[1], net[2].tolist())],
               None)
        point = ([b[:n] for b, n in zip(point[0], point[2].tolist())],
                 [l[:n] for l, n in zip(point[1], point[2].tolist())], None)
    centers = [torch.randint(0, 30, (n, 2), device="cuda") for n in (4, 0, 7)]
    radii = [torch.randint(0, 5, (n,), device="cuda") for n in (4, 0, 7)]
    heatmap = torch.zeros(3, 32, 32, device="cuda")
    calls = {
        "centernet_targets": lambda: _centernet(*net, validate=True),
        "centerpoint_targets": lambda: _centerpoint(*point, validate=True),
        "draw_heatmap_batched": lambda: draw_heatmap_batched(heatmap, centers, radii, validate=True),
        "circle_nms_batched": lambda: circle_nms_batched([c.float() for c in centers], [r.float() for r in radii],
                                                         1.0, validate=True),
    }
    counted = {name: _syncs(call) for name, call in calls.items()}
    assert all(count == 1 for count in counted.values()), counted


@pytest.mark.parametrize("head", ["centernet", "centerpoint"])
def test_repeated_calls_take_their_plan_with_new_values(head):
    """From the second call of a layout, the call repeats the first's launches (targets/plans.py):
    new values, new outputs, the values of the CPU path; another layout is not served by it."""
    from gaussdraw.ops.centernet_targets import CenterNetPlan
    from gaussdraw.ops.centerpoint_targets import CenterPointPlan
    from gaussdraw.ops.launch import direct_launch_active
    from gaussdraw.targets import plans

    call, inputs = (_centernet, _centernet_inputs) if head == "centernet" else (_centerpoint, _centerpoint_inputs)
    outputs = []
    for seed in range(4):
        for cut in (None, 7):  # a shorter padded length: another layout, its own plan
            boxes, labels, counts = inputs("cpu", seed)
            if cut is not None:
                boxes, labels, counts = boxes[:, :cut], labels[:, :cut], counts.clamp(max=cut)
            expected = _flat(call(boxes, labels, counts))
            actual = _flat(call(boxes.cuda(), labels.cuda(), counts.cuda()))
            for a, e in zip(actual, expected):
                assert_close(a.cpu(), e, 1e-6 if a.is_floating_point() else 0.0)
            outputs.append(actual[0])
    assert len({t.data_ptr() for t in outputs}) == len(outputs)  # every call its own outputs
    if direct_launch_active():
        kind = CenterNetPlan if head == "centernet" else CenterPointPlan
        assert sum(isinstance(plan, kind) for plan in plans.PLANS.values()) >= 2
