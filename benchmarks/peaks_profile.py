"""Where heatmap_peaks' GPU time goes on the CenterNet shape: each stage of the tile-bound path
(ops/peaks.py) alone, CUDA-graph replay, for a few tile shapes and warp counts."""

import torch

from gaussdraw.bench.decode import peak_inputs
from gaussdraw.bench.timing import graph_time
from gaussdraw.ops import peaks
from gaussdraw.ops.kernels import peaks as kernels
from gaussdraw.ops.launch import launch

heat = peak_inputs((32, 80, 128, 128), "cuda")
k, kernel = 100, 3
batch, classes, height, width = heat.shape


def stages(shape: peaks.PeaksLaunchShape):
    tiles_w = -(-width // shape.block_w)
    per_plane = -(-height // shape.block_h) * tiles_w
    tile_max = torch.empty((batch, classes * per_plane), dtype=torch.int32, device="cuda")
    grid = (per_plane, batch * classes)
    tiles = dict(classes=classes, height=height, width=width, tiles_w=tiles_w, tiles_per_plane=per_plane,
                 KERNEL=kernel, BLOCK_H=shape.block_h, BLOCK_W=shape.block_w)
    capacity = min(classes * height * width, max(shape.capacity[0] * k, shape.capacity[1]))
    candidates = torch.empty((batch, capacity), dtype=torch.int64, device="cuda")
    count = torch.zeros(batch, dtype=torch.int32, device="cuda")
    best = torch.empty((batch, 128), dtype=torch.int64, device="cuda")
    tile_maxima = lambda: launch(kernels.tile_max_kernel, grid, num_warps=shape.warps, heat_ptr=heat,  # noqa: E731
                                 tile_max_ptr=tile_max, **tiles)
    tile_maxima()
    bound = torch.topk(tile_max, k, dim=1).values[:, -1].contiguous()
    cands = lambda: (count.zero_(), launch(  # noqa: E731
        kernels.candidates_kernel, grid, num_warps=shape.warps, heat_ptr=heat, tile_max_ptr=tile_max,
        bound_ptr=bound, candidates_ptr=candidates, count_ptr=count, capacity=capacity, **tiles))
    cands()
    print(f"  candidates per sample: {count.tolist()[:8]} ...")
    select = lambda: launch(kernels.select_kernel, (batch,), num_warps=8, heat_ptr=heat,  # noqa: E731
                            candidates_ptr=candidates, count_ptr=count, best_ptr=best, classes=classes, height=height,
                            width=width, capacity=capacity, KERNEL=kernel, KEEP=128, CHUNK=max(shape.chunk or 512, 256))
    for name, fn in (("tile maxima", tile_maxima), ("top-k of tile maxima", lambda: torch.topk(tile_max, k, dim=1)),
                     ("candidates (with its count reset)", cands), ("select", select),
                     ("whole heatmap_peaks", lambda: peaks.peak_keys_triton(heat, k, kernel, shape=shape))):
        print(f"  {name}: {graph_time(fn) * 1e6:.1f} us", flush=True)


for block_h, block_w, warps in ((8, 128, 4), (16, 64, 4), (8, 64, 4), (32, 32, 4), (16, 64, 8)):
    print(f"tile {block_h}x{block_w}, {warps} warps:")
    stages(peaks.PeaksLaunchShape(block_h=block_h, block_w=block_w, warps=warps))
