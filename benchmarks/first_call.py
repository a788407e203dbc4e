"""Time a fresh process's `import gaussdraw` (after `import torch`) and its first calls:
a CPU draw, a CPU loss step and, where CUDA is, a CUDA draw (its first launch compiles or
loads the kernel). Prints one JSON line. Run it a few times: the first run also warms caches."""

from __future__ import annotations

import json
import sys
import time

import torch

start = time.perf_counter()
import gaussdraw  # noqa: E402

times = {"import_gaussdraw_s": time.perf_counter() - start}
start = time.perf_counter()
gaussdraw.draw_heatmap(torch.zeros(3, 64, 64), torch.tensor([[10, 10]]), torch.tensor([3]), torch.tensor([1]))
times["first_cpu_draw_s"] = time.perf_counter() - start
pred = torch.rand(1, 3, 16, 16, requires_grad=True)
start = time.perf_counter()
gaussdraw.gaussian_focal_loss(pred, torch.rand(1, 3, 16, 16)).backward()
times["first_cpu_loss_step_s"] = time.perf_counter() - start
times["triton_imported_so_far"] = "triton" in sys.modules and sys.modules["triton"] is not None
if torch.cuda.is_available():
    heatmap = torch.zeros(3, 64, 64, device="cuda")
    start = time.perf_counter()
    gaussdraw.draw_heatmap(heatmap, torch.tensor([[10, 10]], device="cuda"), torch.tensor([3], device="cuda"),
                           torch.tensor([1], device="cuda"))
    torch.cuda.synchronize()
    times["first_cuda_draw_s"] = time.perf_counter() - start
print(json.dumps(times))
