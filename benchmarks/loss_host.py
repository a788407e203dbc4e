"""Where the loss's forward + backward wall time goes on the host, and how the wall is measured.

For each loss shape: GPU time (CUDA-graph replay), wall per step measured two ways (``do_bench``, which
flushes the L2 between steps and times each step from its own events; and back-to-back steps with one
sync, as a training loop issues them), the host's issue time per step (no sync: the time Python needs
to enqueue it), split into forward and backward, for gaussdraw and compiled mmdet; then a cProfile of
gaussdraw's steps, by cumulative time."""

import cProfile
import io
import pstats
import sys
import time

import torch
import triton.testing

from gaussdraw import gaussian_focal_loss
from gaussdraw.bench.loss import LOSS_SHAPES, loss_inputs
from gaussdraw.bench.timing import graph_time
from gaussdraw.reference import gaussian_focal_loss_composed


def issue_us(fn, calls=50):
    """Host µs to enqueue one call (no sync inside the loop; the GPU may lag behind)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    issued = (time.perf_counter() - start) / calls * 1e6
    torch.cuda.synchronize()
    return issued


def back_to_back_us(fn, calls=200, rounds=5):
    out = []
    for _ in range(rounds):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(out)[rounds // 2]


compiled = torch.compile(gaussian_focal_loss_composed)
variants = {"gaussdraw": gaussian_focal_loss, "mmdet compiled": compiled}
tiny = torch.ones(1, device="cuda", requires_grad=True)
print(f"backward() of a one-element graph, issue time: {issue_us(lambda: (tiny * 2).sum().backward()):.1f} us")
for name, shape in LOSS_SHAPES.items():
    pred, target = loss_inputs(shape, "cuda")
    for variant, fn in variants.items():
        x = pred.clone().requires_grad_()

        def step(fn=fn, x=x):
            x.grad = None
            fn(x, target).backward()

        losses = []

        def forward_only(fn=fn, x=x):
            losses.append(fn(x, target))

        def backward_only():
            losses.pop().backward()

        for _ in range(3):
            step()
        gpu = graph_time(step, calls=5) * 1e6
        bench = triton.testing.do_bench(step, warmup=25, rep=200, grad_to_none=[x], return_mode="median") * 1e3
        b2b = back_to_back_us(step)
        total = issue_us(step)
        fwd = issue_us(forward_only)
        x.grad = None
        bwd = issue_us(backward_only)
        print(f"{name:15s} {variant:15s} GPU {gpu:7.1f} | do_bench {bench:7.1f} | back-to-back {b2b:7.1f} "
              f"| host issue: step {total:6.1f} = forward {fwd:6.1f} + backward {bwd:6.1f} us", flush=True)

pred, target = loss_inputs(LOSS_SHAPES["centernet-coco"], "cuda")
x = pred.clone().requires_grad_()


def steps(n=200):
    for _ in range(n):
        x.grad = None
        gaussian_focal_loss(x, target).backward()
    torch.cuda.synchronize()


steps(5)
profile = cProfile.Profile()
profile.enable()
steps()
profile.disable()
text = io.StringIO()
pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
print(text.getvalue()[:6000], file=sys.stdout)
