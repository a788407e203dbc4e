"""The CenterPoint task kernels (``ops/centerpoint_tasks.py``: per-class top-k and compacted candidates
of every task, the maps read in place) against the op path they replace (stacked logits, peaks,
gathers, the candidates op, the valid rows moved to the front)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaussdraw.decode.centerpoint import _candidates, _valid_first
from gaussdraw.dispatch import route
from gaussdraw.ops._constants import device_constant

from .test_head_decode import _heads

SETTINGS = settings(max_examples=6, deadline=None)
GEOMETRY = (4.0, 0.2, 0.2, -8.0, -6.4)


def _decoding(classes, device, with_range, threshold, norm_bbox):
    offsets = device_constant(tuple(sum(classes[:t]) for t in range(len(classes))), torch.int64, device)
    bounds = (torch.tensor([-5.0, -4.0, -1.0, 6.0, 4.5, 1.5], device=device) if with_range
              else torch.empty(0, device=device))
    return (offsets, bounds, threshold, *GEOMETRY, norm_bbox)


def _both(heads, classes, k, with_range, threshold, norm_bbox):
    """(ops path on the CPU with torch, task kernels) of the same heads."""
    from gaussdraw.ops.centerpoint_tasks import centerpoint_tasks_triton, tasks_fit

    device = heads[0]["heatmap"].device
    assert tasks_fit(heads, classes, k, *heads[0]["heatmap"].shape[2:])
    decoding = _decoding(classes, device, with_range, threshold, norm_bbox)
    cpu = [{name: t.cpu() for name, t in head.items()} for head in heads]
    expected = _candidates(cpu, classes, "vel" in heads[0], k, _decoding(classes, torch.device("cpu"), with_range,
                                                                          threshold, norm_bbox),
                           route("torch", torch.device("cpu")), "torch")
    counts = device_constant(tuple(classes), torch.int64, device)
    got = centerpoint_tasks_triton(heads, classes, k, decoding[0], counts, *decoding[1:])
    return expected, [t.cpu() for t in got]


def _assert_agree(expected, got, exact_math: bool):
    boxes, scores, labels, counts = got
    assert torch.equal(counts, expected[3]) and torch.equal(labels, expected[2])
    # x, y, z and velocity are the same float32 operations; exp, atan2 and sigmoid those of another library
    # (numpy's in the interpreter, torch's on the CPU: an ulp or two apart)
    linear = [0, 1, 2] + list(range(7, boxes.shape[2]))
    assert torch.equal(boxes[..., linear], expected[0][..., linear])
    if exact_math:
        assert torch.equal(boxes, expected[0]) and torch.equal(scores, expected[1])
    else:
        torch.testing.assert_close(boxes, expected[0], rtol=3e-7, atol=0)
        torch.testing.assert_close(scores, expected[1], rtol=3e-7, atol=1e-7)


@pytest.mark.parametrize("classes,velocity", [([1, 2, 2, 1, 2, 2], True), ([2, 1, 3, 1, 1, 2, 2], False)])
def test_task_kernels_match_the_op_path(device_backend, classes, velocity):
    """Six tasks (one launch each kernel) and seven (two groups); with and without velocity."""
    device, backend = device_backend
    if backend != "triton":
        pytest.skip("the task kernels are the Triton path")
    heads = [{n: t.to(device) for n, t in h.items()} for h in _heads(11, 2, classes, 7, 9, velocity)]
    expected, got = _both(heads, classes, 12, True, 0.3, True)
    assert 0 < int(got[3].sum()) < got[3].numel() * 12  # some valid, some not
    _assert_agree(expected, got, exact_math=False)


@SETTINGS
@given(seed=st.integers(0, 2**16), classes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       size=st.tuples(st.integers(2, 6), st.integers(2, 6)), data=st.data(),
       with_range=st.booleans(), threshold=st.sampled_from([float("nan"), 0.1, 0.6]), norm_bbox=st.booleans())
def test_task_kernels_match_the_op_path_on_random_heads(seed, classes, size, data, with_range, threshold, norm_bbox):
    pytest.importorskip("triton")
    from gaussdraw.ops._triton import interpreting

    if not interpreting():
        pytest.skip("runs the kernels on CPU tensors in Triton's interpreter")
    k = data.draw(st.integers(1, size[0] * size[1]))
    heads = _heads(seed, 2, classes, *size)  # no equal logits: at the k-th place, torch.topk picks any of them
    _assert_agree(*_both(heads, classes, k, with_range, threshold, norm_bbox), exact_math=False)


def test_valid_first_is_a_stable_partition():
    valid = torch.rand(5, 33, generator=torch.Generator().manual_seed(2)) > 0.6
    order, counts = _valid_first(valid)
    assert torch.equal(order, torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices)
    assert torch.equal(counts, valid.sum(1))


@pytest.mark.gpu
@pytest.mark.parametrize("size,batch", [(128, 1), (180, 4)])
def test_task_kernels_equal_the_op_path_on_a_gpu(size, batch):
    """On a GPU, exp and the sigmoid are CUDA's in both paths: the same bits; the yaw is libdevice's atan2,
    which is within an ulp of torch's (measured on the H200: 5 of ~1,000 valid rows one ulp apart). Outputs
    poisoned first; the rows past the counts are left unspecified."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from gaussdraw.ops.centerpoint_tasks import centerpoint_tasks_triton

    classes = [1, 2, 2, 1, 2, 2]
    heads = [{n: t.cuda() for n, t in h.items()} for h in _heads(size, batch, classes, size, size)]
    for head in heads:
        head["heatmap"] -= 3.0  # about nuScenes' share of scores above the threshold
    decoding = _decoding(classes, torch.device("cuda"), True, 0.1, True)
    expected = _candidates(heads, classes, True, 500, decoding, route("triton", torch.device("cuda")), "triton")
    torch.empty(64 * 2**20, device="cuda").fill_(float("nan"))
    got = centerpoint_tasks_triton(heads, classes, 500, decoding[0], device_constant(tuple(classes), torch.int64,
                                                                                      torch.device("cuda")),
                                   *decoding[1:])
    assert 0 < int(got[3].sum()) < got[3].numel() * 500
    counts = got[3]
    assert torch.equal(counts, expected[3])
    valid = torch.arange(500, device="cuda") < counts.unsqueeze(1)
    assert valid.any()
    boxes, scores, labels = (t[valid] for t in got[:3])
    assert torch.equal(scores, expected[1][valid]) and torch.equal(labels, expected[2][valid])
    yaw = 6
    others = [c for c in range(boxes.shape[1]) if c != yaw]
    assert torch.equal(boxes[:, others], expected[0][valid][:, others])
    torch.testing.assert_close(boxes[:, yaw], expected[0][valid][:, yaw], rtol=2.5e-7, atol=1e-7)
