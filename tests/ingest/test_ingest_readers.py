"""Each reader against a real source (clip, folder, aiohttp MJPEG feed), without NATS."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.ingest.cameras import parse
from services.ingest.sources import Counters, ReaderOptions, SourceError, _parts, jpeg_size, open_reader
from ingest_helpers import camera_yaml

OPTIONS = ReaderOptions(open_timeout_s=3, read_timeout_s=2)


def camera(url: str, **extra):
    return parse("cameras:\n" + camera_yaml("cam", url, **extra))[0]


def read(cam, limit: int, seconds: float = 10.0):
    """Up to `limit` frames within `seconds`; returns (frames, counters, error reason or None)."""
    stop = threading.Event()
    counters = Counters()
    frames = []
    error = None
    deadline = time.monotonic() + seconds
    try:
        for decoded in open_reader(cam, OPTIONS, stop, counters):
            frames.append(decoded)
            if len(frames) >= limit or time.monotonic() > deadline:
                break
    except SourceError as exc:
        error = exc.reason
    finally:
        stop.set()
    return frames, counters, error


def test_file_plays_at_its_own_speed_and_loops_with_continuous_time(clips: Path) -> None:
    # bgslibrary_highway.avi: msmpeg4v2 640x360 at 30 fps, 374 frames: loop it quickly (not realtime).
    frames, counters, error = read(camera(str(clips / "bgslibrary_highway.avi"), realtime="false"), 400)
    assert error is None and counters.decode_errors == 0
    pts = [frame.pts for frame in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))  # continuous across the loop at frame 374
    assert np.diff(pts) == pytest.approx(1 / 30, abs=0.002)
    # Realtime: 15 frames of a 20 fps clip take about 0.7 s of wall time, spaced like the stream.
    started = time.time()
    frames, _, error = read(camera(str(clips / "vn_haiphong_intersection.mp4")), 15)
    elapsed = time.time() - started
    assert error is None and 0.6 <= elapsed <= 2.0
    arrivals = [frame.arrival for frame in frames]
    assert arrivals[-1] - arrivals[0] == pytest.approx(14 / 20.09, abs=0.15)
    jpeg, width, height = frames[0].jpeg(80, None)
    assert (width, height) == (1006, 720)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (720, 1006, 3)
    jpeg, width, height = frames[0].jpeg(80, 640)
    assert (width, height) == (640, 458) and jpeg_size(jpeg) == (640, 458)


def test_corrupt_and_missing_files_fail_with_a_clear_reason(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(3).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    _, _, error = read(camera(str(corrupt)), 5)
    assert error is not None and error.startswith("cannot open: ") and "nvalid data" in error
    _, _, error = read(camera(str(tmp_path / "missing.mp4")), 5)
    assert error == "file not found"


def test_folder_skips_unreadable_images_and_counts_them(jpeg_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    folder.mkdir()
    for name in sorted(p.name for p in jpeg_folder.iterdir())[:4]:
        (folder / name).write_bytes((jpeg_folder / name).read_bytes())
    (folder / "frame_001b.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored")
    frames, counters, error = read(camera(str(folder) + "/", fps=30, realtime="false"), 8)
    assert error is None and len(frames) == 8  # looped: 4 good images, twice
    assert counters.decode_errors == 2
    assert all(frame.jpeg(80, None)[1:] == (320, 180) for frame in frames)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert read(camera(str(empty) + "/"), 1)[2] == "folder has no images (.jpg, .jpeg, .png, .bmp)"


@pytest.mark.parametrize("length", [True, False])
async def test_mjpeg_parts_are_read_with_or_without_content_length(mjpeg_server, small_jpegs, length) -> None:
    cam = camera(mjpeg_server.url(fps=20, length=length))
    frames, counters, error = await asyncio.to_thread(read, cam, 12)
    assert error is None and counters.decode_errors == 0
    assert [frame.data for frame in frames] == small_jpegs[:12]  # byte for byte: passed through
    assert frames[0].jpeg(80, None) == (small_jpegs[0], 320, 180)


async def test_mjpeg_errors_name_the_problem(mjpeg_server) -> None:
    port = mjpeg_server.port
    _, _, error = await asyncio.to_thread(read, camera(f"http://127.0.0.1:{port}/index.html"), 1)
    assert error == "not an MJPEG stream (Content-Type 'text/html; charset=utf-8')"
    _, _, error = await asyncio.to_thread(read, camera(f"http://127.0.0.1:{port}/nothing"), 1)
    assert error == "cannot open: HTTP 404 Not Found"
    from services import localstack

    closed = localstack.free_port()
    _, _, error = await asyncio.to_thread(read, camera(f"http://127.0.0.1:{closed}/video.mjpg"), 1)
    assert error == "cannot open: connection refused"


def test_multipart_parser_handles_preamble_and_final_boundary() -> None:
    body = (b"preamble\r\n--b\r\nContent-Type: image/jpeg\r\n\r\nAAA\r\nline2\r\n--b\r\n"
            b"Content-Length: 3\r\n\r\nBBB\r\n--b--\r\n")
    assert list(_parts(io.BytesIO(body), b"--b", threading.Event())) == [b"AAA\r\nline2", b"BBB"]


def test_jpeg_size_reads_the_frame_header(small_jpegs) -> None:
    assert jpeg_size(small_jpegs[0]) == (320, 180)
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    assert jpeg_size(png.tobytes()) is None


def test_more_decoder_threads_give_the_same_frames(clips: Path) -> None:
    cam = camera(str(clips / "vn_saigon_intersection.mp4"), realtime="false")
    stop = threading.Event()
    single = [f.pts for f, _ in zip(open_reader(cam, OPTIONS, stop, Counters()), range(30))]
    threaded_options = ReaderOptions(open_timeout_s=3, read_timeout_s=2, decode_threads=2)
    threaded = [f.pts for f, _ in zip(open_reader(cam, threaded_options, stop, Counters()), range(30))]
    assert len(single) == 30 and threaded == single


def test_a_torn_jpeg_is_counted_and_the_stream_goes_on(jpeg_folder: Path, tmp_path: Path) -> None:
    """The motion gate decodes each frame: a JPEG with a good header but a torn body is one
    decode error, not a reconnection."""
    from services.ingest.publisher import DropOldest
    from services.ingest.worker import CameraWorker

    folder = tmp_path / "torn"
    folder.mkdir()
    names = sorted(p.name for p in jpeg_folder.iterdir())[:6]
    for name in names:
        (folder / name).write_bytes((jpeg_folder / name).read_bytes())
    good = (jpeg_folder / names[0]).read_bytes()
    (folder / names[2]).write_bytes(good[:200])  # SOF header intact, image data cut off
    cam = camera(str(folder) + "/", fps=30, realtime="false", loop="false", motion="{enabled: true, min_changed: 0.0001}")
    queue: DropOldest = DropOldest(100)
    worker = CameraWorker(cam, queue, OPTIONS)
    worker.start()
    assert worker.join(10)
    assert worker.counters.decode_errors == 1 and worker.connections == 1
    assert worker.frames_in == 6 and worker.sampled + worker.still_skipped == 5
    assert worker.error == "end of file (loop is off)"
