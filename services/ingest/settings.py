"""Ingest service settings, read from the environment once at start (exit 2 naming the variable).

The lease figures trade hand-over speed for tolerance of pauses: a replica renews its leases
every LEASE_TTL_S / 3, so a camera moves to another replica between LEASE_TTL_S and about
LEASE_TTL_S + LEASE_SCAN_S after its reader dies, and a replica stalled for longer than
LEASE_TTL_S gives its cameras up.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

from services.ingest.jpeg import ENCODERS
from services.runtime.settings import ServiceSettings, SettingError, at_least, check_choice


class Settings(ServiceSettings, frozen=True, kw_only=True):
    http_port: int = 8081

    cameras_file: str  # the cameras YAML file (nothing to do without it); re-read on SIGHUP
    replica_id: str = ""  # this replica's name in leases and camera statuses; empty: <hostname>-<pid>
    lease_bucket: str = "ingest_leases"  # key-value bucket of the camera leases
    lease_ttl_s: Annotated[float, at_least(1.0)] = 6.0  # a dead replica's cameras move to another after about this long
    lease_scan_s: Annotated[float, at_least(0.1)] = 1.0  # how often a replica looks for cameras nobody holds
    max_cameras: Annotated[int, at_least(0)] = 0  # most cameras one replica reads (0 = no limit)

    # frames per camera waiting to be published; the oldest is dropped beyond
    queue_size: Annotated[int, at_least(1)] = 4
    publish_timeout_s: Annotated[float, at_least(0.1)] = 5.0  # a frame not acknowledged in this time counts as dropped
    heartbeat_s: Annotated[float, at_least(0.5)] = 10.0  # camera status heartbeat
    stall_s: Annotated[float, at_least(0.5)] = 3.0  # connected but no frame for this long: degraded

    open_timeout_s: Annotated[float, at_least(0.5)] = 10.0  # connecting to a camera gives up after this long
    read_timeout_s: Annotated[float, at_least(0.5)] = 5.0  # no data for this long drops the connection
    decode_threads: Annotated[int, at_least(1)] = 1  # decoder threads per camera
    jpeg_encoder: str = "auto"  # auto (TurboJPEG when installed), turbojpeg, opencv
    # first reconnection delay, doubled with jitter after each failure
    backoff_initial_s: Annotated[float, at_least(0.01)] = 0.5
    backoff_max_s: Annotated[float, at_least(0.01)] = 30.0  # longest reconnection delay

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("JPEG_ENCODER", self.jpeg_encoder, ENCODERS)
        if not self.cameras_file.strip():
            raise SettingError("CAMERAS_FILE", "is empty")
        if self.lease_scan_s >= self.lease_ttl_s:
            raise SettingError("LEASE_SCAN_S", f"must be below LEASE_TTL_S ({self.lease_ttl_s:g})")
        if self.replica_id and not all(c.isalnum() or c in "-_" for c in self.replica_id):
            raise SettingError("REPLICA_ID", f"{self.replica_id!r} may only hold letters, digits, '-' and '_'")
        if not all(c.isalnum() or c in "-_" for c in self.lease_bucket):
            raise SettingError("LEASE_BUCKET", f"{self.lease_bucket!r} may only hold letters, digits, '-' and '_'")

    @property
    def replica(self) -> str:
        if self.replica_id:
            return self.replica_id
        host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname()) or "host"
        return f"{host}-{os.getpid()}"
