"""Why the loss's wall time moves between processes: the same gaussdraw call timed in a fresh
process, after torch.compile has run in it, and after a CUDA-graph capture."""

import time

import torch
import triton.testing

from gaussdraw import gaussian_focal_loss
from gaussdraw.bench import LOSS_SHAPES, graph_time, loss_inputs
from gaussdraw.reference import gaussian_focal_loss_composed


def measure(label):
    for name, shape in LOSS_SHAPES.items():
        pred, target = loss_inputs(shape, "cuda")
        x = pred.clone().requires_grad_()

        def step():
            x.grad = None
            gaussian_focal_loss(x, target).backward()

        step()
        torch.cuda.synchronize()
        bench = triton.testing.do_bench(step, warmup=25, rep=200, return_mode="median") * 1e3
        start = time.perf_counter()
        for _ in range(200):
            step()
        torch.cuda.synchronize()
        loop = (time.perf_counter() - start) / 200 * 1e6
        start = time.perf_counter()
        for _ in range(200):
            with torch.no_grad():
                gaussian_focal_loss(x, target)
        torch.cuda.synchronize()
        fwd_loop = (time.perf_counter() - start) / 200 * 1e6
        print(f"{label:28s} {name:15s} do_bench fwd+bwd {bench:7.1f} us | back-to-back fwd+bwd {loop:7.1f} us "
              f"| back-to-back fwd (no_grad) {fwd_loop:7.1f} us", flush=True)


measure("fresh process")
pred, target = loss_inputs(LOSS_SHAPES["centerpoint-nus"], "cuda")
x = pred.clone().requires_grad_()
torch.compile(gaussian_focal_loss_composed)(x, target).backward()
measure("after torch.compile ran")
x = pred.clone().requires_grad_()
graph_time(lambda: gaussian_focal_loss(x, target).backward(), calls=2)
measure("after a CUDA-graph capture")
