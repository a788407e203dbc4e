"""Pose heatmaps as mmpose's codecs: encoding (:mod:`.encode`), decoding (:mod:`.decode`) and the
drop-in codecs (:mod:`.codecs`)."""

from .codecs import MSRAHeatmap, UDPHeatmap
from .decode import KeypointPeaks, keypoint_decode
from .encode import KeypointHeatmaps, keypoint_heatmaps

__all__ = ["KeypointHeatmaps", "KeypointPeaks", "MSRAHeatmap", "UDPHeatmap", "keypoint_decode", "keypoint_heatmaps"]
