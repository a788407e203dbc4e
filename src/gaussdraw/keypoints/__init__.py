"""Pose heatmaps as mmpose's codecs: encoding (:mod:`.encode`) and decoding (:mod:`.decode`)."""

from .decode import KeypointPeaks, keypoint_decode
from .encode import KeypointHeatmaps, keypoint_heatmaps

__all__ = ["KeypointHeatmaps", "KeypointPeaks", "keypoint_decode", "keypoint_heatmaps"]
