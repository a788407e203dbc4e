"""The value-check rule of every public function: checked on the CPU by default, not on a GPU
(no host sync), ``validate=`` per call, ``GAUSSDRAW_VALIDATE`` / ``set_default_validate`` to change
the default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import gaussdraw
from gaussdraw import (
    Ragged,
    centernet_targets,
    centerpoint_targets,
    draw_heatmap,
    draw_heatmap_batched,
    gaussian_focal_loss,
    gaussian_focal_loss_with_logits,
    render_heatmaps,
    render_heatmaps_batched,
    set_default_validate,
)

from .helpers import assert_close

_CENTERPOINT = dict(tasks=[1, 2], point_cloud_range=[-4.0, -4.0, -3, 4, 4, 1], voxel_size=[0.1, 0.1, 4],
                    grid_size=[80, 80, 1], out_size_factor=4, max_objs=4)


def _bad_calls(device):
    """(name, call) pairs, each with one invalid entry, in every public function and input form.
    The tensors are made here, so that a call does nothing but the function's own work."""
    def t(x, **kw):
        return torch.tensor(x, device=device, **kw)

    maps = {shape: torch.zeros(*shape, device=device) for shape in ((2, 8, 8), (1, 8, 8), (1, 2, 8, 8))}
    centers, radii, counts = t([[[1, 2], [3, 4]]]), t([[1, -2]]), t([2])
    concat = (t([[1, 2], [3, 4]]), t([1, 2]), t([0, 5]))
    render = (t([[1, 2]]), t([-1]), t([0]))
    ragged = (Ragged(centers, counts), Ragged(radii, counts))
    lists = ([centers[0]], [radii[0]])
    classwise = (t([[1, 2]]), t([[0, 2]]))
    boxes2d = ([t([[1.0, 1.0, 5.0, float("nan")]])], [t([0])])
    boxes3d = ([t([[0.5, 0.3, 0, 1, 2, 1, 0.3, 0, 0]])], [t([7])])
    half, bad_target = torch.full((4,), 0.5, device=device), t([0.0, 1.0, 1.5, 0.0])
    logits, bad_logit_target = torch.zeros(4, device=device), t([0.0, 1.0, -0.5, 0.0])
    return [
        ("draw_heatmap", lambda: draw_heatmap(maps[(2, 8, 8)], *concat)),
        ("render_heatmaps", lambda: render_heatmaps((2, 8, 8), *render)),
        ("batched-padded", lambda: draw_heatmap_batched(maps[(1, 8, 8)], centers, radii, counts=counts)),
        ("batched-ragged", lambda: draw_heatmap_batched(maps[(1, 8, 8)], *ragged)),
        ("batched-list", lambda: draw_heatmap_batched(maps[(1, 8, 8)], *lists)),
        ("classwise", lambda: draw_heatmap_batched(maps[(1, 2, 8, 8)], centers, classwise[0], labels=classwise[1],
                                                   counts=counts)),
        ("render_heatmaps_batched", lambda: render_heatmaps_batched((1, 8, 8), *lists)),
        ("centernet_targets", lambda: centernet_targets(*boxes2d, 2, (8, 8), (16, 16))),
        ("centerpoint_targets", lambda: centerpoint_targets(*boxes3d, **_CENTERPOINT)),
        ("gaussian_focal_loss", lambda: gaussian_focal_loss(half, bad_target)),
        ("gaussian_focal_loss_with_logits", lambda: gaussian_focal_loss_with_logits(logits, bad_logit_target)),
    ]


CALL_NAMES = [name for name, _ in _bad_calls("cpu")]


@pytest.fixture
def default_validate():
    """Restores the default after a test that changes it."""
    previous = set_default_validate(None)
    yield
    set_default_validate(previous)


@pytest.mark.parametrize("index", range(len(CALL_NAMES)), ids=CALL_NAMES)
def test_cpu_default_raises(index, default_validate):
    _, call = _bad_calls("cpu")[index]
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("index", range(len(CALL_NAMES)), ids=CALL_NAMES)
def test_default_off_everywhere_skips_invalid_entries(index, default_validate):
    _, call = _bad_calls("cpu")[index]
    assert set_default_validate(False) is None
    call()  # invalid entries are skipped or computed, never raised for


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("index", range(len(CALL_NAMES)), ids=CALL_NAMES)
def test_cuda_default_does_not_sync_and_default_on_raises(index, default_validate):
    _, call = _bad_calls("cuda")[index]
    call()  # compile, cache
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        call()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    set_default_validate(True)
    with pytest.raises(ValueError):
        call()


def test_default_validate_rejects_other_values(default_validate):
    with pytest.raises(TypeError, match=r"validate must be True, False or None; got 'yes'"):
        set_default_validate("yes")
    with pytest.raises(TypeError, match=r"validate must be True, False or None; got 1"):
        draw_heatmap(torch.zeros(1, 4, 4), torch.tensor([[1, 1]]), torch.tensor([1]), torch.tensor([0]), validate=1)


def test_invalid_entries_are_skipped_without_checks():
    heatmap = torch.zeros(2, 8, 8)
    draw_heatmap(heatmap, torch.tensor([[1, 2], [3, 4], [5, 5]]), torch.tensor([1, -2, 2]), torch.tensor([0, 0, 9]),
                 validate=False)
    expected = torch.zeros(2, 8, 8)
    draw_heatmap(expected, torch.tensor([[1, 2]]), torch.tensor([1]), torch.tensor([0]))
    assert_close(heatmap, expected, 0.0)


@pytest.mark.parametrize("value, raises", [("1", True), ("0", False), ("auto", True)])
def test_environment_variable(value, raises):
    code = ("import torch, gaussdraw\n"
            "try:\n"
            "    gaussdraw.draw_heatmap(torch.zeros(1, 4, 4), torch.tensor([[1, 1]]), torch.tensor([-1]),"
            " torch.tensor([0]))\n"
            "    print('drawn')\n"
            "except ValueError as error:\n"
            "    print('raised', error)\n")
    env = dict(os.environ, GAUSSDRAW_VALIDATE=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("raised" if raises else "drawn"), out.stdout


def test_environment_variable_with_a_bad_value():
    env = dict(os.environ, GAUSSDRAW_VALIDATE="maybe")
    out = subprocess.run([sys.executable, "-c", "import gaussdraw"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "GAUSSDRAW_VALIDATE must be 1" in out.stderr


def test_public_name():
    assert "set_default_validate" in gaussdraw.__all__
