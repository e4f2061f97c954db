"""The asyncio side of one leased camera: its decode thread, frame publisher and health watcher.

Frames and health go out from here and nowhere else; the decode thread only fills a bounded
queue and counters, so a slow NATS never stalls a camera and a stuck camera never stalls NATS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime

from proto import ids, subjects
from proto.v1 import CameraStatus
from services.ingest import metrics
from services.ingest.cameras import Camera
from services.ingest.health import Backoff, Health, Snapshot, Transition
from services.ingest.publisher import AsyncDropOldest, OutFrame, frame_message
from services.ingest.settings import Settings
from services.ingest.sources import ReaderOptions
from services.ingest.worker import CameraWorker
from services.runtime import bus

SERVICE = "ingest"
TICK_S = 0.5
log = logging.getLogger(SERVICE)


class CameraRunner:
    """The asyncio side of one leased camera: publishes its frames and its health."""

    def __init__(self, camera: Camera, js, config: Settings, replica: str) -> None:
        self.camera = camera
        self.js = js
        self.config = config
        self.replica = replica
        loop = asyncio.get_running_loop()
        self.queue: AsyncDropOldest[OutFrame] = AsyncDropOldest(config.queue_size, loop)
        options = ReaderOptions(open_timeout_s=config.open_timeout_s, read_timeout_s=config.read_timeout_s,
                                decode_threads=config.decode_threads)
        self.worker = CameraWorker(camera, self.queue, options,
                                   backoff=Backoff(initial_s=config.backoff_initial_s, maximum_s=config.backoff_max_s))
        self.health = Health(target_fps=camera.fps, stall_s=config.stall_s)
        self.metrics = metrics.CameraMetrics(camera.id)
        self.publish_failed = 0
        self.subject = subjects.frame_captured(camera.id)
        self.status_subject = subjects.camera_status(camera.id)
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.worker.start()
        self._tasks = [asyncio.create_task(self._publish_frames(), name=f"frames-{self.camera.id}"),
                       asyncio.create_task(self._watch_health(), name=f"health-{self.camera.id}")]

    async def stop(self) -> None:
        """Stop publishing at once; the thread ends by itself after its current read.

        Not waiting for the thread matters when many leases lapse together (NATS away): every
        camera must stop publishing before its lease can expire, not one read timeout after
        the other.
        """
        self.worker.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self.metrics.remove()

    async def join(self) -> bool:
        """Wait for the decode thread (at shutdown); a blocked read ends within READ_TIMEOUT_S."""
        return await asyncio.to_thread(self.worker.join, self.config.read_timeout_s + 1.0)

    async def final_status(self, reason: str) -> None:
        snap = self.snapshot()
        await self._publish_status(Transition("offline", reason), snap, time.monotonic(), heartbeat=False)

    def snapshot(self) -> Snapshot:
        snap = self.worker.snapshot()
        if self.publish_failed:
            snap = replace(snap, dropped=snap.dropped + self.publish_failed)
        return snap

    def describe(self) -> dict[str, object]:
        snap = self.snapshot()
        return {"camera": self.camera.id, "state": self.health.state, "reason": self.health.reason,
                "frames_in": snap.frames_in, "frames_out": snap.frames_out, "dropped": snap.dropped,
                "decode_errors": snap.decode_errors, "reconnects": snap.reconnects,
                "still_skipped": self.worker.still_skipped}

    async def _publish_frames(self) -> None:
        while True:
            frame = await self.queue.next()
            try:
                # Sent again if nats-server goes away before the ack (the same Nats-Msg-Id):
                # the frames behind it do not wait out the timeout.
                await bus.publish_bytes(self.js, self.subject, frame.jpeg, headers=frame_message(frame),
                                        timeout=self.config.publish_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS down or slow: count the frame as lost, keep going
                self.publish_failed += 1
                metrics.FRAMES_DROPPED.labels(self.camera.id, "failed").inc()
                metrics.PUBLISH_ERRORS.labels("frame").inc()
                log.warning("frame publish failed",
                            extra={"fields": {"camera": self.camera.id, "error": repr(exc)}})
                continue
            self.worker.frames_out += 1
            metrics.FRAMES_OUT.labels(self.camera.id).inc()

    async def _watch_health(self) -> None:
        next_beat = time.monotonic() + self.config.heartbeat_s
        # A change of state that could not be published (NATS away) is retried every tick, with
        # its original time, until it is: operators must see that the camera was degraded.
        unsent: deque[tuple[Transition, datetime]] = deque(maxlen=16)
        while True:
            now = time.monotonic()
            snap = self.snapshot()
            change = self.health.evaluate(snap, now)
            if change is not None:
                self.metrics.state(change.state)
                log.info("camera state", extra={"fields": {"camera": self.camera.id, "state": change.state,
                                                           "reason": change.reason}})
                unsent.append((change, datetime.now(UTC)))
            while unsent and await self._publish_status(unsent[0][0], snap, now, heartbeat=False,
                                                        occurred=unsent[0][1]):
                unsent.popleft()
            age = None if snap.last_frame_at is None else now - snap.last_frame_at
            self.metrics.update(frames_in=snap.frames_in, still=self.worker.still_skipped,
                                decode_errors=snap.decode_errors, reconnects=snap.reconnects,
                                dropped=self.worker.queue.dropped, queue=len(self.queue), age=age)
            if now >= next_beat and self.health.state is not None:
                next_beat = now + self.config.heartbeat_s
                await self._publish_status(Transition(self.health.state, self.health.reason), snap, now,
                                           heartbeat=True)
            await asyncio.sleep(TICK_S)

    async def _publish_status(self, state: Transition, snap: Snapshot, now: float, *, heartbeat: bool,
                              occurred: datetime | None = None) -> bool:
        fps_in, fps_out = self.health.heartbeat(snap, now) if heartbeat else (0.0, 0.0)
        occurred = occurred or datetime.now(UTC)
        event = CameraStatus(
            id=ids.event_id("camera-status", self.camera.id, self.replica, occurred.isoformat(), state.state,
                            heartbeat),
            camera_id=self.camera.id, occurred_at=occurred, state=state.state, reason=state.reason,
            heartbeat=heartbeat, replica=self.replica,
            fps_in=fps_in, fps_out=fps_out,
            frames_dropped=snap.dropped, decode_errors=snap.decode_errors, reconnects=snap.reconnects,
            last_frame_age_s=None if snap.last_frame_at is None else round(max(0.0, now - snap.last_frame_at), 3),
        )
        if heartbeat:
            metrics.FPS_IN.labels(self.camera.id).set(fps_in)
            metrics.FPS_OUT.labels(self.camera.id).set(fps_out)
        try:
            await bus.publish(self.js, self.status_subject, event, service=SERVICE, timeout=2.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the caller retries a change; a heartbeat just comes again
            metrics.PUBLISH_ERRORS.labels("status").inc()
            log.warning("status publish failed", extra={"fields": {"camera": self.camera.id, "error": repr(exc)}})
            return False
        return True
