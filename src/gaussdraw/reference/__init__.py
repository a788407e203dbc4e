"""Plain implementations (loops, float64 where it helps): what the kernels must equal, for tests
and benchmarks. One module a topic:

- :mod:`.detection`: drawing, targets, the focal loss, peaks and circle NMS (mmdet/mmdet3d's semantics);
- :mod:`.keypoints`: keypoint heatmap encoding (mmpose's MSRA, UDP and DARK encoders);
- :mod:`.keypoint_decode`: pose heatmap decoding, maximum and refinements (mmpose's semantics);
- :mod:`.rotated_nms`: rotated (BEV) NMS, mmcv's ``nms_rotated`` as mmdet3d's ``nms_bev`` calls it
  (float64 Sutherland–Hodgman clipping of each pair, the greedy loop).
"""

from .detection import (centernet_targets_per_box, centerpoint_targets_per_box, centerpoint_topk_composed,
                        circle_nms_per_box, draw_heatmap_batched_per_box, draw_heatmap_per_box, draw_one_box,
                        gaussian_focal_loss_composed, gaussian_values, heatmap_peaks_composed)
from .keypoint_decode import keypoint_decode_per_keypoint
from .keypoints import keypoint_heatmaps_per_keypoint
from .rotated_nms import rotated_iou, rotated_nms_per_box

__all__ = ["centernet_targets_per_box", "centerpoint_targets_per_box", "centerpoint_topk_composed",
           "circle_nms_per_box", "draw_heatmap_batched_per_box", "draw_heatmap_per_box", "draw_one_box",
           "gaussian_focal_loss_composed", "gaussian_values", "heatmap_peaks_composed",
           "keypoint_decode_per_keypoint", "keypoint_heatmaps_per_keypoint", "rotated_iou", "rotated_nms_per_box"]
