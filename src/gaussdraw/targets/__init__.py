"""Training targets of center-based heads, for a whole batch in one call."""

from .centernet import CenterNetTargets, centernet_targets
from .centerpoint import CenterPointTargets, centerpoint_targets

__all__ = ["CenterNetTargets", "CenterPointTargets", "centernet_targets", "centerpoint_targets"]
