"""A camera's start: its last checkpoint, then the detections after it that were already delivered.

A detection is acked once the worker has taken it in, and a checkpoint is saved every
CHECKPOINT_EVERY detections, so at a kill -9 the durable consumer has delivered (and mostly acked)
detections that the last checkpoint does not hold. The recovery restores the checkpoint, then
reads DETECTIONS itself (an ordered consumer on the camera's subject) from the checkpoint's
sequence up to the last one the durable consumer delivered, and feeds them to the worker in
stream order. Those the server redelivers afterwards (delivered, never acked) are acked without
being tracked twice (`CameraWorker.replayed_through`); what was never delivered comes through the
durable consumer as usual. Without a checkpoint (the first start, another scene, checkpoints
off) the camera starts afresh, as before.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from proto import codec, streams
from proto.v1.detection import DetectionMade
from services.runtime import bus
from services.track import checkpoint, metrics
from services.track.worker import CameraWorker

log = logging.getLogger("track")
READ_TIMEOUT_S = 2.0


@dataclass
class Recovered:
    result: str  # restored | none | discarded (another scene, settings or version; ahead of the stream)
    checkpoint_seq: int = 0
    through: int = 0  # the last sequence the durable consumer had delivered
    replayed: int = 0  # detections read back from the stream and fed to the worker


async def open_bucket(js: JetStreamContext, bucket: str) -> KeyValue:
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(api.KeyValueConfig(
            bucket=bucket, history=1, ttl=float(streams.DETECTIONS.max_age_s), storage=api.StorageType.FILE,
            description="track: each camera's tracking state (checkpoint.py), by camera"))


async def _delivered(js: JetStreamContext, consumer: streams.Consumer) -> int:
    try:
        info = await js.consumer_info(consumer.stream, consumer.name)
    except nats.js.errors.NotFoundError:
        return 0
    return info.delivered.stream_seq or 0


async def recover(js: JetStreamContext, kv: KeyValue, worker: CameraWorker, consumer: streams.Consumer,
                  *, every: int) -> Recovered:
    """Restore the worker's state from its checkpoint and the stream; it then saves checkpoints."""
    worker.kv, worker.checkpoint_every = kv, every
    worker.fingerprint = checkpoint.fingerprint(worker)
    found = await _load(kv, worker)
    if found is None:
        return _done(worker, Recovered("none"))
    if found.fingerprint != worker.fingerprint:
        log.warning("checkpoint discarded: the scene, a tracking setting or the track version changed",
                    extra={"fields": {"camera": worker.camera_id, "stream_seq": found.stream_seq}})
        return _done(worker, Recovered("discarded", found.stream_seq))
    if found.stream_seq > (await js.stream_info(consumer.stream)).state.last_seq:
        log.warning("checkpoint discarded: it is ahead of the stream (DETECTIONS was recreated)",
                    extra={"fields": {"camera": worker.camera_id, "stream_seq": found.stream_seq}})
        return _done(worker, Recovered("discarded", found.stream_seq))
    checkpoint.apply(worker, found, now=time.monotonic())
    through = await _delivered(js, consumer)
    replayed = 0
    if through > found.stream_seq:
        replayed = await _replay(js, worker, consumer, found.stream_seq + 1, through)
    worker.replayed_through = max(through, found.stream_seq)
    return _done(worker, Recovered("restored", found.stream_seq, through, replayed))


async def _load(kv: KeyValue, worker: CameraWorker) -> checkpoint.Snapshot | None:
    try:
        entry = await kv.get(worker.camera_id)
    except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
        return None
    try:
        return checkpoint.decode(entry.value or b"")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("checkpoint unreadable; starting afresh", extra={"fields": {
            "camera": worker.camera_id, "error": str(exc)}})
        return None


async def _replay(js: JetStreamContext, worker: CameraWorker, consumer: streams.Consumer, first: int, last: int) -> int:
    """Feed the camera's detections with sequences first..last to the worker; returns how many."""
    sub = await js.subscribe(consumer.filter_subjects[0], ordered_consumer=True, config=api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first))
    fed = 0
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
            except nats.errors.TimeoutError:
                log.warning("detections to replay ended early (expired?)", extra={"fields": {
                    "camera": worker.camera_id, "wanted_through": last}})
                break
            seq = msg.metadata.sequence.stream
            if seq > last:
                break
            try:
                event = codec.decode(msg.data, DetectionMade)
                await worker.take(event, seq)
            except (msgspec.DecodeError, msgspec.ValidationError, bus.Invalid):
                pass  # dead-lettered when it was delivered
            fed += 1
            if seq >= last:
                break
    finally:
        await sub.unsubscribe()
    return fed


def _done(worker: CameraWorker, recovered: Recovered) -> Recovered:
    metrics.RECOVERIES.labels(worker.camera_id, recovered.result).inc()
    log.info("camera state", extra={"fields": {
        "camera": worker.camera_id, "checkpoint": recovered.result, "checkpoint_seq": recovered.checkpoint_seq,
        "delivered_through": recovered.through, "replayed": recovered.replayed,
        "tracks": len(worker.engine.tracker.tracks), "buffered": len(worker.buffer)}})
    return recovered
