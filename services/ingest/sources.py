"""Readers for every kind of camera URL: RTSP and files through PyAV, HTTP MJPEG, image folders.

Readers are blocking iterators meant to run in one thread per camera: PyAV and OpenCV release
the GIL while they decode, so the asyncio loop stays responsive. Every failure becomes a
`SourceError` with a short reason an operator can act on ("connection refused", "no data for
5 s"), which the health state machine publishes as is.

Decoded frames stay in the decoder's own format until the sampler has chosen them: colour
conversion and JPEG encoding are paid only for frames that are published.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from services.ingest.cameras import Camera, redact_url
from services.ingest.jpeg import default_encoder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Consecutive undecodable packets/images after which a source counts as broken, not noisy.
MAX_CONSECUTIVE_DECODE_ERRORS = 50


class SourceError(Exception):
    """The source failed; `reason` is short, safe to publish (no credentials) and actionable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    decode_threads: int = 1


class Counters:
    """Figures a reader reports while it runs; written by one thread, read by the loop."""

    __slots__ = ("decode_errors",)

    def __init__(self) -> None:
        self.decode_errors = 0


# --- decoded frames ------------------------------------------------------------------------------
class Decoded:
    """One decoded frame, converted lazily: `luma()` for the motion gate, `jpeg()` to publish."""

    pts: float | None  # stream time in seconds, None when the source has no timestamps
    arrival: float  # wall-clock time the frame was read
    discontinuity: str | None = None  # "loop" on the first frame of a looping source's next pass

    def luma(self) -> np.ndarray:
        raise NotImplementedError

    def jpeg(self, quality: int, max_width: int | None) -> tuple[bytes, int, int]:
        raise NotImplementedError


def _fit(width: int, height: int, max_width: int | None) -> tuple[int, int]:
    if max_width is None or width <= max_width:
        return width, height
    scaled = max(2, round(height * max_width / width / 2) * 2)
    return max_width - max_width % 2, scaled


def _encode(bgr: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SourceError("JPEG encoding failed")
    return buffer.tobytes()


class AvDecoded(Decoded):
    __slots__ = ("frame", "pts", "arrival", "_planes")

    def __init__(self, frame: av.VideoFrame, pts: float | None, arrival: float) -> None:
        self.frame = frame
        self.pts = pts
        self.arrival = arrival
        self._planes: np.ndarray | None = None

    def _yuv(self) -> np.ndarray | None:
        """The I420 planes as one array (no conversion), when the frame is 4:2:0 with even size."""
        frame = self.frame
        if frame.format.name not in ("yuv420p", "yuvj420p") or frame.width % 2 or frame.height % 2:
            return None
        if self._planes is None:
            self._planes = frame.to_ndarray()
        return self._planes

    def luma(self) -> np.ndarray:
        planes = self._yuv()
        if planes is not None:
            return planes[: self.frame.height]
        return self.frame.to_ndarray(format="gray")

    def jpeg(self, quality: int, max_width: int | None) -> tuple[bytes, int, int]:
        frame = self.frame
        width, height = _fit(frame.width, frame.height, max_width)
        if (width, height) != (frame.width, frame.height):
            bgr = frame.to_ndarray(format="bgr24", width=width, height=height)
            return _encode(bgr, quality), width, height
        return default_encoder().encode(frame, quality, self._planes), width, height


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's SOF marker, without decoding the image."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        if marker == 0xFF:
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = int.from_bytes(data[index + 2: index + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height = int.from_bytes(data[index + 5: index + 7], "big")
            width = int.from_bytes(data[index + 7: index + 9], "big")
            return (width, height) if width and height else None
        index += 2 + length
    return None


class JpegDecoded(Decoded):
    """A frame that arrived as a JPEG: published as received unless it must be downscaled."""

    __slots__ = ("data", "pts", "arrival", "size")

    def __init__(self, data: bytes, size: tuple[int, int], pts: float | None, arrival: float) -> None:
        self.data = data
        self.size = size
        self.pts = pts
        self.arrival = arrival

    def luma(self) -> np.ndarray:
        # libjpeg decodes at 1/8 scale almost for free: enough for the motion gate.
        grey = cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if grey is None:
            raise SourceError("undecodable JPEG")
        return grey

    def jpeg(self, quality: int, max_width: int | None) -> tuple[bytes, int, int]:
        width, height = _fit(*self.size, max_width)
        if (width, height) == self.size:
            return self.data, width, height
        bgr = cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError("undecodable JPEG")
        return _encode(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), quality), width, height


class ArrayDecoded(Decoded):
    __slots__ = ("bgr", "pts", "arrival")

    def __init__(self, bgr: np.ndarray, pts: float | None, arrival: float) -> None:
        self.bgr = bgr
        self.pts = pts
        self.arrival = arrival

    def luma(self) -> np.ndarray:
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2GRAY)

    def jpeg(self, quality: int, max_width: int | None) -> tuple[bytes, int, int]:
        height, width = self.bgr.shape[:2]
        target = _fit(width, height, max_width)
        bgr = self.bgr if target == (width, height) else cv2.resize(self.bgr, target, interpolation=cv2.INTER_AREA)
        return _encode(bgr, quality), target[0], target[1]


# --- pacing --------------------------------------------------------------------------------------
class _Pacer:
    """Plays a recorded source at its own speed, as a live camera would deliver it."""

    def __init__(self, stop: threading.Event, realtime: bool) -> None:
        self.stop = stop
        self.realtime = realtime
        self.start_mono = time.monotonic()
        self.start_wall = time.time()

    def arrive(self, pts: float) -> float:
        """Wait until `pts` is due; return the (real or virtual) arrival wall time."""
        if not self.realtime:
            return self.start_wall + pts
        delay = self.start_mono + pts - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
        return time.time()


# --- PyAV: RTSP and files ------------------------------------------------------------------------
def _av_reason(exc: BaseException, url: str, read_timeout_s: float) -> str:
    if isinstance(exc, av.error.ExitError):
        return f"no data for {read_timeout_s:g} s (timeout)"
    if isinstance(exc, av.error.FileNotFoundError):
        return "file not found"
    if isinstance(exc, av.error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, av.error.FFmpegError):
        message = exc.strerror or str(exc)
        return message.replace(url, redact_url(url))
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)).replace(url, redact_url(url))
    return f"{type(exc).__name__}: {exc}"


def _open_av(url: str, options: ReaderOptions, rtsp: bool):
    av_options = {"rtsp_transport": "tcp"} if rtsp else {}
    try:
        container = av.open(url, options=av_options, timeout=(options.open_timeout_s, options.read_timeout_s))
    except Exception as exc:  # noqa: BLE001 - every open failure becomes a status reason
        reason = _av_reason(exc, url, options.open_timeout_s)
        raise SourceError(f"cannot open: {reason}") from None
    if not container.streams.video:
        container.close()
        raise SourceError("cannot open: no video stream")
    stream = container.streams.video[0]
    codec = stream.codec_context
    if options.decode_threads > 1:
        stream.thread_type = "AUTO"
        codec.thread_count = options.decode_threads
    else:
        codec.thread_count = 1
    return container, stream


def read_av(camera: Camera, options: ReaderOptions, stop: threading.Event, counters: Counters) -> Iterator[Decoded]:
    """Frames of an RTSP stream or a video file; a file loops with continuous timestamps."""
    rtsp = camera.kind == "rtsp"
    pacer = _Pacer(stop, camera.realtime) if not rtsp else None
    offset = 0.0  # added to the pts of each pass through a looping file
    passes = 0  # passes through the file done: the first frame of the next one is a discontinuity
    while not stop.is_set():
        if camera.kind == "file" and not os.path.exists(camera.url):
            raise SourceError("file not found")
        container, stream = _open_av(camera.url, options, rtsp)
        try:
            time_base = stream.time_base
            first: float | None = None
            last = 0.0
            step = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
            consecutive_errors = 0
            delivered = 0
            packets = container.demux(stream)
            while not stop.is_set():
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001
                    raise SourceError(_av_reason(exc, camera.url, options.read_timeout_s)) from None
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, ValueError) as exc:
                    counters.decode_errors += 1
                    consecutive_errors += 1
                    if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS:
                        raise SourceError(f"undecodable stream: {exc.strerror or exc}") from None
                    continue
                consecutive_errors = 0 if frames else consecutive_errors
                for frame in frames:
                    seconds = float(frame.pts * time_base) if frame.pts is not None and time_base else None
                    if pacer is None:
                        yield AvDecoded(frame, seconds, time.time())
                        continue
                    if seconds is None:
                        seconds = last + step if first is not None else 0.0
                    if first is None:
                        first = seconds
                    last = seconds
                    pts = offset + seconds - first
                    delivered += 1
                    decoded = AvDecoded(frame, pts, pacer.arrive(pts))
                    if passes and delivered == 1:
                        decoded.discontinuity = "loop"
                    yield decoded
        finally:
            container.close()
        if stop.is_set():
            return
        if rtsp:
            raise SourceError("stream ended")
        if delivered == 0:
            raise SourceError("file has no decodable frames")
        if not camera.loop:
            return
        offset += last - (first or 0.0) + step
        passes += 1


# --- HTTP MJPEG ------------------------------------------------------------------------------------
def _boundary(content_type: str) -> bytes | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            value = value.strip('"')
            return (value if value.startswith("--") else "--" + value).encode("latin-1")
    return None


def read_mjpeg(camera: Camera, options: ReaderOptions, stop: threading.Event, counters: Counters) -> Iterator[Decoded]:
    """Parts of a multipart/x-mixed-replace response; Content-Length is used when sent."""
    request = urllib.request.Request(camera.url, headers={"User-Agent": "roadwatch-ingest"})
    try:
        response = urllib.request.urlopen(request, timeout=options.open_timeout_s)
    except urllib.error.HTTPError as exc:
        raise SourceError(f"cannot open: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            raise SourceError("cannot open: connection refused") from None
        if isinstance(reason, socket.timeout | TimeoutError):
            raise SourceError(f"cannot open: no answer within {options.open_timeout_s:g} s (timeout)") from None
        raise SourceError(f"cannot open: {getattr(reason, 'strerror', None) or reason}") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot open: {exc}") from None
    with response:
        content_type = response.headers.get("Content-Type", "")
        boundary = _boundary(content_type)
        if not content_type.lower().startswith("multipart/") or boundary is None:
            raise SourceError(f"not an MJPEG stream (Content-Type {content_type or 'missing'!r})")
        if response.fp is not None and hasattr(response.fp, "raw"):
            try:
                response.fp.raw._sock.settimeout(options.read_timeout_s)  # type: ignore[attr-defined]
            except AttributeError:
                pass
        consecutive_errors = 0
        try:
            for data in _parts(response, boundary, stop):
                size = jpeg_size(data)
                if size is None:
                    counters.decode_errors += 1
                    consecutive_errors += 1
                    if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS:
                        raise SourceError("stream carries no decodable JPEG")
                    continue
                consecutive_errors = 0
                yield JpegDecoded(data, size, None, time.time())
        except (socket.timeout, TimeoutError):
            raise SourceError(f"no data for {options.read_timeout_s:g} s (timeout)") from None
        except OSError as exc:
            raise SourceError(f"connection lost: {exc.strerror or exc}") from None
    if not stop.is_set():
        raise SourceError("stream ended")


def _parts(response, boundary: bytes, stop: threading.Event) -> Iterator[bytes]:
    """Bodies of the parts, read either by Content-Length or up to the next boundary."""
    line = response.readline()
    while line and line.strip() != boundary and not stop.is_set():
        line = response.readline()
    while line and not stop.is_set():
        length = None
        while True:
            header = response.readline()
            if not header:
                return
            header = header.strip()
            if not header:
                break
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    length = None
        if length is not None:
            body = response.read(length)
            if len(body) < length:
                return
            yield body
            line = response.readline()
            while line and line.strip() != boundary and line.strip() != boundary + b"--":
                line = response.readline()
            if line.strip() == boundary + b"--":
                return
        else:
            chunks: list[bytes] = []
            while True:
                line = response.readline()
                if not line:
                    return
                stripped = line.strip()
                if stripped == boundary or stripped == boundary + b"--":
                    break
                chunks.append(line)
            body = b"".join(chunks)
            yield body[:-2] if body.endswith(b"\r\n") else body
            if stripped == boundary + b"--":
                return


# --- folders of images ---------------------------------------------------------------------------
def read_folder(camera: Camera, options: ReaderOptions, stop: threading.Event, counters: Counters) -> Iterator[Decoded]:
    """Images in name order at `image_fps` (default: fps); the folder is listed again each pass."""
    folder = Path(camera.url)
    rate = camera.image_fps or camera.fps
    pacer = _Pacer(stop, camera.realtime)
    index = 0
    passes = 0
    while not stop.is_set():
        if not folder.is_dir():
            raise SourceError("folder not found")
        try:
            names = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        except OSError as exc:
            raise SourceError(f"cannot list folder: {exc.strerror or exc}") from None
        if not names:
            raise SourceError("folder has no images (.jpg, .jpeg, .png, .bmp)")
        good = 0
        for image in names:
            if stop.is_set():
                return
            pts = index / rate
            index += 1
            try:
                data = image.read_bytes()
            except OSError:
                counters.decode_errors += 1
                continue
            if image.suffix.lower() in (".jpg", ".jpeg"):
                size = jpeg_size(data)
                if size is None:
                    counters.decode_errors += 1
                    continue
                decoded: Decoded = JpegDecoded(data, size, pts, pacer.arrive(pts))
            else:
                bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    counters.decode_errors += 1
                    continue
                decoded = ArrayDecoded(bgr, pts, pacer.arrive(pts))
            good += 1
            if passes and good == 1:
                decoded.discontinuity = "loop"
            yield decoded
        if good == 0:
            raise SourceError("no image in the folder could be read")
        if not camera.loop:
            return
        passes += 1


READERS = {"rtsp": read_av, "file": read_av, "mjpeg": read_mjpeg, "folder": read_folder}


def open_reader(camera: Camera, options: ReaderOptions, stop: threading.Event, counters: Counters) -> Iterator[Decoded]:
    return READERS[camera.kind](camera, options, stop, counters)
