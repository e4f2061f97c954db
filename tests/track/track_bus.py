"""Helpers for the track tests that run the service on the nats-server (imported by name)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import cv2
import pytest

from proto import codec, ids, subjects
from proto.v1.common import Box
from proto.v1.detection import DetectedObject, DetectionMade, FrameRef
from proto.v1.frame import frame_headers, new_frame_meta
from services.track import main as track_main
from services.track.settings import Settings


CONTROLLER = """signal:
  source: controller
  intersection: {intersection}
  heads:
    - id: main
    - id: right-arrow
"""


def controller_scene(repo_dir, folder, camera: str, intersection: str, demo: str = "demo-saigon"):
    """A demo scene as `camera`, its heads fed by a controller (not read off the frames)."""
    text = (repo_dir / f"deploy/local/scenes/{demo}.yaml").read_text(encoding="utf-8")
    start, end = text.index("signal:\n"), text.index("movements:\n")
    text = text[:start] + CONTROLLER.format(intersection=intersection) + "\n" + text[end:]
    (folder / f"{camera}.yaml").write_text(text.replace(f"camera: {demo}", f"camera: {camera}"), encoding="utf-8")


@pytest.fixture(scope="module")
def saigon_jpeg(shared_dir) -> bytes:
    import av
    with av.open(str(shared_dir / "data/video/vn_saigon_intersection.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="bgr24")
    return cv2.imencode(".jpg", frame)[1].tobytes()


def detection(camera: str, seq: int, stream_seq: int, t: datetime, boxes: list[tuple]) -> DetectionMade:
    return DetectionMade(
        id=ids.event_id("detection", camera, seq, t.isoformat()), camera_id=camera, occurred_at=t,
        frame=FrameRef(stream_seq=stream_seq, frame_seq=seq, captured_at=t, width=1018, height=720),
        objects=tuple(DetectedObject(class_name="car", score=0.9, box=Box(x1=x1, y1=y1, x2=x2, y2=y2))
                      for x1, y1, x2, y2 in boxes))


async def publish_frame(js, camera: str, seq: int, t: datetime, jpeg: bytes) -> int:
    meta = new_frame_meta(camera_id=camera, frame_seq=seq, captured_at=t, width=1018, height=720)
    ack = await js.publish(subjects.frame_captured(camera), jpeg, headers=frame_headers(meta))
    return ack.seq


class Service:
    def __init__(self, settings: Settings, scene_map) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(track_main.run(settings, scene_map, stop=self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 20)


async def collect(nc, subject: str, type_):
    got: list = []

    async def on(msg):
        got.append(codec.decode(msg.data, type_))

    return got, await nc.subscribe(subject, cb=on)


