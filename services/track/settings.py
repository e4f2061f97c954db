"""Settings of the track service, from environment variables (see the README's configuration table)."""

from __future__ import annotations

import msgspec

from services.runtime.settings import DEFAULT_HTTP_HOST, HttpHost, SettingError, check_common
from services.track.scenes import VEHICLE_CLASSES

# `person` is tracked too: a rider whose bike the detector missed is boxed as a person only
# (riders.py tells such a two-wheeler from a pedestrian; pedestrians are never judged).
DEFAULT_CLASSES = ["car", "motorcycle", "bus", "truck", "bicycle", "person"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    http_port: int = 8083
    http_host: HttpHost = DEFAULT_HTTP_HOST  # address the HTTP port binds (the container images set 0.0.0.0)
    log_level: str = "INFO"

    # One `<camera_id>.yaml` per camera; the file names the camera, its place and its geometry.
    scenes_dir: str = "deploy/local/scenes"
    # This replica's index and the number of replicas: cameras are shared by rendezvous hashing.
    partition_index: int = 0
    partition_count: int = 1
    # Detector classes to track: vehicles, and `person` (a lone rider, or a pedestrian never judged).
    track_classes: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CLASSES))
    reorder_window_s: float = 1.0
    max_lost_s: float = 1.5
    evidence_bucket: str = "evidence"
    evidence_before_s: float = 0.6
    evidence_after_s: float = 0.6
    count_window_s: float = 60.0
    # A track boxed only as `person` is a two-wheeler after this many steps in a row in a lane,
    # along its direction, at least this many of its box heights per second (walking is < 1).
    lone_rider_frames: int = 3
    lone_rider_speed: float = 0.5
    # Each camera's tracking state is saved to this key-value bucket (key: the camera) every
    # CHECKPOINT_EVERY detections, so that a restarted track carries on with the same tracks; empty: off.
    checkpoint_bucket: str = "track_checkpoints"
    checkpoint_every: int = 5  # one second at 5 frames/s: ~170 KiB/s per camera instead of ~860
    # At SIGTERM: finish every track and publish what is pending (true), or save a checkpoint and
    # leave the tracks to the next start (false; always finished when checkpoints are off).
    finish_on_stop: bool = False

    def __post_init__(self) -> None:
        check_common(nats_url=self.nats_url, http_port=self.http_port, log_level=self.log_level)
        if not self.scenes_dir:
            raise SettingError("SCENES_DIR", "is required")
        if self.partition_count < 1:
            raise SettingError("PARTITION_COUNT", f"must be at least 1, got {self.partition_count}")
        if not 0 <= self.partition_index < self.partition_count:
            raise SettingError("PARTITION_INDEX", f"must be within 0..{self.partition_count - 1}, got {self.partition_index}")
        unknown = sorted(set(self.track_classes) - set(VEHICLE_CLASSES) - {"person"})
        if unknown or not self.track_classes:
            raise SettingError("TRACK_CLASSES", f"must name classes among {', '.join(VEHICLE_CLASSES)}, person; "
                                                f"got {', '.join(unknown) or 'none'}")
        for name in ("reorder_window_s", "max_lost_s", "evidence_before_s", "evidence_after_s"):
            if getattr(self, name) < 0:
                raise SettingError(name.upper(), f"must not be negative, got {getattr(self, name)}")
        if self.lone_rider_frames < 1:
            raise SettingError("LONE_RIDER_FRAMES", f"must be at least 1, got {self.lone_rider_frames}")
        if self.lone_rider_speed <= 0:
            raise SettingError("LONE_RIDER_SPEED", f"must be positive (box heights per second), got {self.lone_rider_speed}")
        if self.count_window_s <= 0:
            raise SettingError("COUNT_WINDOW_S", f"must be positive, got {self.count_window_s}")
        if not self.evidence_bucket.replace("-", "").replace("_", "").isalnum():
            raise SettingError("EVIDENCE_BUCKET", f"{self.evidence_bucket!r} is not a bucket name (letters, digits, - and _)")
        if self.checkpoint_bucket and not self.checkpoint_bucket.replace("-", "").replace("_", "").isalnum():
            raise SettingError("CHECKPOINT_BUCKET", f"{self.checkpoint_bucket!r} is not a bucket name (letters, digits, - and _)")
        if self.checkpoint_every < 1:
            raise SettingError("CHECKPOINT_EVERY", f"must be at least 1, got {self.checkpoint_every}")
