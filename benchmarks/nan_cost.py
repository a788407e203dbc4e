"""What keeping NaN costs the draw kernel: GPU time (CUDA-graph replay) with the atomic max that returns the
old value and puts a lost NaN back (the default), against a plain atomic max, interleaved, per config."""

import torch

from gaussdraw.bench.draw import CONFIGS, _batched_draw, make_inputs
from gaussdraw.bench.timing import graph_time
from gaussdraw.ops.draw_gaussians import DrawLaunchShape

for name in ("seed-batched", "centerpoint-nus", "centernet-coco", "large-radius", "dense"):
    inputs = make_inputs(CONFIGS[name], "cuda")
    heatmap = torch.zeros(CONFIGS[name].shape, device="cuda")
    times = {True: [], False: []}
    for _ in range(3):
        for keep in (True, False):
            times[keep].append(graph_time(_batched_draw(inputs, heatmap, DrawLaunchShape(keep_nan=keep))) * 1e6)
    print(f"{name}: keep NaN {min(times[True]):.2f} us, plain max {min(times[False]):.2f} us "
          f"(rounds {[round(t, 2) for t in times[True]]} / {[round(t, 2) for t in times[False]]})")
