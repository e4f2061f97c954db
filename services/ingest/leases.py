"""Which replica reads which camera: leases with a TTL in a JetStream key-value bucket.

Every camera must be read by exactly one replica: two readers would double the detect load and
the evidence, none would be a silent gap. A lease is the key `camera.<id>` holding the replica's
id, created only if absent (compare-and-set) and renewed every TTL/3 by revision; the bucket's
max age is the TTL, so a dead replica's leases vanish by themselves. A replica that cannot
renew for 2/3 of the TTL stops reading before anyone else may start.

Replicas also announce themselves (`replica.<id>`), and each camera has a preferred replica by
rendezvous hashing over the live ones: cameras spread evenly, a free camera is taken at once by
its preferred replica (and by anyone after it has been free for a TTL), and a replica hands a
camera over when a newcomer is preferred for it. The decisions are in `LeaseTable` (pure); the
I/O is in `LeaseKeeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js import api
from nats.js.kv import KeyValue

log = logging.getLogger("roadwatch.ingest.leases")

CAMERA_PREFIX = "camera."
REPLICA_PREFIX = "replica."


def rank(camera_id: str, replica: str) -> int:
    digest = hashlib.blake2b(f"{camera_id}\x1f{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred(camera_id: str, replicas: Iterable[str]) -> str:
    """Rendezvous hashing: stable, and only the cameras of a joining/leaving replica move."""
    return max(replicas, key=lambda replica: (rank(camera_id, replica), replica))


@dataclass(slots=True)
class Held:
    revision: int
    renewed_at: float  # monotonic time of the last successful create/renew


class LeaseTable:
    """The lease decisions of one replica, from what it sees in the bucket. No I/O."""

    def __init__(self, me: str, *, ttl_s: float, max_cameras: int = 0) -> None:
        self.me = me
        self.ttl_s = ttl_s
        self.max_cameras = max_cameras
        self.held: dict[str, Held] = {}
        self.owners: dict[str, str] = {}  # camera -> replica holding it, as last seen
        self.free_since: dict[str, float] = {}
        self.live_since: dict[str, float] = {}

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 3

    @property
    def give_up_after_s(self) -> float:
        return self.ttl_s * 2 / 3

    def observe(self, cameras: Iterable[str], owners: dict[str, str], replicas: Iterable[str], now: float) -> None:
        self.owners = dict(owners)
        for camera in cameras:
            if camera in owners:
                self.free_since.pop(camera, None)
            else:
                self.free_since.setdefault(camera, now)
        live = set(replicas) | {self.me}
        for replica in live:
            self.live_since.setdefault(replica, now)
        for replica in list(self.live_since):
            if replica not in live:
                del self.live_since[replica]

    def live(self) -> list[str]:
        return sorted(self.live_since)

    def to_acquire(self, cameras: Iterable[str], now: float) -> list[str]:
        room = self.max_cameras - len(self.held) if self.max_cameras else None
        wanted = []
        live = self.live()
        for camera in sorted(cameras):
            if camera in self.held or camera in self.owners:
                continue
            free_for = now - self.free_since.get(camera, now)
            if preferred(camera, live) == self.me or free_for >= self.ttl_s:
                wanted.append(camera)
        return wanted if room is None else wanted[: max(room, 0)]

    def to_release(self, cameras: Iterable[str], now: float) -> list[str]:
        """Held cameras no longer configured, and those preferring a replica live for a full TTL."""
        configured = set(cameras)
        settled = [r for r, since in self.live_since.items() if now - since >= self.ttl_s or r == self.me]
        out = []
        for camera in sorted(self.held):
            if camera not in configured:
                out.append(camera)
            elif settled and preferred(camera, settled) != self.me and preferred(camera, self.live()) != self.me:
                out.append(camera)
        return out

    def to_renew(self, now: float) -> list[str]:
        return [camera for camera, held in self.held.items() if now - held.renewed_at >= self.renew_every_s]

    def overdue(self, now: float) -> list[str]:
        """Held leases not renewed in time: stop reading before another replica may start."""
        return [camera for camera, held in self.held.items() if now - held.renewed_at >= self.give_up_after_s]


Callback = Callable[[str], Awaitable[None]]
# What a scan sees once the bucket's stream is gone (a restarted nats-server loses memory streams).
BUCKET_GONE = (nats.js.errors.NoStreamResponseError, nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError)


class LeaseKeeper:
    """Runs the lease protocol against the bucket; calls `on_acquired` / `on_lost` per camera."""

    def __init__(self, js: JetStreamContext, *, bucket: str, me: str, ttl_s: float, scan_s: float,
                 max_cameras: int, on_acquired: Callback, on_lost: Callback,
                 clock: Callable[[], float] | None = None) -> None:
        self.js = js
        self.bucket = bucket
        self.me = me
        self.scan_s = scan_s
        self.table = LeaseTable(me, ttl_s=ttl_s, max_cameras=max_cameras)
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.clock = clock or asyncio.get_running_loop().time
        self.kv: KeyValue | None = None
        self.cameras: list[str] = []
        self._presence_at = -1e9
        self.last_scan_ok = -1e9  # clock() of the last scan that reached the bucket

    async def open(self) -> None:
        ttl = self.table.ttl_s
        try:
            self.kv = await self.js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            self.kv = await self.js.create_key_value(api.KeyValueConfig(
                bucket=self.bucket, history=1, ttl=ttl, storage=api.StorageType.MEMORY,
                description="ingest: which replica reads which camera (leases with a TTL)"))
        status = await self.kv.status()
        if status.ttl is not None and abs(status.ttl - ttl) > 0.01:
            raise RuntimeError(f"lease bucket {self.bucket!r} has TTL {status.ttl:g} s but LEASE_TTL_S is {ttl:g}; "
                               "every replica must use the same value (delete the bucket to change it)")

    def configure(self, cameras: Iterable[str]) -> None:
        self.cameras = sorted(cameras)

    async def run(self, stop: asyncio.Event) -> None:
        watchdog = asyncio.create_task(self._watchdog(stop), name="lease-watchdog")
        try:
            await self._scan(stop)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _watchdog(self, stop: asyncio.Event) -> None:
        """Stops cameras whose lease is overdue even while a scan is stuck on a frozen NATS."""
        while not stop.is_set():
            await self._drop_overdue()
            await asyncio.sleep(min(0.25, self.table.ttl_s / 12))

    def scanning(self) -> bool:
        """For /readyz: a replica whose scans fail reads nothing, so it must not look ready."""
        return self.clock() - self.last_scan_ok <= 2 * self.table.ttl_s

    async def _scan(self, stop: asyncio.Event) -> None:
        bucket_lost = False
        while not stop.is_set():
            try:
                if bucket_lost:
                    # The bucket is in memory: a restarted nats-server has lost it. Create it again.
                    await asyncio.wait_for(self.open(), self.table.ttl_s / 3)
                    bucket_lost = False
                # Bounded: a scan must never outlive the leases it is meant to renew.
                await asyncio.wait_for(self.step(), self.table.ttl_s / 3)
                self.last_scan_ok = self.clock()
            except (nats.errors.Error, asyncio.TimeoutError, OSError) as exc:
                bucket_lost = bucket_lost or isinstance(exc, BUCKET_GONE)
                log.warning("lease scan failed", extra={"fields": {"error": repr(exc)}})
                await self._drop_overdue()
            except Exception:  # noqa: BLE001 - a bug here must not leave cameras read without a lease
                log.exception("lease scan crashed")
                await self._drop_overdue()
            try:
                await asyncio.wait_for(stop.wait(), self.scan_s)
            except asyncio.TimeoutError:
                pass

    async def step(self) -> None:
        """One scan: renew, give up what is overdue or unwanted, take what is free."""
        assert self.kv is not None
        now = self.clock()
        if now - self._presence_at >= self.table.renew_every_s:
            await self.kv.put(f"{REPLICA_PREFIX}{self.me}", self.me.encode())
            self._presence_at = now
        await asyncio.gather(*(self._renew(camera) for camera in self.table.to_renew(now)))
        await self._drop_overdue()
        owners, replicas = await self._read_bucket()
        now = self.clock()
        # A lease we hold that the bucket gives to someone else is lost. A missing key is not
        # evidence (the listing may be incomplete): renewal by revision is what proves a lease.
        for camera in list(self.table.held):
            if owners.get(camera, self.me) != self.me and self.table.held.pop(camera, None) is not None:
                log.warning("lease lost", extra={"fields": {"camera": camera, "owner": owners.get(camera)}})
                await self.on_lost(camera)
        self.table.observe(self.cameras, owners, replicas, now)
        for camera in self.table.to_release(self.cameras, now):
            await self.release(camera)
        for camera in self.table.to_acquire(self.cameras, now):
            await self._acquire(camera)

    async def _read_bucket(self) -> tuple[dict[str, str], list[str]]:
        assert self.kv is not None
        # Each listing is a short-lived ordered consumer; without a short inactivity threshold
        # the server would keep every one of them for nats-py's default five minutes.
        watcher = await self.kv.watchall(inactive_threshold=2.0)
        owners: dict[str, str] = {}
        replicas: list[str] = []
        received = 0
        marker_seen = False
        try:
            while True:
                try:
                    # nats-py may send its "nothing pending" marker before entries already in
                    # flight when the loop is busy: after an early marker, wait briefly for more.
                    # (The bucket is never empty here: this replica's presence key is in it.)
                    entry = await watcher.updates(timeout=1.0 if marker_seen and not received else 5.0)
                except nats.errors.TimeoutError:
                    if received == 0 and marker_seen:
                        break
                    raise
                if entry is None:
                    if received == 0 and not marker_seen:
                        marker_seen = True
                        continue
                    break
                received += 1
                if entry.operation in ("DEL", "PURGE") or entry.value is None:
                    continue
                value = entry.value.decode("utf-8", "replace")
                if entry.key.startswith(CAMERA_PREFIX):
                    owners[entry.key[len(CAMERA_PREFIX):]] = value
                elif entry.key.startswith(REPLICA_PREFIX):
                    replicas.append(value)
                if entry.delta == 0:
                    break
        finally:
            await watcher.stop()
        return owners, replicas

    async def _acquire(self, camera: str) -> None:
        assert self.kv is not None
        try:
            revision = await self.kv.create(f"{CAMERA_PREFIX}{camera}", self.me.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return  # another replica was faster
        self.table.held[camera] = Held(revision=revision, renewed_at=self.clock())
        self.table.owners[camera] = self.me
        log.info("lease acquired", extra={"fields": {"camera": camera}})
        await self.on_acquired(camera)

    async def _renew(self, camera: str) -> None:
        assert self.kv is not None
        held = self.table.held.get(camera)
        if held is None:
            return
        try:
            held.revision = await self.kv.update(f"{CAMERA_PREFIX}{camera}", self.me.encode(), last=held.revision)
            held.renewed_at = self.clock()
        except nats.js.errors.KeyWrongLastSequenceError:
            log.warning("lease taken over", extra={"fields": {"camera": camera}})
            if self.table.held.pop(camera, None) is not None:
                await self.on_lost(camera)

    async def _drop_overdue(self) -> None:
        for camera in self.table.overdue(self.clock()):
            if self.table.held.pop(camera, None) is None:
                continue
            log.warning("lease not renewed in time; stopping the camera", extra={"fields": {"camera": camera}})
            await self.on_lost(camera)

    async def release(self, camera: str) -> None:
        """Stop reading first, then free the key, so that the next reader never overlaps."""
        held = self.table.held.pop(camera, None)
        if held is None:
            return
        await self.on_lost(camera)
        assert self.kv is not None
        try:
            await asyncio.wait_for(self.kv.delete(f"{CAMERA_PREFIX}{camera}", last=held.revision), 2.0)
        except (nats.js.errors.KeyWrongLastSequenceError, nats.errors.Error, asyncio.TimeoutError) as exc:
            # The key then expires by itself within the TTL.
            log.info("lease release skipped", extra={"fields": {"camera": camera, "error": repr(exc)}})
            return
        log.info("lease released", extra={"fields": {"camera": camera}})

    async def release_all(self) -> None:
        """At shutdown, all at once: with NATS away this takes seconds, not seconds per camera."""
        await asyncio.gather(*(self.release(camera) for camera in list(self.table.held)))
        if self.kv is not None:
            try:
                await asyncio.wait_for(self.kv.delete(f"{REPLICA_PREFIX}{self.me}"), 2.0)
            except (nats.errors.Error, asyncio.TimeoutError):
                pass
