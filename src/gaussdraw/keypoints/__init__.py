"""Pose heatmaps as mmpose's codecs: decoding (:mod:`.decode`)."""

from .decode import KeypointPeaks, keypoint_decode

__all__ = ["KeypointPeaks", "keypoint_decode"]
