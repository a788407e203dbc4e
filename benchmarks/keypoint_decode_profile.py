"""Keypoint decoding on the GPU: the fused kernel's time (CUDA-graph replay) for each refinement and a
few launch shapes (search chunk, warps), against the read-once floor, on COCO and WholeBody shapes.

    PYTHONPATH=src python benchmarks/keypoint_decode_profile.py
"""

import torch

from gaussdraw.bench.keypoint_decode import DECODE_CONFIGS, pose_heatmaps
from gaussdraw.bench.timing import copy_bandwidth, graph_time
from gaussdraw.ops.keypoint_decode import REFINE_MODES, keypoint_decode_torch, keypoint_decode_triton

bandwidth = copy_bandwidth(torch.device("cuda"))
print(f"copy bandwidth {bandwidth / 1e12:.2f} TB/s")
for name, shape in DECODE_CONFIGS.items():
    for dtype in (torch.float32, torch.float16):
        heat = pose_heatmaps(shape, "cuda").to(dtype)
        floor = heat.numel() * heat.element_size() / bandwidth * 1e6
        print(f"{name} {tuple(shape)} {dtype}: read-once floor {floor:.1f} us")
        for refine, code in REFINE_MODES.items():
            want = keypoint_decode_torch(heat, code, 11)
            cells = []
            for block, warps in ((None, None), (2048, 4), (4096, 4), (4096, 8), (8192, 8), (8192, 16)):
                got = keypoint_decode_triton(heat, code, 11, block=block, warps=warps)
                same = torch.equal(got[1], want[1]) and bool(((got[0] - want[0]).abs() < 1e-3).all())
                us = graph_time(lambda: keypoint_decode_triton(heat, code, 11, block=block, warps=warps)) * 1e6
                cells.append(f"{block}/{warps}: {us:.1f}{'' if same else ' (DIFFERS)'}")
            print(f"  {str(refine):8s} " + "  ".join(cells))
