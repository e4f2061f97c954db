"""Settings of the portal service, from environment variables (see the README's configuration table)."""

from __future__ import annotations

import zoneinfo
from pathlib import Path

from proto import subjects
from services.portal import anchors
from services.portal.origins import origin_of as csrf_origin
from services.runtime.settings import DatabaseSettings, SettingError

EXAMPLE_AGENCIES = str(Path(__file__).resolve().parent / "agencies.example.yaml")
EXAMPLE_NOTIFY_CONFIG = str(Path(__file__).resolve().parents[1] / "notify" / "notify.example.yaml")


class Settings(DatabaseSettings, frozen=True, kw_only=True):
    http_port: int = 8080
    agencies_file: str = EXAMPLE_AGENCIES  # agencies, users (token SHA-256), reject reasons; SIGHUP re-reads it
    evidence_bucket: str = "evidence"  # object store the evidence images are read from
    timezone: str = "Asia/Ho_Chi_Minh"  # local days in statistics, case numbers by local year
    public_rate_per_minute: int = 30  # public lookups per client and minute (per replica)
    trust_forwarded: bool = False  # take the client address from X-Forwarded-For (behind a proxy only)
    # The origin(s) browsers reach the portal at, checked against Origin/Referer on every
    # state-changing request (csrf.py); unset: the scheme and Host the request came to.
    public_url: str = ""
    allowed_origins: tuple[str, ...] = ()  # further origins, comma-separated (see PUBLIC_URL)
    outbox_retry_s: float = 5.0         # republish decided events not acknowledged after this long
    # A new case of the same plate and violation type as an open case, this close in time (seconds)
    # and place, is flagged "có thể trùng với CASE-…" for the reviewer to merge.
    duplicate_window_s: float = 600.0
    duplicate_radius_m: float = 50.0  # ... and this close in place (metres)
    # After a plate correction the portal asks the registry for the corrected plate's owner.
    registry_lookup_subject: str = subjects.request("registry", "lookup-owner")
    registry_timeout_s: float = 3.0  # how long the portal waits for the registry's answer
    # The audit chain's head is signed with this key (a file holding >= 32 bytes as hex; never in
    # the repository) and published to AUDIT_ANCHORS at start, every interval when it moved, and
    # with each report. Unset: no anchors, and a cut tail of the audit log cannot be detected.
    audit_anchor_key_file: str = ""
    audit_anchor_interval_s: float = 300.0  # anchor the chain's head this often (when it moved)
    # Retention after a case closes, per data class, in days (0: keep forever): what `roadwatch
    # portal purge` deletes (retention.py). Evidence of a rejected case:
    retention_rejected_evidence_days: int = 90
    retention_closed_evidence_days: int = 1825  # evidence of a closed case
    retention_owner_snapshot_days: int = 365  # the owner data copied into a case
    audit_chain: str = "portal"  # the chain's name in the anchors' subject (one per deployment)
    # The operations board's camera wall: each camera's newest frame is read from FRAMES at most
    # once per BOARD_FRAME_CACHE_S per replica, whatever the number of viewers; each page asks for
    # a new one every BOARD_FRAME_REFRESH_S; a user watching a camera's live picture is audited
    # once per camera and BOARD_VIEW_AUDIT_S (per replica), not once per frame.
    board_frame_cache_s: float = 0.2
    board_frame_refresh_s: float = 0.25   # each open board asks for each camera's frame this often
    board_view_audit_s: float = 900.0     # audit a user watching a camera once per this period
    # notify's configuration file (the same ConfigMap): the report reads its `deadlines:` only.
    notify_config: str = EXAMPLE_NOTIFY_CONFIG

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.db_pool_size <= 100:
            raise SettingError("DB_POOL_SIZE", f"{self.db_pool_size} is not between 1 and 100")
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
        if not 1 <= self.public_rate_per_minute <= 10000:
            raise SettingError("PUBLIC_RATE_PER_MINUTE", f"{self.public_rate_per_minute} is not between 1 and 10000")
        if not 0 <= self.duplicate_window_s <= 7 * 86_400:
            raise SettingError("DUPLICATE_WINDOW_S", f"{self.duplicate_window_s} is not between 0 and 604800")
        if not 0 <= self.duplicate_radius_m <= 5_000:
            raise SettingError("DUPLICATE_RADIUS_M", f"{self.duplicate_radius_m} is not between 0 and 5000")
        if not 0.1 <= self.registry_timeout_s <= 60:
            raise SettingError("REGISTRY_TIMEOUT_S", f"{self.registry_timeout_s} is not between 0.1 and 60")
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
        for name in ("retention_rejected_evidence_days", "retention_closed_evidence_days",
                     "retention_owner_snapshot_days"):
            if not 0 <= getattr(self, name) <= 36_500:
                raise SettingError(name.upper(), f"{getattr(self, name)} is not between 0 (keep) and 36500 days")
        if not 1 <= self.audit_anchor_interval_s <= 86_400:
            raise SettingError("AUDIT_ANCHOR_INTERVAL_S", f"{self.audit_anchor_interval_s} is not between 1 and 86400")
        if not 0.0 <= self.board_frame_cache_s <= 5:
            raise SettingError("BOARD_FRAME_CACHE_S", f"{self.board_frame_cache_s} is not between 0 and 5")
        if not 0.1 <= self.board_frame_refresh_s <= 10:
            raise SettingError("BOARD_FRAME_REFRESH_S", f"{self.board_frame_refresh_s} is not between 0.1 and 10")
        if not 10 <= self.board_view_audit_s <= 86_400:
            raise SettingError("BOARD_VIEW_AUDIT_S", f"{self.board_view_audit_s} is not between 10 and 86400")
        if not 0.5 <= self.outbox_retry_s <= 3600:
            raise SettingError("OUTBOX_RETRY_S", f"{self.outbox_retry_s} is not between 0.5 and 3600")
