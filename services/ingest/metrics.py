"""Prometheus metrics of the ingest service, labelled by camera: the same figures as the
heartbeat on `traffic.camera.status.v1.<camera>`, for dashboards and alerts."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge

STATES = ("online", "degraded", "offline")

FRAMES_IN = Counter("roadwatch_ingest_frames_in_total", "Frames decoded from the camera.", ["camera"])
FRAMES_OUT = Counter("roadwatch_ingest_frames_published_total", "Frames published on JetStream.", ["camera"])
FRAMES_STILL = Counter("roadwatch_ingest_frames_still_total", "Sampled frames skipped by the motion gate.",
                       ["camera"])
FRAMES_DROPPED = Counter("roadwatch_ingest_frames_dropped_total",
                         "Frames dropped because publishing lagged (oldest first) or failed.", ["camera", "why"])
DECODE_ERRORS = Counter("roadwatch_ingest_decode_errors_total", "Packets or images that could not be decoded.",
                        ["camera"])
RECONNECTS = Counter("roadwatch_ingest_reconnects_total", "Reconnections to the camera.", ["camera"])
FPS_IN = Gauge("roadwatch_ingest_fps_in", "Decoded frames per second over the last heartbeat.", ["camera"])
FPS_OUT = Gauge("roadwatch_ingest_fps_out", "Published frames per second over the last heartbeat.", ["camera"])
LAST_FRAME_AGE = Gauge("roadwatch_ingest_last_frame_age_seconds", "Seconds since the last decoded frame.",
                       ["camera"])
STATE = Gauge("roadwatch_ingest_camera_state", "1 for the camera's current state, 0 for the others.",
              ["camera", "state"])
DOWN_SINCE = Gauge("roadwatch_ingest_camera_down_since_timestamp_seconds",
                   "Unix time the camera left the online state (degraded or offline); 0 while online.", ["camera"])
QUEUE = Gauge("roadwatch_ingest_queue_frames", "Frames waiting to be published.", ["camera"])
LEASED = Gauge("roadwatch_ingest_cameras_leased", "Cameras this replica holds a lease for and reads.")
CONFIGURED = Gauge("roadwatch_ingest_cameras_configured", "Cameras in the cameras file.")
PUBLISH_ERRORS = Counter("roadwatch_ingest_publish_errors_total", "Frame or status publishes that failed.",
                         ["kind"])


class CameraMetrics:
    """Turns the worker's running totals into counter increments (counters only go up)."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self._down_since: float | None = None
        self._seen = {"in": 0, "still": 0, "decode": 0, "reconnects": 0, "dropped": 0}

    def update(self, *, frames_in: int, still: int, decode_errors: int, reconnects: int, dropped: int,
               queue: int, age: float | None) -> None:
        for key, total, counter in (("in", frames_in, FRAMES_IN), ("still", still, FRAMES_STILL),
                                    ("decode", decode_errors, DECODE_ERRORS), ("reconnects", reconnects, RECONNECTS)):
            if total > self._seen[key]:
                counter.labels(self.camera).inc(total - self._seen[key])
                self._seen[key] = total
        if dropped > self._seen["dropped"]:
            FRAMES_DROPPED.labels(self.camera, "lagging").inc(dropped - self._seen["dropped"])
            self._seen["dropped"] = dropped
        QUEUE.labels(self.camera).set(queue)
        if age is not None:
            LAST_FRAME_AGE.labels(self.camera).set(age)

    def state(self, state: str, at: float | None = None) -> None:
        """The camera's new state; `at` (Unix time, default now) starts an outage when it leaves
        online, so that the alert on a long outage measures from there (degraded to offline
        keeps the start)."""
        for name in STATES:
            STATE.labels(self.camera, name).set(1.0 if name == state else 0.0)
        if state == "online":
            self._down_since = None
        elif self._down_since is None:
            self._down_since = time.time() if at is None else at
        DOWN_SINCE.labels(self.camera).set(self._down_since or 0)

    def remove(self) -> None:
        """Forget a camera that this replica no longer reads, so that dashboards do not show it twice."""
        for metric in (FRAMES_IN, FRAMES_OUT, FRAMES_STILL, DECODE_ERRORS, RECONNECTS, FPS_IN, FPS_OUT,
                       LAST_FRAME_AGE, QUEUE, DOWN_SINCE):
            try:
                metric.remove(self.camera)
            except KeyError:
                pass
        for state in STATES:
            try:
                STATE.remove(self.camera, state)
            except KeyError:
                pass
        for why in ("lagging", "failed"):
            try:
                FRAMES_DROPPED.remove(self.camera, why)
            except KeyError:
                pass
