"""The newest frame of a camera for the board's camera wall, without a consumer per camera.

JetStream keeps the frames (FRAMES, the evidence window); "the last message on this subject" is
one request to the stream (a direct get: any server of the stream answers, no consumer state).
A short cache per camera, and one request in flight per camera however many operators look, so
that the wall costs at most one get per camera and cache period, not one per viewer and refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NamedTuple

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from proto import streams, subjects
from services.portal import metrics

log = logging.getLogger("portal")


class Frame(NamedTuple):
    data: bytes
    seq: int          # the stream sequence: a new frame has a new one (the ETag)
    camera_id: str
    captured_at: str  # Captured-At header, as ingest wrote it
    frame_seq: str    # Frame-Seq header (capture time in ms)
    content_type: str


class LatestFrames:
    def __init__(self, js: JetStreamContext, *, max_age_s: float, stream: str = streams.FRAMES.name,
                 max_cameras: int = 512) -> None:
        self.js = js
        self.max_age_s = max_age_s
        self.stream = stream
        self.max_cameras = max_cameras
        self._cache: dict[str, tuple[float, Frame | None]] = {}
        self._inflight: dict[str, asyncio.Future] = {}
        self._direct = True  # falls back to the API get if the stream does not allow direct gets

    async def get(self, camera_id: str) -> Frame | None:
        """The newest frame of the camera still in the stream, or None (none, or expired)."""
        cached = self._cache.get(camera_id)
        if cached is not None and time.monotonic() - cached[0] < self.max_age_s:
            metrics.FRAME_GETS.labels("cached").inc()
            return cached[1]
        pending = self._inflight.get(camera_id)
        if pending is not None:
            metrics.FRAME_GETS.labels("shared").inc()
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._inflight[camera_id] = future
        try:
            frame = await self._fetch(camera_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(frame)
            if len(self._cache) >= self.max_cameras and camera_id not in self._cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[camera_id] = (time.monotonic(), frame)
            return frame
        finally:
            self._inflight.pop(camera_id, None)

    async def _fetch(self, camera_id: str) -> Frame | None:
        subject = subjects.frame_captured(camera_id)
        started = time.perf_counter()
        try:
            try:
                raw = await self.js.get_last_msg(self.stream, subject, direct=self._direct)
            except nats.errors.NoRespondersError:
                if not self._direct:
                    raise
                log.warning("direct get refused on the frames stream; using the stream API",
                            extra={"fields": {"stream": self.stream}})
                self._direct = False
                raw = await self.js.get_last_msg(self.stream, subject)
        except nats.js.errors.NotFoundError:
            metrics.FRAME_GETS.labels("missing").inc()
            return None
        finally:
            metrics.FRAME_GET_SECONDS.observe(time.perf_counter() - started)
        metrics.FRAME_GETS.labels("fetched").inc()
        headers = raw.headers or {}
        return Frame(data=raw.data or b"", seq=raw.seq or 0, camera_id=camera_id,
                     captured_at=headers.get("Captured-At", ""), frame_seq=headers.get("Frame-Seq", ""),
                     content_type="image/jpeg")
