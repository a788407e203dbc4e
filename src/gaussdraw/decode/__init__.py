"""Decoding predicted heatmaps: peaks (local maxima, top k), circle and rotated NMS.

- :func:`heatmap_peaks`: mmdet's ``get_topk_from_heatmap(get_local_maximum(heat, kernel), k)``,
  or with ``per_class_k`` CenterPoint's two-stage ``_topk``;
- :func:`circle_nms` / :func:`circle_nms_batched`: mmdet3d's greedy ``circle_nms``;
- :func:`rotated_nms` / :func:`rotated_nms_batched`: mmdet3d's ``nms_bev`` (mmcv's ``nms_rotated``);
- :func:`centernet_decode` (+ :func:`centernet_rescale`): mmdet's ``CenterNetHead._decode_heatmap``;
- :func:`centerpoint_decode`: mmdet3d's ``CenterHead.predict_by_feat``, every task and sample at once.
"""

from .centernet import CenterNetDetections, centernet_decode, centernet_rescale
from .centerpoint import CenterPointDetections, centerpoint_decode
from .nms import KeptBoxes, circle_nms, circle_nms_batched
from .peaks import Peaks, heatmap_peaks
from .rotated_nms import rotated_nms, rotated_nms_batched

__all__ = ["CenterNetDetections", "CenterPointDetections", "KeptBoxes", "Peaks", "centernet_decode",
           "centernet_rescale", "centerpoint_decode", "circle_nms", "circle_nms_batched", "heatmap_peaks",
           "rotated_nms", "rotated_nms_batched"]
