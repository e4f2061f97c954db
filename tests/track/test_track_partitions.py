"""Two replicas share cameras by rendezvous hashing, each camera judged by exactly one of them;
scaling down to one replica moves the camera with its durable consumer, without replaying what
the first owner already tracked."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import datetime, timedelta, timezone

from proto import codec, ids, subjects
from proto.v1.telemetry import SignalPhase
from proto.v1.violation import ViolationDetected
from services import localstack
from services.runtime import bus
from services.track import partition, scenes
from services.track.settings import Settings
from track_bus import Service, collect, controller_scene, detection, publish_frame, saigon_jpeg  # noqa: F401


def cameras_owned_by_each(unique: str) -> tuple[str, str]:
    names = [f"p{k}-{unique}" for k in range(50)]
    return (next(n for n in names if partition.owner(n, 2) == 0), next(n for n in names if partition.owner(n, 2) == 1))


def listed(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cameras", timeout=5) as response:
        return set(json.loads(response.read())["cameras"])


async def drive_through(js, camera: str, t0: datetime, jpeg: bytes, first_seq: int = 0) -> None:
    """A car up the middle lane across the stop line, 3 s at 10 frames/s, then 2 s parked beyond."""
    for i in range(50):
        t = t0 + timedelta(seconds=i / 10)
        stream_seq = await publish_frame(js, camera, first_seq + i, t, jpeg)
        bottom = 600 - 15 * i if i < 30 else 150
        await js.publish(subjects.detection_made(camera),
                         codec.encode(detection(camera, first_seq + i, stream_seq, t, [(480, bottom - 120, 600, bottom)])))


async def test_two_replicas_then_one(nc, js, nats_url, unique, tmp_path, repo_dir, saigon_jpeg, wait_for):
    await bus.ensure_streams(js)
    a, b = cameras_owned_by_each(unique)
    intersection = f"x-{unique}"
    for camera in (a, b):
        controller_scene(repo_dir, tmp_path, camera, intersection)
    t0 = datetime.now(timezone.utc) - timedelta(seconds=60)
    red = SignalPhase(id=ids.event_id("signal", intersection, t0.isoformat()), intersection_id=intersection,
                      occurred_at=t0 - timedelta(seconds=5), head="main", phase="red")
    await js.publish(subjects.signal_phase(intersection), codec.encode(red))
    violations, sub = await collect(nc, "traffic.violation.detected.v1.*.*", ViolationDetected)
    scene_map = scenes.load_dir(tmp_path)
    ports = [localstack.free_port(), localstack.free_port()]
    replicas = [Service(Settings(nats_url=nats_url, http_port=ports[i], scenes_dir=str(tmp_path), partition_index=i,
                                 partition_count=2, reorder_window_s=0.2), scene_map) for i in range(2)]
    try:
        async def consumers():
            names = {c.name async for c in _consumers(js)}
            return {f"track-{a}", f"track-{b}"} <= names

        await wait_for(consumers, timeout=20, what="both cameras' consumers")
        assert await asyncio.to_thread(listed, ports[0]) == {a}
        assert await asyncio.to_thread(listed, ports[1]) == {b}
        await drive_through(js, a, t0, saigon_jpeg)
        await drive_through(js, b, t0, saigon_jpeg)

        async def one_each():
            return sorted(v.camera_id for v in violations) == sorted([a, b])

        await wait_for(one_each, timeout=30, what="one violation per camera")
    finally:
        for replica in replicas:
            await replica.close()
    # Scale down (both stopped, one started with PARTITION_COUNT=1): it owns both cameras, and
    # camera b carries on from its consumer's position.
    single = Service(Settings(nats_url=nats_url, http_port=ports[1], scenes_dir=str(tmp_path), partition_index=0,
                              partition_count=1, reorder_window_s=0.2), scene_map)
    try:
        await wait_for(lambda: _listed_async(ports[1], {a, b}), timeout=20, what="the single replica's cameras")
        await drive_through(js, b, t0 + timedelta(seconds=20), saigon_jpeg, first_seq=1000)

        async def second_on_b():
            return [v for v in violations if v.camera_id == b] if len([v for v in violations if v.camera_id == b]) == 2 \
                else None

        on_b = await wait_for(second_on_b, timeout=30, what="the second car on camera b")
        await asyncio.sleep(1.0)  # anything replayed by mistake would show up now
    finally:
        await single.close()
        await sub.unsubscribe()
    assert len({v.id for v in on_b}) == 2 and len(violations) == 3
    assert sorted(v.occurred_at for v in on_b)[1] > t0 + timedelta(seconds=20)


async def _consumers(js):
    for info in await js.consumers_info("DETECTIONS"):
        yield info


async def _listed_async(port: int, wanted: set[str]) -> bool:
    try:
        return await asyncio.to_thread(listed, port) == wanted
    except OSError:
        return False
