"""Where the focal loss's time goes on the GPU: launchers alone vs the whole autograd call, and a host profile."""

import cProfile
import pstats

import torch
import triton.testing

from gaussdraw import gaussian_focal_loss
from gaussdraw.bench import LOSS_SHAPES, loss_inputs
from gaussdraw.ops.focal_loss import backward_triton, forward_triton

for name, shape in LOSS_SHAPES.items():
    pred, target = loss_inputs(shape, "cuda")
    x = pred.clone().requires_grad_()
    one = torch.ones((), device="cuda")
    t_fwd = triton.testing.do_bench(lambda: forward_triton(pred, target, None, 2.0, 4.0, 1.0, 1.0, False, True))
    t_bwd = triton.testing.do_bench(lambda: backward_triton(one, pred, target, None, 2.0, 4.0, 1.0, 1.0, False))
    t_all = triton.testing.do_bench(lambda: gaussian_focal_loss(x, target).backward(), grad_to_none=[x])
    print(f"{name}: forward launcher {t_fwd * 1e3:.1f} us, backward launcher {t_bwd * 1e3:.1f} us, "
          f"whole fwd+bwd {t_all * 1e3:.1f} us")

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
