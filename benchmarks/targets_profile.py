"""Where a target-assignment call's host time goes on the GPU: each layer's wall time per call
(back-to-back calls, one sync) and a host profile of the padded-input call."""

import cProfile
import pstats

import torch

from gaussdraw.bench.targets import TARGET_CONFIGS, _calls, _options, centernet_inputs, centerpoint_inputs
from gaussdraw.bench.timing import wall_time
from gaussdraw.ops import centernet_targets as centernet_op
from gaussdraw.ops import centerpoint_targets as centerpoint_op
from gaussdraw.ops.kernels import centernet_targets as centernet_kernels
from gaussdraw.ops.kernels import centerpoint_targets as centerpoint_kernels
from gaussdraw.ops.kernels import draw_gaussians
from gaussdraw.ops.launch import direct_launch_status, last_launch_path


def per_call(fn, calls=300):
    """Wall µs per call: back-to-back calls, one sync, median of 5 rounds."""
    return wall_time(fn, torch.device("cuda"), calls) * 1e6


for name in ("centernet-coco", "centerpoint-nus"):
    config = TARGET_CONFIGS[name]
    inputs = centernet_inputs(config) if config.head == "centernet" else centerpoint_inputs(config)
    boxes, labels = [[t.cuda() for t in group] for group in inputs]
    as_list, as_padded, _ = _calls(config, boxes, labels, validate=False)
    padded = torch.nn.utils.rnn.pad_sequence(boxes, batch_first=True)
    padded_labels = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True)
    counts = torch.tensor([len(b) for b in boxes], device="cuda")
    options = _options(config)
    if config.head == "centernet":
        op_args = (padded, padded_labels, counts, options["num_classes"], *options["feat_size"], *options["img_size"],
                   0.3)
        op = centernet_op.centernet_targets_triton
        kernels = {"boxes": centernet_kernels.centernet_boxes_kernel,
                   "regress": centernet_kernels.centernet_regress_kernel}
    else:
        width, height = (g // options["out_size_factor"] for g in options["grid_size"][:2])
        op_args = (padded, padded_labels, counts, [1, 2, 2, 1, 2, 2], height, width,
                   options["point_cloud_range"][:2], options["voxel_size"][:2], options["out_size_factor"],
                   options["gaussian_overlap"], options["min_radius"], options["max_objs"], True)
        op = centerpoint_op.centerpoint_targets_triton
        kernels = {"assign": centerpoint_kernels.centerpoint_assign_kernel}
    kernels["draw"] = draw_gaussians.draw_gaussians_kernel
    print(f"{name}: whole call {per_call(as_padded):.1f} us, lists {per_call(as_list):.1f} us, "
          f"op alone {per_call(lambda: op(*op_args)):.1f} us")
    print(f"{name}: {direct_launch_status()}; last launch paths "
          + ", ".join(f"{k}: {last_launch_path(v)}" for k, v in kernels.items()))
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(300):
        as_padded()
    profile.disable()
    torch.cuda.synchronize()
    pstats.Stats(profile).sort_stats("tottime").print_stats(14)
