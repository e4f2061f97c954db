"""Ingest service settings, read from the environment once at start (exit 2 naming the variable).

The lease figures trade hand-over speed for tolerance of pauses: a replica renews its leases
every LEASE_TTL_S / 3, so a camera moves to another replica between LEASE_TTL_S and about
LEASE_TTL_S + LEASE_SCAN_S after its reader dies, and a replica stalled for longer than
LEASE_TTL_S gives its cameras up.
"""

from __future__ import annotations

import os
import socket

import msgspec

from services.ingest.jpeg import ENCODERS
from services.runtime.settings import DEFAULT_HTTP_HOST, HttpHost, SettingError, check_choice, check_common


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    http_port: int = 8081
    http_host: HttpHost = DEFAULT_HTTP_HOST  # address the HTTP port binds (the container images set 0.0.0.0)
    log_level: str = "INFO"

    cameras_file: str  # required: there is nothing to do without cameras
    replica_id: str = ""  # default: <hostname>-<pid>
    lease_bucket: str = "ingest_leases"
    lease_ttl_s: float = 6.0
    lease_scan_s: float = 1.0
    max_cameras: int = 0  # per replica; 0 = no limit

    queue_size: int = 4  # frames waiting to be published, per camera (drop-oldest beyond)
    publish_timeout_s: float = 5.0
    heartbeat_s: float = 10.0
    stall_s: float = 3.0  # connected but no frame for this long: degraded

    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    decode_threads: int = 1
    jpeg_encoder: str = "auto"  # auto (TurboJPEG when installed), turbojpeg, opencv
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        check_common(nats_url=self.nats_url, http_port=self.http_port, log_level=self.log_level)
        check_choice("JPEG_ENCODER", self.jpeg_encoder, ENCODERS)
        if not self.cameras_file.strip():
            raise SettingError("CAMERAS_FILE", "is empty")
        for name, low in (("lease_ttl_s", 1.0), ("lease_scan_s", 0.1), ("publish_timeout_s", 0.1),
                          ("heartbeat_s", 0.5), ("stall_s", 0.5), ("open_timeout_s", 0.5),
                          ("read_timeout_s", 0.5), ("backoff_initial_s", 0.01), ("backoff_max_s", 0.01)):
            if getattr(self, name) < low:
                raise SettingError(name.upper(), f"must be at least {low:g}, got {getattr(self, name)}")
        for name, low in (("queue_size", 1), ("decode_threads", 1), ("max_cameras", 0)):
            if getattr(self, name) < low:
                raise SettingError(name.upper(), f"must be at least {low}, got {getattr(self, name)}")
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
