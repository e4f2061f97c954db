"""JetStream streams and durable consumers, declared once.

The runtime provisions these idempotently at every service start (`bus.ensure_streams`), so a
fresh NATS needs no manual set-up, and an operator changes retention here, in one place.
A new subscriber (a dashboard, another agency's system) is a new durable consumer on an existing
stream: nothing upstream changes.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from proto import subjects

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# The legal record (violations, cases, notices): one retention, so that no part of it outlives another.
LEGAL_RECORD_S = 400 * DAY


class Stream(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    subjects: tuple[str, ...]
    description: str
    storage: Literal["file", "memory"] = "file"
    max_age_s: int
    max_bytes: int = -1
    max_msg_size: int = -1
    # Ids seen within this window are dropped on publish (Nats-Msg-Id); longer for the legal
    # record (violations, cases, notices), where a late replay must not create a second case.
    duplicate_window_s: int = 2 * MINUTE
    # Nothing may be taken out of the stream but by its limits (the audit anchors: none).
    deny_delete: bool = False
    deny_purge: bool = False
    # Any server of the stream answers "the last message on this subject" itself (direct get):
    # the portal's camera wall reads each camera's newest frame so, without a consumer.
    allow_direct: bool = False


class Consumer(msgspec.Struct, frozen=True, kw_only=True):
    """A durable pull consumer shared by all replicas of one service."""

    name: str
    stream: str
    filter_subjects: tuple[str, ...]
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 1000
    # "all": a new durable starts at the beginning of the stream; "new": only what comes after
    # it was created (an alarm watcher has no use for yesterday's detections).
    deliver: Literal["all", "new"] = "all"


FRAMES = Stream(
    name="FRAMES",
    subjects=(subjects.ALL_FRAMES,),
    description="Sampled camera frames (JPEG payload, metadata in headers); the evidence window.",
    max_age_s=10 * MINUTE,
    max_bytes=4 * 1024**3,
    max_msg_size=8 * 1024**2,
    allow_direct=True,
)
DETECTIONS = Stream(
    name="DETECTIONS",
    subjects=(subjects.ALL_DETECTIONS,),
    description="Vehicles and plates found in each frame.",
    max_age_s=1 * DAY,
)


def _legal_record(*, name: str, subjects: tuple[str, ...], description: str) -> Stream:
    """Part of the legal record: kept LEGAL_RECORD_S, and a republished event (same id) within a
    day is stored once."""
    return Stream(name=name, subjects=subjects, description=description, max_age_s=LEGAL_RECORD_S,
                  duplicate_window_s=1 * DAY)


VIOLATIONS = _legal_record(
    name="VIOLATIONS",
    subjects=(
        subjects.ALL_VIOLATIONS_DETECTED,
        subjects.ALL_VIOLATIONS_IDENTIFIED,
        subjects.ALL_VIOLATIONS_UNIDENTIFIED,
        subjects.ALL_HOTLIST_HITS,
    ),
    description="Violations as detected, then identified or not by the registry; hotlist hits.",
)
CASES = _legal_record(
    name="CASES",
    subjects=(subjects.ALL_CASES_REVIEWED, subjects.ALL_CASES_RESOLVED),
    description="Police decisions on cases and their resolution.",
)
NOTICES = _legal_record(
    name="NOTICES",
    subjects=(subjects.ALL_NOTICES_SENT, subjects.ALL_NOTICES_FAILED, subjects.ALL_NOTICES_HELD),
    description="Notices sent to owners, communes and the inspection registry, failures, and cases held.",
)
TELEMETRY = Stream(
    name="TELEMETRY",
    subjects=(subjects.ALL_VEHICLES_COUNTED, subjects.ALL_CAMERA_STATUS, subjects.ALL_SIGNAL_PHASES),
    description="Traffic counts, camera health and signal phases.",
    max_age_s=7 * DAY,
)
INCIDENTS = Stream(
    name="INCIDENTS",
    subjects=(subjects.ALL_INCIDENTS_DETECTED, subjects.ALL_INCIDENTS_UPDATED, subjects.ALL_INCIDENTS_CLEARED),
    description="Incidents on the road (stopped vehicle, pedestrian on the carriageway, wrong way, congestion).",
    max_age_s=90 * DAY,
    duplicate_window_s=1 * DAY,
)
DEAD_LETTERS = Stream(
    name="DEAD_LETTERS",
    subjects=(subjects.ALL_DEAD_LETTERS,),
    description="Messages a service could not use, with the reason and the original payload.",
    max_age_s=30 * DAY,
    duplicate_window_s=1 * DAY,
)


def _kept_forever(*, name: str, subject: str, description: str) -> Stream:
    """No age or size limit, no delete, no purge: a record nothing may take out of the stream."""
    return Stream(name=name, subjects=(subject,), description=description, max_age_s=0,
                  duplicate_window_s=1 * DAY, deny_delete=True, deny_purge=True)


# The signed heads of the audit chains, kept forever so that rows cut off the end of an audit
# table, or a rewritten chain, are found by `roadwatch audit verify`.
AUDIT_ANCHORS = _kept_forever(
    name="AUDIT_ANCHORS",
    subject=subjects.ALL_AUDIT_ANCHORS,
    description="Signed heads of the audit chains; never deleted or purged.",
)

# Which detector version was in service when: evidence names the model that produced it, so
# the record of promotions (who, why, forced or not) is kept like the audit anchors. The last
# message per subject is the version in service (detect reads it at start and follows it).
MODELS = _kept_forever(
    name="MODELS",
    subject=subjects.ALL_MODELS_PROMOTED,
    description="Detector model promotions and rollbacks; the last per model is the one in service. Never deleted.",
)

ALL: tuple[Stream, ...] = (
    FRAMES, DETECTIONS, VIOLATIONS, CASES, NOTICES, TELEMETRY, INCIDENTS, DEAD_LETTERS, AUDIT_ANCHORS, MODELS,
)
BY_NAME: dict[str, Stream] = {stream.name: stream for stream in ALL}

# Durable consumers, named after the service that owns them.
# A short ack_wait: the frames a killed replica held come back after 6 s, fresh enough for detect
# (MAX_FRAME_AGE_S) and, since a starting replica waits one ack_wait first, before newer frames
# (track needs a camera's frames in order). A live replica keeps the frames it holds longer than
# that with in-progress acks (bus.Consumer keep_alive).
DETECT = Consumer(
    name="detect", stream="FRAMES", filter_subjects=(subjects.ALL_FRAMES,),
    ack_wait_s=6.0, max_deliver=3, max_ack_pending=256,
)
# track has one durable consumer per camera, `track-<camera_id>` filtered on that camera's
# detections, created by the replica that owns the camera (services/track/partition.py).
TRACK_PREFIX = "track-"
# A violation waits out a PostgreSQL failover instead of becoming a dead letter.
REGISTRY = Consumer(
    name="registry", stream="VIOLATIONS", filter_subjects=(subjects.ALL_VIOLATIONS_DETECTED,), max_deliver=20,
)
REGISTRY_HOTLIST = Consumer(
    name="registry-hotlist", stream="DETECTIONS", filter_subjects=(subjects.ALL_DETECTIONS,), deliver="new",
)
PORTAL = Consumer(
    name="portal", stream="VIOLATIONS",
    filter_subjects=(subjects.ALL_VIOLATIONS_IDENTIFIED, subjects.ALL_VIOLATIONS_UNIDENTIFIED),
)
PORTAL_NOTICES = Consumer(name="portal-notices", stream="NOTICES",
                          filter_subjects=(subjects.ALL_NOTICES_SENT, subjects.ALL_NOTICES_FAILED,
                                           subjects.ALL_NOTICES_HELD))
PORTAL_TELEMETRY = Consumer(
    name="portal-telemetry", stream="TELEMETRY",
    filter_subjects=(subjects.ALL_VEHICLES_COUNTED, subjects.ALL_CAMERA_STATUS, subjects.ALL_SIGNAL_PHASES),
)
# The operations board's incidents (detected, updated, cleared), folded into portal.incidents.
PORTAL_INCIDENTS = Consumer(
    name="portal-incidents", stream="INCIDENTS",
    filter_subjects=(subjects.ALL_INCIDENTS_DETECTED, subjects.ALL_INCIDENTS_UPDATED, subjects.ALL_INCIDENTS_CLEARED),
)
NOTIFY = Consumer(name="notify", stream="CASES", filter_subjects=(subjects.ALL_CASES_REVIEWED, subjects.ALL_CASES_RESOLVED))
# Alerts for new incidents (and their end): from new ones on, since an alert about last week's
# stopped vehicle is noise when the durable is first created. Recording is one insert: no long ack wait.
NOTIFY_INCIDENTS = Consumer(
    name="notify-incidents", stream="INCIDENTS",
    filter_subjects=(subjects.ALL_INCIDENTS_DETECTED, subjects.ALL_INCIDENTS_CLEARED), max_deliver=20, deliver="new",
)

CONSUMERS: tuple[Consumer, ...] = (
    DETECT, REGISTRY, REGISTRY_HOTLIST, PORTAL, PORTAL_NOTICES, PORTAL_TELEMETRY, PORTAL_INCIDENTS, NOTIFY,
    NOTIFY_INCIDENTS,
)
