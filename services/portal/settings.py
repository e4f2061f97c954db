"""Settings of the portal service, from environment variables (see the README's configuration table)."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated

from proto import subjects
from services.portal import anchors
from services.portal.origins import origin_of as csrf_origin
from services.runtime.settings import DatabaseSettings, SettingError, between

EXAMPLE_AGENCIES = str(Path(__file__).resolve().parent / "agencies.example.yaml")
EXAMPLE_NOTIFY_CONFIG = str(Path(__file__).resolve().parents[1] / "notify" / "notify.example.yaml")
RetentionDays = Annotated[int, between(0, 36_500)]  # 0: keep forever


class Settings(DatabaseSettings, frozen=True, kw_only=True):
    http_port: int = 8080
    db_pool_size: Annotated[int, between(1, 100)] = 10
    agencies_file: str = EXAMPLE_AGENCIES  # agencies, users (token SHA-256), reject reasons; SIGHUP re-reads it
    evidence_bucket: str = "evidence"  # object store the evidence images are read from
    timezone: str = "Asia/Ho_Chi_Minh"  # local days in statistics, case numbers by local year
    # public lookups per client and minute (per replica)
    public_rate_per_minute: Annotated[int, between(1, 10_000)] = 30
    trust_forwarded: bool = False  # take the client address from X-Forwarded-For (behind a proxy only)
    # The origin(s) browsers reach the portal at, checked against Origin/Referer on every
    # state-changing request (csrf.py); unset: the scheme and Host the request came to.
    public_url: str = ""
    allowed_origins: tuple[str, ...] = ()  # further origins, comma-separated (see PUBLIC_URL)
    # republish decided events not acknowledged after this long
    outbox_retry_s: Annotated[float, between(0.5, 3600)] = 5.0
    # A new case of the same plate and violation type as an open case, this close in time (seconds)
    # and place, is flagged "có thể trùng với CASE-…" for the reviewer to merge.
    duplicate_window_s: Annotated[float, between(0, 7 * 86_400)] = 600.0
    duplicate_radius_m: Annotated[float, between(0, 5_000)] = 50.0  # ... and this close in place (metres)
    # After a plate correction the portal asks the registry for the corrected plate's owner.
    registry_lookup_subject: str = subjects.request("registry", "lookup-owner")
    registry_timeout_s: Annotated[float, between(0.1, 60)] = 3.0  # how long the portal waits for the registry's answer
    # The audit chain's head is signed with this key (a file holding >= 32 bytes as hex; never in
    # the repository) and published to AUDIT_ANCHORS at start, every interval when it moved, and
    # with each report. Unset: no anchors, and a cut tail of the audit log cannot be detected.
    audit_anchor_key_file: str = ""
    # anchor the chain's head this often (when it moved)
    audit_anchor_interval_s: Annotated[float, between(1, 86_400)] = 300.0
    # Retention after a case closes, per data class, in days (0: keep forever): what `roadwatch
    # portal purge` deletes (retention.py). Evidence of a rejected case:
    retention_rejected_evidence_days: RetentionDays = 90
    retention_closed_evidence_days: RetentionDays = 1825  # evidence of a closed case
    retention_owner_snapshot_days: RetentionDays = 365  # the owner data copied into a case
    audit_chain: str = "portal"  # the chain's name in the anchors' subject (one per deployment)
    # The operations board's camera wall: each camera's newest frame is read from FRAMES at most
    # once per BOARD_FRAME_CACHE_S per replica, whatever the number of viewers; each page asks for
    # a new one every BOARD_FRAME_REFRESH_S; a user watching a camera's live picture is audited
    # once per camera and BOARD_VIEW_AUDIT_S (per replica), not once per frame.
    board_frame_cache_s: Annotated[float, between(0, 5)] = 0.2
    # each open board asks for each camera's frame this often
    board_frame_refresh_s: Annotated[float, between(0.1, 10)] = 0.25
    # audit a user watching a camera once per this period
    board_view_audit_s: Annotated[float, between(10, 86_400)] = 900.0
    # notify's configuration file (the same ConfigMap): the report reads its `deadlines:` only.
    notify_config: str = EXAMPLE_NOTIFY_CONFIG

    def __post_init__(self) -> None:
        super().__post_init__()
        if not Path(self.agencies_file).is_file():
            raise SettingError("AGENCIES_FILE", f"{self.agencies_file} is not a file")
        if not Path(self.notify_config).is_file():
            raise SettingError("NOTIFY_CONFIG", f"{self.notify_config} is not a file")
        if not self.evidence_bucket.replace("-", "").replace("_", "").isalnum():
            raise SettingError("EVIDENCE_BUCKET", f"{self.evidence_bucket!r} is not a bucket name")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingError("TIMEZONE", f"{self.timezone!r} is not an IANA time zone") from exc
        for variable, url in (("PUBLIC_URL", self.public_url), *(("ALLOWED_ORIGINS", o) for o in self.allowed_origins)):
            if url and csrf_origin(url) is None:
                raise SettingError(variable, f"{url!r} is not an http(s) origin such as https://portal.example.vn")
        if self.audit_anchor_key_file:
            try:
                anchors.load_key(self.audit_anchor_key_file)
            except anchors.AnchorKeyError as exc:
                raise SettingError("AUDIT_ANCHOR_KEY_FILE", str(exc).split(": ", 1)[-1]) from None
        if not self.audit_chain.replace("-", "").replace("_", "").isalnum() or not self.audit_chain.islower():
            raise SettingError("AUDIT_CHAIN", f"{self.audit_chain!r}: lowercase letters, digits, '-' or '_'")
