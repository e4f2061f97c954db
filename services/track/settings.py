"""Settings of the track service, from environment variables (see the README's configuration table)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from services.runtime.settings import ServiceSettings, SettingError, above, at_least
from services.track.scenes import VEHICLE_CLASSES

# `person` is tracked too: a rider whose bike the detector missed is boxed as a person only
# (riders.py tells such a two-wheeler from a pedestrian; pedestrians are never judged).
DEFAULT_CLASSES = ["car", "motorcycle", "bus", "truck", "bicycle", "person"]


class Settings(ServiceSettings, frozen=True, kw_only=True):
    http_port: int = 8083

    # One `<camera_id>.yaml` per camera; the file names the camera, its place and its geometry. A bad
    # file stops the service naming file, line and field.
    scenes_dir: str = "deploy/local/scenes"
    # This replica's index among the replicas: cameras are shared by rendezvous hashing.
    partition_index: int = 0
    # the number of track replicas (PARTITION_INDEX is 0..PARTITION_COUNT-1)
    partition_count: Annotated[int, at_least(1)] = 1
    # Detector classes to track: vehicles, and `person` (a lone rider, or a pedestrian never judged).
    track_classes: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CLASSES))
    reorder_window_s: Annotated[float, at_least(0)] = 1.0  # detections are put back in capture order within this window
    # a track unseen for longer ends (until then it is re-associated where it was heading)
    max_lost_s: Annotated[float, at_least(0)] = 1.5
    evidence_bucket: str = "evidence"  # object store bucket of the evidence JPEGs
    evidence_before_s: Annotated[float, at_least(0)] = 0.6  # evidence frames this long before the moment
    evidence_after_s: Annotated[float, at_least(0)] = 0.6  # evidence frames this long after the moment
    count_window_s: Annotated[float, above(0)] = 60.0  # length of a traffic-count window
    # A track boxed only as `person` is a two-wheeler after this many steps in a row in a lane,
    # along its direction, over 0.8 s ...
    lone_rider_frames: Annotated[int, at_least(1)] = 3
    # ... moving at least this many of its box heights per second (raise it where people walk in lanes)
    lone_rider_speed: Annotated[float, above(0)] = 0.5
    # Each camera's tracking state is saved to this key-value bucket (key: the camera) every
    # CHECKPOINT_EVERY detections, so that a restarted track carries on with the same tracks; empty: off.
    checkpoint_bucket: str = "track_checkpoints"
    # save every this many detections (5: once a second at 5 frames/s; a restart reads them back)
    checkpoint_every: Annotated[int, at_least(1)] = 5
    # At SIGTERM: finish every track and publish what is pending (true), or save a checkpoint and
    # leave the tracks to the next start (false; always finished when checkpoints are off).
    finish_on_stop: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.scenes_dir:
            raise SettingError("SCENES_DIR", "is required")
        if not 0 <= self.partition_index < self.partition_count:
            raise SettingError("PARTITION_INDEX", f"must be within 0..{self.partition_count - 1}, got {self.partition_index}")
        unknown = sorted(set(self.track_classes) - set(VEHICLE_CLASSES) - {"person"})
        if unknown or not self.track_classes:
            raise SettingError("TRACK_CLASSES", f"must name classes among {', '.join(VEHICLE_CLASSES)}, person; "
                                                f"got {', '.join(unknown) or 'none'}")
        if not self.evidence_bucket.replace("-", "").replace("_", "").isalnum():
            raise SettingError("EVIDENCE_BUCKET", f"{self.evidence_bucket!r} is not a bucket name (letters, digits, - and _)")
        if self.checkpoint_bucket and not self.checkpoint_bucket.replace("-", "").replace("_", "").isalnum():
            raise SettingError("CHECKPOINT_BUCKET", f"{self.checkpoint_bucket!r} is not a bucket name (letters, digits, - and _)")
