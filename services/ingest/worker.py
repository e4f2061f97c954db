"""One camera's decode thread: read, sample, gate, encode, hand over; reconnect on failure.

A thread per camera because PyAV and OpenCV release the GIL while decoding and encoding, and a
blocking read with a timeout is the simplest honest way to notice a silent stream. The thread
only writes counters and puts frames in a drop-oldest queue; everything that talks to NATS
lives on the asyncio side.
"""

from __future__ import annotations

import logging
import threading
import time

from services.ingest.cameras import Camera
from services.ingest.health import Backoff, Snapshot
from services.ingest.publisher import DropOldest, OutFrame
from services.ingest.sampler import FpsSampler, MotionGate, StreamClock, small_grey
from services.ingest.sources import Counters, ReaderOptions, SourceError, open_reader

log = logging.getLogger("roadwatch.ingest.worker")


class CameraWorker:
    def __init__(self, camera: Camera, queue: DropOldest[OutFrame], options: ReaderOptions, *,
                 backoff: Backoff | None = None, max_drift_s: float = 2.0) -> None:
        self.camera = camera
        self.queue = queue
        self.options = options
        self.backoff = backoff or Backoff()
        self.stop_event = threading.Event()
        self.counters = Counters()
        self.clock = StreamClock(max_drift_s=max_drift_s)
        self.sampler = FpsSampler(camera.fps)
        motion = camera.motion
        self.gate = MotionGate(min_changed=motion.min_changed, pixel_threshold=motion.pixel_threshold,
                               keepalive_s=motion.keepalive_s) if motion.enabled else None
        # Written by the thread only; the loop reads them through snapshot().
        self.connected = False
        self.error = ""
        self.frames_in = 0
        self.sampled = 0  # handed to the queue
        self.frames_out = 0  # published: written by the publisher task, not the thread
        self.still_skipped = 0
        self.reconnects = 0
        self.connections = 0
        self.last_frame_at: float | None = None
        self.connected_at: float | None = None
        # The next frame handed over begins a new stretch of the stream (start, reconnect, loop):
        # kept until a frame is actually handed over (the sampler or motion gate may skip some).
        self.pending_break: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"ingest-{camera.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        return Snapshot(connected=self.connected, error=self.error, frames_in=self.frames_in,
                        frames_out=self.frames_out, dropped=self.queue.dropped,
                        decode_errors=self.counters.decode_errors, reconnects=self.reconnects,
                        last_frame_at=self.last_frame_at, connected_at=self.connected_at)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            if self.connections:
                self.reconnects += 1
            self.connections += 1
            self.pending_break = "reconnect" if self.connections > 1 else "start"
            got_frame = False
            try:
                for decoded in open_reader(self.camera, self.options, self.stop_event, self.counters):
                    now = time.monotonic()
                    if not got_frame:
                        got_frame = True
                        self.connected = True
                        self.connected_at = now
                        self.error = ""
                        self.backoff.reset()
                    self.last_frame_at = now
                    self.frames_in += 1
                    try:
                        self._handle(decoded)
                    except SourceError:
                        # One undecodable picture (a torn MJPEG part): count it, keep the stream.
                        self.counters.decode_errors += 1
                if not self.stop_event.is_set():
                    self.connected = False
                    self.error = "end of file (loop is off)"
                    return
            except SourceError as exc:
                self.connected = False
                if exc.reason != self.error or got_frame:
                    # Once per new reason: a camera down for a day must not write a line per retry.
                    log.warning("camera source failed", extra={"fields": {"camera": self.camera.id,
                                                                          "reason": exc.reason}})
                self.error = exc.reason
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the camera for good
                self.connected = False
                self.error = f"internal error: {type(exc).__name__}: {exc}"
                log.exception("camera reader crashed", extra={"fields": {"camera": self.camera.id}})
            self.clock.reset()
            self.stop_event.wait(self.backoff.next())
        self.connected = False

    def _handle(self, decoded) -> None:
        if decoded.discontinuity and self.pending_break is None:
            self.pending_break = decoded.discontinuity
        captured_at = self.clock.wall_time(decoded.pts, decoded.arrival) if self.camera.start_at is None or \
            decoded.pts is None else self.camera.start_at + decoded.pts
        if not self.sampler.take(captured_at):
            return
        if self.gate is not None and not self.gate.take(small_grey(decoded.luma()), captured_at):
            self.still_skipped += 1
            return
        jpeg, width, height = decoded.jpeg(self.camera.jpeg_quality, self.camera.max_width)
        self.sampled += 1
        self.queue.put(OutFrame(camera_id=self.camera.id, captured_at=captured_at, width=width, height=height,
                                jpeg=jpeg, discontinuity=self.pending_break))
        self.pending_break = None
