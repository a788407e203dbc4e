"""Decoding predicted heatmaps: peaks (local maxima, top k), circle and rotated NMS.

- :func:`heatmap_peaks`: mmdet's ``get_topk_from_heatmap(get_local_maximum(heat, kernel), k)``,
  or with ``per_class_k`` CenterPoint's two-stage ``_topk``;
- :func:`circle_nms` / :func:`circle_nms_batched`: mmdet3d's greedy ``circle_nms``;
- :func:`rotated_nms` / :func:`rotated_nms_batched`: mmdet3d's ``nms_bev`` (mmcv's ``nms_rotated``).
"""

from .nms import KeptBoxes, circle_nms, circle_nms_batched
from .peaks import Peaks, heatmap_peaks
from .rotated_nms import rotated_nms, rotated_nms_batched

__all__ = ["KeptBoxes", "Peaks", "circle_nms", "circle_nms_batched", "heatmap_peaks", "rotated_nms",
           "rotated_nms_batched"]
