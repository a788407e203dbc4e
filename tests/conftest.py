from __future__ import annotations

import os

import pytest
import torch

from gaussdraw.ops._triton import HAVE_TRITON, interpreting

HAVE_CUDA = torch.cuda.is_available()
# Triton kernels run on CUDA tensors, and on CPU tensors in the interpreter.
DEVICE_BACKENDS = [("cpu", "torch")]
if HAVE_TRITON and interpreting():
    DEVICE_BACKENDS.append(("cpu", "triton"))
if HAVE_CUDA:
    DEVICE_BACKENDS.append(("cuda", "torch"))
    if HAVE_TRITON and not interpreting():
        DEVICE_BACKENDS.append(("cuda", "triton"))
DEVICE_BACKEND_IDS = [f"{d}-{b}" for d, b in DEVICE_BACKENDS]


@pytest.fixture(params=DEVICE_BACKENDS, ids=DEVICE_BACKEND_IDS)
def device_backend(request):
    return request.param


def pytest_report_header(config):
    return f"gaussdraw device/backends: {DEVICE_BACKEND_IDS}; TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')}"
