"""The ingest service end to end: a real process, nats-server, GStreamer RTSP server, MJPEG feed."""

from __future__ import annotations

import asyncio
import signal
import time

import cv2
import numpy as np
import pytest

from ingest_helpers import Collector, camera_yaml, cameras_file
from proto import codec, subjects
from proto.v1 import CameraStatus
from proto.v1.frame import frame_meta_from_headers

TARGET_FPS = 4


def statuses(collector) -> list[CameraStatus]:
    return [codec.decode(msg.data, CameraStatus) for _, msg in collector.messages]


async def wait_for_frames(collector, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(collector.messages) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(collector.messages)} of {count} frames within {timeout} s")
        await asyncio.sleep(0.1)


async def wait_for_state(collector, state: str, timeout: float, after: int = 0) -> CameraStatus:
    deadline = time.monotonic() + timeout
    while True:
        for status in statuses(collector)[after:]:
            if status.state == state and not status.heartbeat:
                return status
        if time.monotonic() > deadline:
            seen = [(s.state, s.reason, s.heartbeat) for s in statuses(collector)]
            raise AssertionError(f"no {state!r} status within {timeout} s; seen {seen[-6:]}")
        await asyncio.sleep(0.1)


def check_frames(messages, camera_id: str, size: tuple[int, int]) -> None:
    """Headers follow the contract and describe the JPEG they come with."""
    seqs = []
    for received, msg in messages:
        meta = frame_meta_from_headers(msg.headers)
        assert meta.camera_id == camera_id and msg.subject == subjects.frame_captured(camera_id)
        assert (meta.width, meta.height) == size
        # Captured-At is wall-clock time, a moment before the frame reached us.
        lag = received - meta.captured_at.timestamp()
        assert -0.3 < lag < 1.5, f"Captured-At {meta.captured_at} is {lag:.2f} s from arrival"
        assert msg.headers["Nats-Msg-Id"] == meta.id
        seqs.append(meta.frame_seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    image = cv2.imdecode(np.frombuffer(messages[-1][1].data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1::-1] == size


async def test_every_kind_of_source_delivers_frames_at_the_target_rate(
        start_ingest, collect, js, rtsp_server, mjpeg_server, jpeg_folder, clips, unique, tmp_path) -> None:
    ids = {kind: f"{kind}-{unique}" for kind in ("rtsp", "mjpeg", "file", "folder")}
    sizes = {"rtsp": (1018, 720), "mjpeg": (320, 180), "file": (768, 432), "folder": (320, 180)}
    config = cameras_file(
        tmp_path / "cameras.yaml",
        camera_yaml(ids["rtsp"], rtsp_server.url("saigon"), fps=TARGET_FPS),
        camera_yaml(ids["mjpeg"], mjpeg_server.url(fps=10), fps=TARGET_FPS),
        camera_yaml(ids["file"], clips / "intel_car-detection.mp4", fps=TARGET_FPS),
        camera_yaml(ids["folder"], f"{jpeg_folder}/", fps=TARGET_FPS, image_fps=8),
    )
    frames = {kind: await collect(subjects.frame_captured(cid)) for kind, cid in ids.items()}
    status = {kind: await collect(subjects.camera_status(cid)) for kind, cid in ids.items()}
    service = start_ingest(config)

    for kind in ids:
        await wait_for_frames(frames[kind], 1, timeout=20)
    window = 5.0
    start = time.time()
    await asyncio.sleep(window)
    for kind, camera_id in ids.items():
        got = [(at, msg) for at, msg in frames[kind].messages if at >= start]
        rate = len(got) / window
        assert TARGET_FPS * 0.75 <= rate <= TARGET_FPS * 1.25, f"{kind}: {rate:.2f} fps"
        check_frames(got, camera_id, sizes[kind])
        first = statuses(status[kind])[0]
        assert (first.state, first.reason, first.replica) == ("online", "receiving frames", "r1")
        beats = [s for s in statuses(status[kind]) if s.heartbeat]
        assert beats, f"{kind}: no heartbeat"
        assert beats[-1].fps_out == pytest.approx(TARGET_FPS, abs=1.5)
        assert beats[-1].fps_in >= beats[-1].fps_out and beats[-1].last_frame_age_s < 1.0

    # Frames are kept in the FRAMES stream (the evidence window), not only sent to subscribers.
    stored = await js.get_last_msg("FRAMES", subjects.frame_captured(ids["file"]))
    assert stored.headers["Camera-Id"] == ids["file"] and stored.data[:2] == b"\xff\xd8"

    metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{service.http_port}/metrics")
    for kind, camera_id in ids.items():
        assert f'roadwatch_ingest_frames_published_total{{camera="{camera_id}"}}' in metrics
        assert f'roadwatch_ingest_camera_state{{camera="{camera_id}",state="online"}} 1.0' in metrics
    assert service.stop() == 0


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


async def test_rtsp_server_lost_goes_offline_with_reason_and_comes_back(
        start_ingest, collect, rtsp_server, unique, tmp_path) -> None:
    camera_id = f"rtsp-{unique}"
    config = cameras_file(tmp_path / "cameras.yaml", camera_yaml(camera_id, rtsp_server.url("saigon"), fps=2))
    frames = await collect(subjects.frame_captured(camera_id))
    status = await collect(subjects.camera_status(camera_id))
    start_ingest(config, read_timeout_s=2)

    await wait_for_state(status, "online", timeout=20)
    await wait_for_frames(frames, 2, timeout=10)
    rtsp_server.kill()
    killed_at = time.time()
    offline = await wait_for_state(status, "offline", timeout=10)
    assert offline.reason  # says why: connection lost, stream ended or timeout
    assert offline.occurred_at.timestamp() - killed_at < 4.0
    # While the server is away, the heartbeat says why the camera is still offline.
    await asyncio.sleep(2.5)
    beats = [s for s in statuses(status) if s.heartbeat and s.occurred_at.timestamp() > killed_at + 1.5]
    assert beats and beats[-1].state == "offline" and beats[-1].reason == "cannot open: connection refused"
    assert beats[-1].reconnects >= 1
    frames_before = len(frames.messages)

    rtsp_server.start()
    back = await wait_for_state(status, "online", timeout=15, after=statuses(status).index(offline) + 1)
    assert back.reason == "receiving frames"
    await wait_for_frames(frames, frames_before + 2, timeout=10)
    # The first frame of each connection says so (track closes its tracks there); no other does.
    marks = [(i, (msg.headers or {}).get("Discontinuity")) for i, (_, msg) in enumerate(frames.messages)]
    assert [m for m in marks if m[1]] == [(0, "start"), (frames_before, "reconnect")]


async def test_a_silently_stuck_rtsp_server_is_noticed_degraded_then_offline(
        start_ingest, collect, rtsp_server, unique, tmp_path) -> None:
    """The top complaint: a stream that stops without closing. The connection stays open and
    no data flows; the camera must not look online."""
    camera_id = f"stuck-{unique}"
    config = cameras_file(tmp_path / "cameras.yaml", camera_yaml(camera_id, rtsp_server.url("saigon"), fps=2))
    status = await collect(subjects.camera_status(camera_id))
    start_ingest(config, read_timeout_s=3, stall_s=1)
    online = await wait_for_state(status, "online", timeout=20)
    rtsp_server.pause()
    try:
        after = statuses(status).index(online) + 1
        degraded = await wait_for_state(status, "degraded", timeout=6, after=after)
        assert degraded.reason == "connected but no frame for more than 1 s"
        offline = await wait_for_state(status, "offline", timeout=6, after=after)
        assert offline.reason == "no data for 3 s (timeout)"
        assert offline.occurred_at > degraded.occurred_at
    finally:
        rtsp_server.resume()
    await wait_for_state(status, "online", timeout=15, after=statuses(status).index(offline) + 1)


async def test_two_replicas_share_six_cameras_and_take_over_when_one_dies(
        start_ingest, collect, js, jpeg_folder, unique, tmp_path) -> None:
    ids = [f"share-{unique}-{i}" for i in range(6)]
    config = cameras_file(tmp_path / "cameras.yaml",
                          *(camera_yaml(cid, f"{jpeg_folder}/", fps=2, image_fps=4) for cid in ids))
    frames = {cid: await collect(subjects.frame_captured(cid)) for cid in ids}
    status = {cid: await collect(subjects.camera_status(cid)) for cid in ids}
    ttl = 3.0
    lease = {"lease_ttl_s": ttl, "lease_scan_s": 0.5}
    a = start_ingest(config, replica="a", **lease)
    b = start_ingest(config, replica="b", **lease)

    # Both replicas read, and every camera is read by exactly one of them.
    deadline = time.monotonic() + 30
    while True:
        on_a, on_b = await a.reading(), await b.reading()
        if on_a and on_b and on_a | on_b == set(ids) and not on_a & on_b:
            await asyncio.sleep(2 * ttl)  # stays so: no flapping hand-overs
            if (await a.reading(), await b.reading()) == (on_a, on_b):
                break
        assert time.monotonic() < deadline, f"no stable split: a={sorted(on_a)} b={sorted(on_b)}"
        await asyncio.sleep(0.5)

    # No camera is read twice: frames come at the target rate, never doubled, from one replica.
    start = time.time()
    await asyncio.sleep(4.0)
    for cid in ids:
        got = frames[cid].since(start)
        assert 6 <= len(got) <= 10, f"{cid}: {len(got)} frames in 4 s at 2 fps"
        replicas = {s.replica for s in statuses(status[cid]) if s.occurred_at.timestamp() >= start}
        assert replicas == {"a" if cid in on_a else "b"}

    a.signal(signal.SIGKILL)
    killed = time.time()
    a.process.wait(5)
    moved = sorted(on_a)
    deadline = time.monotonic() + 3 * ttl + 5
    while await b.reading() != set(ids):
        assert time.monotonic() < deadline, f"b reads {sorted(await b.reading())} after a died"
        await asyncio.sleep(0.2)
    took = time.time() - killed
    assert took < ttl + 3.0, f"take-over took {took:.1f} s with a {ttl:g} s lease"
    await asyncio.sleep(1.5)
    for cid in moved:
        after = frames[cid].since(killed)
        assert after, f"{cid} publishes nothing after the hand-over"
        assert all(s.replica == "b" for s in statuses(status[cid]) if s.occurred_at.timestamp() > killed + 0.5)
    assert "lease acquired" in b.log()
    # Scans list the bucket twice a second; their consumers must not pile up on the server.
    info = await js.stream_info(f"KV_ingest_leases_{unique}")
    assert info.state.consumer_count <= 4


async def test_bad_sources_get_a_clear_status_and_the_good_camera_keeps_going(
        start_ingest, collect, jpeg_folder, unique, tmp_path) -> None:
    from services import localstack

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(11).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    closed = localstack.free_port()
    bad = {
        f"unreachable-rtsp-{unique}": (f"rtsp://user:secret@127.0.0.1:{closed}/live", "cannot open: connection refused"),
        f"unreachable-http-{unique}": (f"http://127.0.0.1:{closed}/video.mjpg", "cannot open: connection refused"),
        f"corrupt-{unique}": (str(corrupt), "cannot open: Invalid data found when processing input"),
        f"missing-{unique}": (str(tmp_path / "missing.mp4"), "file not found"),
    }
    good = f"good-{unique}"
    config = cameras_file(tmp_path / "cameras.yaml", camera_yaml(good, f"{jpeg_folder}/", fps=2, image_fps=4),
                          *(camera_yaml(cid, url, fps=2) for cid, (url, _) in bad.items()))
    status = {cid: await collect(subjects.camera_status(cid)) for cid in [*bad, good]}
    frames = await collect(subjects.frame_captured(good))
    service = start_ingest(config)

    for cid, (_, reason) in bad.items():
        offline = await wait_for_state(status[cid], "offline", timeout=15)
        assert offline.reason == reason, cid
    await wait_for_state(status[good], "online", timeout=10)
    start = time.time()
    await asyncio.sleep(3.0)
    assert len(frames.since(start)) >= 4
    assert "secret" not in service.log()  # credentials never reach the logs


async def test_bad_cameras_file_stops_the_service_naming_file_line_and_field(
        start_ingest, unique, tmp_path) -> None:
    config = cameras_file(tmp_path / "cameras.yaml", camera_yaml(f"ok-{unique}", "/tmp/x.mp4"),
                          camera_yaml(f"bad-{unique}", "/tmp/y.mp4", jpeg_quality=0))
    service = start_ingest(config)
    assert await asyncio.to_thread(service.process.wait, 20) == 2
    assert (f"invalid cameras file: {config}:14: cameras[1].jpeg_quality: "
            "expected int >= 1, got 0") in service.log()


async def test_sighup_adds_and_removes_cameras_and_refuses_a_bad_file(
        start_ingest, collect, jpeg_folder, unique, tmp_path) -> None:
    first, second = f"first-{unique}", f"second-{unique}"
    path = cameras_file(tmp_path / "cameras.yaml", camera_yaml(first, f"{jpeg_folder}/", fps=2, image_fps=4))
    frames = {cid: await collect(subjects.frame_captured(cid)) for cid in (first, second)}
    status = await collect(subjects.camera_status(first))
    service = start_ingest(path)
    await wait_for_frames(frames[first], 2, timeout=15)

    path.write_text("cameras:\n  - id: [broken\n", encoding="utf-8")
    service.signal(signal.SIGHUP)
    await asyncio.sleep(1.5)
    assert await service.reading() == {first}
    assert "cameras file refused" in service.log()

    cameras_file(path, camera_yaml(second, f"{jpeg_folder}/", fps=2, image_fps=4))
    service.signal(signal.SIGHUP)
    await wait_for_frames(frames[second], 2, timeout=10)
    assert await service.reading() == {second}
    gone = await wait_for_state(status, "offline", timeout=5)
    assert gone.reason == "removed from the cameras file"
    stopped_at = time.time()
    await asyncio.sleep(1.0)
    assert not frames[first].since(stopped_at + 0.2)


async def test_publishing_lag_drops_the_oldest_frames_counts_them_and_reports_it(
        start_ingest, jpeg_folder, unique, tmp_path) -> None:
    """A NATS server frozen for 3 s: the camera keeps reading, the queue stays bounded, the
    dropped frames are counted, and the degraded state reaches the bus once NATS is back."""
    import nats

    from services import localstack

    port = localstack.free_port()
    server = localstack.start_nats(tmp_path / "js", port, log_file=tmp_path / "nats.log")
    url = f"nats://127.0.0.1:{port}"
    client = await nats.connect(url)
    try:
        camera_id = f"lag-{unique}"
        config = cameras_file(tmp_path / "cameras.yaml", camera_yaml(camera_id, f"{jpeg_folder}/", fps=8, image_fps=8))
        frames, status = Collector(), Collector()
        await client.subscribe(subjects.frame_captured(camera_id), cb=frames.receive)
        await client.subscribe(subjects.camera_status(camera_id), cb=status.receive)
        # A long lease: this is about publishing lag; a lease lost while NATS is frozen (a slow
        # renewal on a loaded machine) would hand the camera over and reset its counters.
        service = start_ingest(config, nats_url=url, publish_timeout_s=0.5, queue_size=2, lease_ttl_s=30.0)
        await wait_for_state(status, "online", timeout=20)

        server.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(3.0)
            report = await service.cameras()
        finally:
            server.send_signal(signal.SIGCONT)
        reading = report["cameras"][0]
        assert reading["dropped"] > 0 and reading["frames_in"] > 0
        degraded = await wait_for_state(status, "degraded", timeout=15)
        assert degraded.reason.startswith("publishing lags: ") and "frames dropped" in degraded.reason
        assert await wait_for_state(status, "online", timeout=15, after=statuses(status).index(degraded) + 1)
        beats = [s for s in statuses(status) if s.heartbeat]
        assert beats[-1].frames_dropped >= reading["dropped"]
        metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{service.http_port}/metrics")
        dropped = [line for line in metrics.splitlines()
                   if line.startswith("roadwatch_ingest_frames_dropped_total") and camera_id in line]
        assert dropped and sum(float(line.rsplit(" ", 1)[1]) for line in dropped) > 0
        queued = [line for line in metrics.splitlines()
                  if line.startswith(f'roadwatch_ingest_queue_frames{{camera="{camera_id}"}}')]
        assert queued and float(queued[0].rsplit(" ", 1)[1]) <= 2  # bounded by QUEUE_SIZE
    finally:
        await client.close()
        localstack.stop_process(server)


async def test_motion_gate_skips_a_still_scene_but_keeps_it_alive(
        start_ingest, collect, small_jpegs, unique, tmp_path) -> None:
    still, moving = tmp_path / "still", tmp_path / "moving"
    still.mkdir()
    moving.mkdir()
    background = cv2.imdecode(np.frombuffer(small_jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    for index in range(8):
        (still / f"{index:02d}.jpg").write_bytes(small_jpegs[0])
        image = background.copy()
        cv2.rectangle(image, (20 + 30 * index, 60), (60 + 30 * index, 100), (255, 255, 255), -1)  # a vehicle
        (moving / f"{index:02d}.jpg").write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    gate = "{enabled: true, keepalive_s: 1}"
    ids = {"still": f"still-{unique}", "moving": f"moving-{unique}"}
    config = cameras_file(tmp_path / "cameras.yaml",
                          camera_yaml(ids["still"], f"{still}/", fps=4, image_fps=4, motion=gate),
                          camera_yaml(ids["moving"], f"{moving}/", fps=4, image_fps=4, motion=gate))
    frames = {kind: await collect(subjects.frame_captured(cid)) for kind, cid in ids.items()}
    service = start_ingest(config)
    for kind in ids:
        await wait_for_frames(frames[kind], 1, timeout=15)
    start = time.time()
    await asyncio.sleep(4.0)
    assert 3 <= len(frames["still"].since(start)) <= 5  # one keepalive a second, not 4 fps
    assert len(frames["moving"].since(start)) >= 13  # every frame moves
    report = {c["camera"]: c for c in (await service.cameras())["cameras"]}
    assert report[ids["still"]]["still_skipped"] >= 10 and report[ids["moving"]]["still_skipped"] <= 2


async def test_a_replica_cut_off_from_nats_stops_reading_before_its_leases_expire(
        start_ingest, jpeg_folder, unique, tmp_path) -> None:
    """Frozen NATS: renewals fail, so the replica must give its cameras up after 2/3 of the TTL
    (before any other replica could take them), then take them back when NATS returns."""
    import nats

    from services import localstack

    port = localstack.free_port()
    server = localstack.start_nats(tmp_path / "js", port, log_file=tmp_path / "nats.log")
    url = f"nats://127.0.0.1:{port}"
    client = await nats.connect(url)
    try:
        ids = {f"cut-{unique}-{i}" for i in range(2)}
        config = cameras_file(tmp_path / "cameras.yaml",
                              *(camera_yaml(cid, f"{jpeg_folder}/", fps=2, image_fps=4) for cid in sorted(ids)))
        ttl = 3.0
        service = start_ingest(config, nats_url=url, lease_ttl_s=ttl, lease_scan_s=0.5)
        deadline = time.monotonic() + 20
        while await service.reading() != ids:
            assert time.monotonic() < deadline, "cameras never leased"
            await asyncio.sleep(0.2)

        server.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            while await service.reading():
                # Last renewal at most TTL/3 before the freeze; give-up at 2/3 TTL after it.
                assert time.monotonic() - frozen < ttl, "still reading when the leases may expire"
                await asyncio.sleep(0.1)
            gave_up = time.monotonic() - frozen
            await asyncio.sleep(max(0.0, ttl + 0.5 - gave_up))
        finally:
            server.send_signal(signal.SIGCONT)
        assert "lease not renewed in time" in service.log()

        deadline = time.monotonic() + 15
        while await service.reading() != ids:
            assert time.monotonic() < deadline, "cameras not taken back after NATS returned"
            await asyncio.sleep(0.2)
    finally:
        await client.close()
        localstack.stop_process(server)
