"""The first frame after a break in a camera's stream is marked (Discontinuity: start | reconnect |
loop), on a real looped clip, through the decode thread, the drop-oldest queue and the headers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from proto.v1.frame import HEADER_DISCONTINUITY, frame_meta_from_headers
from services.ingest.publisher import DropOldest, OutFrame, frame_message
from services.ingest.sources import Counters, ReaderOptions, open_reader
from services.ingest.worker import CameraWorker
from test_ingest_readers import camera

OPTIONS = ReaderOptions(open_timeout_s=3, read_timeout_s=2)
HAIPHONG_FRAMES = 142  # vn_haiphong_intersection.mp4


def test_a_looping_file_marks_the_first_frame_of_each_new_pass(clips: Path) -> None:
    cam = camera(str(clips / "vn_haiphong_intersection.mp4"), realtime="false")
    stop = threading.Event()
    marks = []
    for index, decoded in enumerate(open_reader(cam, OPTIONS, stop, Counters())):
        marks.append(decoded.discontinuity)
        if index + 1 >= 2 * HAIPHONG_FRAMES + 10:
            break
    stop.set()
    assert [i for i, mark in enumerate(marks) if mark] == [HAIPHONG_FRAMES, 2 * HAIPHONG_FRAMES]
    assert marks[HAIPHONG_FRAMES] == "loop"


def test_worker_marks_start_and_loop_even_when_the_sampler_skips_the_marked_frame(clips: Path) -> None:
    # 4 frames/s out of a 20 fps clip: most decoded frames are skipped, the loop's first one too,
    # so the mark must move on to the next frame handed over.
    cam = camera(str(clips / "vn_haiphong_intersection.mp4"), realtime="false", fps=4)
    queue: DropOldest[OutFrame] = DropOldest(1000)
    worker = CameraWorker(cam, queue, OPTIONS)
    worker.start()
    deadline = time.monotonic() + 60
    frames: list[OutFrame] = []
    while time.monotonic() < deadline and sum(1 for f in frames if f.discontinuity == "loop") < 2:
        item = queue.get()
        if item is None:
            time.sleep(0.01)
            continue
        frames.append(item)
    worker.stop()
    assert worker.join(10)
    marks = [(i, f.discontinuity) for i, f in enumerate(frames) if f.discontinuity]
    assert marks[0] == (0, "start")
    loops = [i for i, kind in marks if kind == "loop"]
    assert len(loops) == 2 and len(marks) == 3
    # One pass of 7.07 s at 4 frames/s is 28 or 29 frames handed over.
    assert 27 <= loops[1] - loops[0] <= 30
    # The captured times keep increasing over the loop (the clock does not jump back).
    times = [f.captured_at for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    # The mark travels in the headers and back into FrameMeta; unmarked frames have no header.
    headers = frame_message(frames[loops[0]])
    assert headers[HEADER_DISCONTINUITY] == "loop"
    assert frame_meta_from_headers(headers).discontinuity == "loop"
    assert HEADER_DISCONTINUITY not in frame_message(frames[1])
    assert frame_meta_from_headers(frame_message(frames[1])).discontinuity is None


def test_a_dropped_marked_frame_passes_its_mark_to_the_oldest_kept_one() -> None:
    queue: DropOldest[OutFrame] = DropOldest(2)
    frame = OutFrame(camera_id="cam", captured_at=1.0, width=4, height=4, jpeg=b"\xff\xd8")
    queue.put(frame.__class__(**{**_fields(frame), "captured_at": 1.0, "discontinuity": "reconnect"}))
    queue.put(frame.__class__(**{**_fields(frame), "captured_at": 2.0}))
    queue.put(frame.__class__(**{**_fields(frame), "captured_at": 3.0}))  # pushes the marked one out
    first, second = queue.get(), queue.get()
    assert (first.captured_at, first.discontinuity) == (2.0, "reconnect")
    assert (second.captured_at, second.discontinuity) == (3.0, None)


def _fields(frame: OutFrame) -> dict:
    return {name: getattr(frame, name) for name in frame.__dataclass_fields__}
