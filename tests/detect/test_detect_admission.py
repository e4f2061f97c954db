"""Fair admission under overload (services/detect/admission.py) as plain functions: stale by
age, each camera's newest frames kept, the rest superseded; the once-per-interval drop report."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from proto.v1.frame import new_frame_meta
from services.detect.admission import DropLog, Waiting, admit

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)


def frame(camera: str, seq: int, age_s: float = 1.0) -> tuple[Waiting, str]:
    meta = new_frame_meta(camera_id=camera, frame_seq=seq, captured_at=T0 + timedelta(milliseconds=200 * seq),
                          width=1280, height=720)
    return Waiting(meta, seq, age_s), f"{camera}/{seq}"


def tags(items) -> list[str]:
    return [tag for _, tag in items]


def test_a_flooding_camera_does_not_crowd_out_one_that_arrives_last() -> None:
    backlog = [frame("cam-a", i) for i in range(30)] + [frame("cam-b", i) for i in range(4)]
    chosen = admit(backlog, per_camera=2, max_age_s=30, batch=4)
    assert tags(chosen.kept) == ["cam-a/28", "cam-b/2", "cam-a/29", "cam-b/3"]
    assert len(chosen.superseded) == 28 + 2 and not chosen.stale
    assert set(tags(chosen.superseded)) == {f"cam-a/{i}" for i in range(28)} | {"cam-b/0", "cam-b/1"}


def test_each_camera_in_capture_order_whatever_order_they_came_in() -> None:
    backlog = [frame("cam-a", 5), frame("cam-a", 3), frame("cam-a", 4)]
    assert tags(admit(backlog, per_camera=2, max_age_s=30, batch=2).kept) == ["cam-a/4", "cam-a/5"]
    assert tags(admit(backlog, per_camera=2, max_age_s=30, batch=4).kept) == ["cam-a/3", "cam-a/4", "cam-a/5"]


def test_old_frames_are_stale_before_anything_else() -> None:
    backlog = [frame("cam-a", 1, age_s=45.0), frame("cam-a", 2, age_s=31.0), frame("cam-a", 3, age_s=2.0),
               frame("cam-b", 1, age_s=40.0)]
    chosen = admit(backlog, per_camera=2, max_age_s=30, batch=4)
    assert tags(chosen.stale) == ["cam-a/1", "cam-a/2", "cam-b/1"]
    assert tags(chosen.kept) == ["cam-a/3"] and not chosen.superseded


def test_no_overload_keeps_everything() -> None:
    backlog = [frame("cam-a", 1), frame("cam-b", 1), frame("cam-c", 1)]
    chosen = admit(backlog, per_camera=1, max_age_s=30, batch=2)
    assert tags(chosen.kept) == ["cam-a/1", "cam-b/1", "cam-c/1"]
    assert not chosen.superseded and not chosen.stale


def test_a_burst_that_fits_one_batch_is_not_a_backlog() -> None:
    """Three frames of one camera at once (a reconnect, a test) with BATCH_SIZE 4: all detected."""
    backlog = [frame("cam-a", 1), frame("cam-a", 2), frame("cam-b", 1), frame("cam-a", 3)]
    chosen = admit(backlog, per_camera=1, max_age_s=30, batch=4)
    assert tags(chosen.kept) == ["cam-a/1", "cam-b/1", "cam-a/2", "cam-a/3"] and not chosen.superseded
    chosen = admit(backlog + [frame("cam-b", 2)], per_camera=1, max_age_s=30, batch=4)
    assert tags(chosen.kept) == ["cam-a/3", "cam-b/2"]


def test_drop_report_once_per_interval_with_counts_per_camera() -> None:
    log = DropLog(interval_s=60)
    log.count(0.0, "cam-a", "detected", 3)
    assert log.report(0.0) is None  # nothing dropped: nothing to warn about
    log.count(1.0, "cam-a", "superseded", 2)
    log.count(1.0, "cam-b", "stale", 1)
    first = log.report(1.0)  # the first drop is reported at once
    assert first == {"seconds": 1.0, "dropped": 3, "detected": 3,
                     "per_camera": {"cam-a": {"detected": 3, "superseded": 2}, "cam-b": {"detected": 0, "stale": 1}}}
    log.count(2.0, "cam-a", "superseded", 5)
    log.count(30.0, "cam-b", "detected", 4)
    assert log.report(30.0) is None  # within the interval: counted, not logged
    log.count(61.0, "cam-b", "superseded", 1)
    second = log.report(61.0)
    assert second == {"seconds": 59.0, "dropped": 6, "detected": 4,
                      "per_camera": {"cam-a": {"detected": 0, "superseded": 5},
                                     "cam-b": {"detected": 4, "superseded": 1}}}
    assert log.report(200.0) is None  # counts were reset with the report
