"""Rotated NMS against mmcv's own IoU code: ``box_iou_rotated_utils.hpp`` of an mmcv source tree
(``$MMCV_SRC``, e.g. the unpacked ``pip download --no-binary :all: mmcv==2.1.0``), compiled with a
small C++ wrapper of ours that runs the loop of mmcv's ``nms_rotated_cpu_kernel`` (visit in the
given order, suppress where IoU >= threshold). Skipped without ``$MMCV_SRC`` or a C++ compiler:
mmcv's compiled ops are not installed here."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from gaussdraw import rotated_nms
from gaussdraw.ops.rotated_nms import box_geometry, pair_iou

HEADER = os.path.join(os.environ.get("MMCV_SRC", ""), "mmcv", "ops", "csrc", "common", "box_iou_rotated_utils.hpp")
pytestmark = pytest.mark.skipif(not os.environ.get("MMCV_SRC") or not os.path.isfile(HEADER)
                                or shutil.which("g++") is None, reason="needs $MMCV_SRC (mmcv sources) and g++")

WRAPPER = r"""
#include <cstdint>
#include "box_iou_rotated_utils.hpp"
extern "C" float iou(const float* a, const float* b) { return single_box_iou_rotated<float>(a, b, 0); }
extern "C" int64_t nms(const float* boxes, const int64_t* order, int64_t n, float threshold, int64_t* keep) {
  // the loop of mmcv's nms_rotated_cpu_kernel, over boxes already in visiting order
  uint8_t* suppressed = new uint8_t[n]();
  int64_t kept = 0;
  for (int64_t a = 0; a < n; a++) {
    int64_t i = order[a];
    if (suppressed[i]) continue;
    keep[kept++] = i;
    for (int64_t b = a + 1; b < n; b++) {
      int64_t j = order[b];
      if (!suppressed[j] && single_box_iou_rotated<float>(boxes + 5 * i, boxes + 5 * j, 0) >= threshold)
        suppressed[j] = 1;
    }
  }
  delete[] suppressed;
  return kept;
}
"""


@pytest.fixture(scope="module")
def mmcv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mmcv_iou")
    source, library = folder / "wrapper.cpp", folder / "wrapper.so"
    source.write_text(WRAPPER)
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-std=c++14", f"-I{os.path.dirname(HEADER)}", str(source),
                    "-o", str(library)], check=True)
    lib = ctypes.CDLL(str(library))
    lib.iou.restype = ctypes.c_float
    lib.nms.restype = ctypes.c_int64
    return lib


def _pointer(array: np.ndarray, kind):
    return array.ctypes.data_as(ctypes.POINTER(kind))


def mmcv_iou(lib, first: np.ndarray, second: np.ndarray) -> float:
    return lib.iou(_pointer(first, ctypes.c_float), _pointer(second, ctypes.c_float))


def mmcv_nms(lib, boxes: np.ndarray, scores: np.ndarray, thresh: float) -> list:
    order = torch.sort(torch.from_numpy(scores), descending=True, stable=True).indices.numpy()
    keep = np.zeros(len(boxes), dtype=np.int64)
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    count = lib.nms(_pointer(boxes, ctypes.c_float), _pointer(order, ctypes.c_int64), len(boxes),
                    ctypes.c_float(thresh), _pointer(keep, ctypes.c_int64))
    return keep[:count].tolist()


def random_boxes(count, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.rand(count, 2, generator=g) * 8, torch.rand(count, 2, generator=g) * 3 + 0.2,
                      (torch.rand(count, 1, generator=g) - 0.5) * 8], 1)


def test_iou_matches_mmcv(mmcv):
    boxes = random_boxes(60, 0)
    boxes[7] = boxes[3]
    boxes[8] = torch.tensor([1.0, 1.0, 2.0, 1.0, 0.0])
    boxes[9] = torch.tensor([2.0, 1.0, 2.0, 1.0, 0.0])
    geometry = box_geometry(boxes, torch.float32)
    ours = pair_iou(geometry[:, None], geometry[None, :])
    rows = boxes.numpy()
    theirs = torch.tensor([[mmcv_iou(mmcv, a, b) for b in rows] for a in rows])
    assert (ours - theirs).abs().max() < 2e-6, (ours - theirs).abs().max()


@pytest.mark.parametrize("thresh", [0.05, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("seed", range(3))
def test_nms_matches_mmcv(mmcv, thresh, seed):
    boxes = random_boxes(150, seed)
    scores = torch.rand(150, generator=torch.Generator().manual_seed(seed + 10))
    assert rotated_nms(boxes, scores, thresh).tolist() == mmcv_nms(mmcv, boxes.numpy(), scores.numpy(), thresh)
