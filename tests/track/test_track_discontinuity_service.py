"""The track service on the real nats-server, a vision scene, real frames of the Sài Gòn clip
played twice: the frame that begins the second pass carries `Discontinuity: loop` in its
headers (as ingest publishes it) while the detections do not (the detect service copies no
such field yet), so the worker takes the mark from the frame it fetches to read the lamps."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import cv2
import pytest

from proto import codec, subjects
from proto.v1.frame import frame_headers, new_frame_meta
from proto.v1.telemetry import SignalPhase, VehiclesCounted
from proto.v1.violation import ViolationDetected
from services.track import scenes
from services.track.settings import Settings
from track_bus import Service, collect, detection
from track_clips import clip_frames

PASS = 30  # frames per pass, at 10 frames/s: 3 s
FPS = 10.0


async def consumer_ready(js, camera: str):
    try:
        return await js.consumer_info("DETECTIONS", f"track-{camera}")
    except Exception:
        return None


async def test_a_loop_in_the_frames_resets_phases_tracks_and_counts(nc, js, unique, nats_url, tmp_path, repo_dir,
                                                                     shared_dir, wait_for):
    camera, intersection = f"sgl-{unique}", f"xl-{unique}"
    text = (repo_dir / "deploy/local/scenes/demo-saigon.yaml").read_text(encoding="utf-8")
    text = text.replace("camera: demo-saigon", f"camera: {camera}")
    text = text.replace("signal:\n  source: vision\n", f"signal:\n  source: vision\n  intersection: {intersection}\n")
    (tmp_path / f"{camera}.yaml").write_text(text, encoding="utf-8")
    images = clip_frames(shared_dir, "vn_saigon_intersection.mp4", list(range(0, 2 * PASS, 2)))
    images.pop("fps")
    jpegs = [cv2.imencode(".jpg", images[2 * k], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for k in range(PASS)]

    phases, psub = await collect(nc, subjects.signal_phase(intersection), SignalPhase)
    violations, vsub = await collect(nc, f"traffic.violation.detected.v1.{camera}.*", ViolationDetected)
    counts, csub = await collect(nc, subjects.vehicles_counted(camera), VehiclesCounted)
    settings = Settings(nats_url=nats_url, http_port=0, scenes_dir=str(tmp_path), count_window_s=60.0,
                        reorder_window_s=0.3)
    service = Service(settings, scenes.load_dir(tmp_path))
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
    loop_t = t0 + timedelta(seconds=PASS / FPS)
    try:
        await wait_for(lambda: consumer_ready(js, camera), timeout=20, what="the camera's consumer")
        for n in range(2 * PASS):
            k = n % PASS
            t = t0 + timedelta(seconds=n / FPS)
            meta = new_frame_meta(camera_id=camera, frame_seq=int(t.timestamp() * 1000), captured_at=t,
                                  width=1018, height=720,
                                  discontinuity={0: "start", PASS: "loop"}.get(n))  # as ingest marks them
            seq = (await js.publish(subjects.frame_captured(camera), jpegs[k], headers=frame_headers(meta))).seq
            # In each pass a car drives up the middle lane over the stop line (y=388) at 150 px/s.
            bottom = 600 - 15 * k
            event = detection(camera, meta.frame_seq, seq, t, [(480, bottom - 120, 600, bottom)])
            assert event.frame.discontinuity is None  # as detect publishes it today
            await js.publish(subjects.detection_made(camera), codec.encode(event))
        await wait_for(lambda: asyncio.sleep(0, len(violations) >= 2 or None), timeout=30, what="two violations")
        await wait_for(lambda: asyncio.sleep(0, len(counts) >= 1 or None), timeout=30, what="the window closed at the loop")
    finally:
        await service.close()
        await asyncio.sleep(0.3)
        for sub in (psub, vsub, csub):
            await sub.unsubscribe()

    main = [(p.occurred_at, p.phase) for p in phases if p.head == "main"]  # in publishing order
    # Unknown at the start, red from the first frame; unknown from the loop; red again, dated from
    # the first frame after it (the same instant as the unknown: nothing is known of the time
    # between the passes).
    assert [phase for _, phase in main] == ["unknown", "red", "unknown", "red"], main
    assert main[0][0] == main[1][0] == t0 and main[2][0] == loop_t
    assert loop_t <= main[3][0] <= loop_t + timedelta(seconds=0.2)
    main = main[1:]
    # Both passes' cars ran the red; the second one's phase age counts from the loop, not from t0.
    violations.sort(key=lambda v: v.occurred_at)
    first, second = violations
    assert first.occurred_at < loop_t < second.occurred_at
    for v in (first, second):
        assert v.type == "red_light" and v.parameters["phase_age_is_lower_bound"] == "true"
    assert second.measurement.phase_age_s == pytest.approx((second.occurred_at - main[2][0]).total_seconds(), abs=0.05)
    assert second.measurement.phase_age_s < (second.occurred_at - loop_t).total_seconds() + 0.01
    # Counts: the first pass's window closed at the loop (3 s, one car), the second at shutdown.
    counts.sort(key=lambda c: c.window_start)
    assert [(c.window_start, round(c.window_s, 1)) for c in counts][:1] == [(t0, 2.9)]
    assert [(c.line, c.direction, c.vehicle_class, c.count) for c in counts[0].counts] == \
        [("approach-north", "forward", "car", 1)]
    # The second pass's windows (1 s long: the car may fall in the second or a later one, closed
    # on time or at shutdown, if the subscription is still there to see it) start at the loop
    # and never count its car twice.
    if len(counts) > 1:
        assert counts[1].window_start == loop_t
        assert sum(c.count for window in counts[1:] for c in window.counts) <= 1


async def test_a_clip_played_once_gets_its_count_window_published_without_a_shutdown(
        nc, js, unique, nats_url, tmp_path, wait_for):
    """A counting camera (a scene with only a count line) whose stream stops after 1.5 s: its
    window never ends by capture time, so it is published once the stream has been silent for a
    whole window, with the time it covered."""
    camera = f"cnt-{unique}"
    (tmp_path / f"{camera}.yaml").write_text(f"""camera: {camera}
frame_size: [1018, 720]
count_lines:
  - id: main
    line: [[0, 388], [1018, 388]]
""", encoding="utf-8")
    counts, csub = await collect(nc, subjects.vehicles_counted(camera), VehiclesCounted)
    settings = Settings(nats_url=nats_url, http_port=0, scenes_dir=str(tmp_path), count_window_s=4.0,
                        reorder_window_s=0.3)
    service = Service(settings, scenes.load_dir(tmp_path))
    t0 = datetime(2026, 11, 1, 8, 0, 1, tzinfo=timezone.utc)
    try:
        await wait_for(lambda: consumer_ready(js, camera), timeout=20, what="the camera's consumer")
        for k in range(16):  # a car up over the line, then a car down over it
            t = t0 + timedelta(seconds=k / FPS)
            up, down = 600 - 25 * k, 200 + 25 * k
            event = detection(camera, k, 1 + k, t, [(100, up - 120, 220, up), (600, down - 120, 720, down)])
            await js.publish(subjects.detection_made(camera), codec.encode(event))
        sent = asyncio.get_running_loop().time()
        await wait_for(lambda: asyncio.sleep(0, len(counts) >= 1 or None), timeout=20, what="the idle window")
        waited = asyncio.get_running_loop().time() - sent
    finally:
        await service.close()
        await csub.unsubscribe()
    [window] = counts[:1]
    assert waited >= 3.0  # not before the stream was silent for about a window
    assert window.window_start == t0 - timedelta(seconds=1) and window.window_s == pytest.approx(2.5, abs=0.01)
    assert sorted((c.line, c.direction, c.vehicle_class, c.count) for c in window.counts) == [
        ("main", "backward", "car", 1), ("main", "forward", "car", 1)]
    assert len(counts) == 1  # nothing left to publish at shutdown
