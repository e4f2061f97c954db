"""The gauge behind CameraDownTooLong: when the camera's current outage began."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.ingest.metrics import CameraMetrics


def down_since(camera: str) -> float | None:
    return REGISTRY.get_sample_value("roadwatch_ingest_camera_down_since_timestamp_seconds", {"camera": camera})


def test_down_since_starts_when_the_camera_leaves_online_and_clears_when_back() -> None:
    camera = CameraMetrics("cam-down-since")
    camera.state("online", at=10.0)
    assert down_since("cam-down-since") == 0
    camera.state("degraded", at=100.0)
    camera.state("offline", at=200.0)  # worse, same outage: it still began at 100
    assert down_since("cam-down-since") == 100.0
    camera.state("online", at=300.0)
    assert down_since("cam-down-since") == 0
    camera.state("offline", at=400.0)
    assert down_since("cam-down-since") == 400.0
    camera.remove()
    assert down_since("cam-down-since") is None
