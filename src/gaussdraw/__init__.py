"""gaussdraw: Gaussian heatmap targets for center-based detectors, drawn in one kernel launch; their
training targets, the Gaussian focal loss, and the decoding of predicted heatmaps (peaks, circle and
rotated NMS).

>>> import torch, gaussdraw
>>> heatmap = torch.zeros(1, 9, 9)
>>> _ = gaussdraw.draw_heatmap(heatmap, torch.tensor([[4, 4]]), torch.tensor([2]), torch.tensor([0]))
>>> round(heatmap[0, 4, 5].item(), 4)
0.4868
"""

from .checks import set_default_validate
from .decode import (CenterNetDetections, CenterPointDetections, KeptBoxes, Peaks, centernet_decode, centernet_rescale,
                     centerpoint_decode, circle_nms, circle_nms_batched, heatmap_peaks, rotated_nms,
                     rotated_nms_batched)
from .draw import draw_heatmap, draw_heatmap_batched, render_heatmaps, render_heatmaps_batched
from .keypoints import KeypointHeatmaps, KeypointPeaks, MSRAHeatmap, UDPHeatmap, keypoint_decode, keypoint_heatmaps
from .loss import GaussianFocalLoss, gaussian_focal_loss, gaussian_focal_loss_with_logits
from .radius import gaussian_radius
from .ragged import Ragged
from .targets import CenterNetTargets, CenterPointTargets, centernet_targets, centerpoint_targets

__all__ = [
    "CenterNetDetections",
    "CenterNetTargets",
    "CenterPointDetections",
    "CenterPointTargets",
    "GaussianFocalLoss",
    "KeptBoxes",
    "KeypointHeatmaps",
    "KeypointPeaks",
    "MSRAHeatmap",
    "Peaks",
    "Ragged",
    "UDPHeatmap",
    "centernet_decode",
    "centernet_rescale",
    "centernet_targets",
    "centerpoint_decode",
    "centerpoint_targets",
    "circle_nms",
    "circle_nms_batched",
    "draw_heatmap",
    "draw_heatmap_batched",
    "gaussian_focal_loss",
    "gaussian_radius",
    "heatmap_peaks",
    "keypoint_heatmaps",
    "keypoint_decode",
    "gaussian_focal_loss_with_logits",
    "render_heatmaps",
    "render_heatmaps_batched",
    "rotated_nms",
    "rotated_nms_batched",
    "set_default_validate",
]
__version__ = "0.1.0"
