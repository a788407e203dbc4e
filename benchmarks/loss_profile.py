"""Where the focal loss's time goes on the GPU: the launchers alone vs the whole autograd call, and a host profile."""

import cProfile
import pstats

import torch
import triton.testing

from gaussdraw import gaussian_focal_loss
from gaussdraw.bench.loss import LOSS_SHAPES, loss_inputs
from gaussdraw.ops.focal_loss import backward_triton, focal_loss_triton, scale_gradient_triton

for name, shape in LOSS_SHAPES.items():
    pred, target = loss_inputs(shape, "cuda")
    x = pred.clone().requires_grad_()
    one, three = torch.ones((), device="cuda"), torch.full((), 3.0, device="cuda")
    grad = torch.empty_like(pred)
    args = (pred, target, None, 2.0, 4.0, 1.0, 1.0, False, True)
    times = {
        "forward": lambda: focal_loss_triton(*args),
        "forward + stored gradient": lambda: focal_loss_triton(*args, write_grad=True),
        "scale gradient by 1 (skipped)": lambda: scale_gradient_triton(grad, one),
        "scale gradient by 3": lambda: scale_gradient_triton(grad, three),
        "backward recomputed": lambda: backward_triton(one, *args[:-1]),
    }
    for label, fn in times.items():
        print(f"{name}: {label} {triton.testing.do_bench(fn, return_mode='median') * 1e3:.1f} us")
    t_all = triton.testing.do_bench(lambda: gaussian_focal_loss(x, target).backward(), grad_to_none=[x],
                                    return_mode="median")
    print(f"{name}: whole fwd+bwd {t_all * 1e3:.1f} us")

pred, target = loss_inputs(LOSS_SHAPES["centerpoint-nus"], "cuda")
x = pred.clone().requires_grad_()
for _ in range(20):
    x.grad = None
    gaussian_focal_loss(x, target).backward()
torch.cuda.synchronize()
profiler = cProfile.Profile()
profiler.enable()
for _ in range(300):
    x.grad = None
    gaussian_focal_loss(x, target).backward()
torch.cuda.synchronize()
profiler.disable()
pstats.Stats(profiler).sort_stats("tottime").print_stats(22)
