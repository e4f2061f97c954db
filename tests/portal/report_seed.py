"""Synthetic cases, notices, camera history and counts for the coordination report, written
through the portal's own store functions (the same SQL the consumers run) into a real PostgreSQL.

The week reported is Mon 16 – Sun 22 November 2026 (Hà Nội time). Cases start five weeks before,
so that notice deadlines (10 days) and resolution deadlines (20 days after the notice) fall in the
week, some met and some missed. A seeded generator: the same data on every run.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import asyncpg

from proto import ids
from proto.v1 import CameraStatus
from services.portal import materialise, store
from portal_samples import ICT, LACH_TRAY, OTHER_COMMUNE, identified, unidentified

TZ = "Asia/Ho_Chi_Minh"
WEEK = (datetime(2026, 11, 16, tzinfo=ICT), datetime(2026, 11, 23, tzinfo=ICT))
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=ICT)  # when the seeded history ends
CAMERAS = {"hp-cam-01": "Ngã tư Lạch Tray – Văn Cao, Ngô Quyền", "hp-cam-02": "Nút giao Cầu Rào, Lê Chân",
           "hp-cam-03": "Đường Nguyễn Văn Linh, Lê Chân"}
TYPES = ("red_light", "wrong_lane", "wrong_way", "no_stopping", "speeding")
CLASSES = ("car", "motorcycle", "truck", "bus")
CHANNELS = ("email", "post", "sms")


async def seed_cases(conn: asyncpg.Connection, seed: int = 19, count: int = 480) -> None:
    rng = random.Random(seed)
    first = WEEK[0] - timedelta(days=35)
    span = (WEEK[1] - first).total_seconds()
    for n in range(count):
        camera = rng.choice(list(CAMERAS))
        at = first + timedelta(seconds=rng.uniform(0, span))
        kind = rng.choice(TYPES)
        commune = rng.choice((LACH_TRAY, OTHER_COMMUNE))
        if rng.random() < 0.8:
            row, owner = materialise.case_from_identified(
                identified(camera, n, plate=f"15A-{n:03d}.{n % 100:02d}", owner_commune=commune, type_=kind, at=at))
        else:
            row, owner = materialise.case_from_unidentified(unidentified(camera, n, type_=kind, at=at)), None
        row.update(address=CAMERAS[camera], vehicle_class=rng.choice(CLASSES))
        case_id = await store.insert_case(conn, row, owner, TZ)
        await progress(conn, rng, case_id, at)


async def progress(conn: asyncpg.Connection, rng: random.Random, case_id: str, at: datetime) -> None:
    """Review, notices (on time or late, some failing), resolution or the inspection warning."""
    fate = rng.random()
    reviewed = at + timedelta(hours=rng.uniform(2, 200))
    if fate < 0.12 or reviewed > NOW:
        return  # still awaiting review
    if fate < 0.24:
        await store.update_case(conn, case_id, state="rejected", reviewer="csgt-binh", reviewer_agency="hp-csgt",
                                reviewed_at=reviewed, reject_reason="not_a_violation")
        return
    await store.update_case(conn, case_id, state="confirmed", reviewer="csgt-binh", reviewer_agency="hp-csgt",
                            reviewed_at=reviewed)
    if fate < 0.28:
        return  # confirmed, no notice yet
    if fate < 0.31:
        await store.update_case(conn, case_id, state="resolved", resolved_at=reviewed + timedelta(days=1),
                                resolution="paid")
        return  # paid before any notice: owes none
    # the first notice: mostly within 10 days of the violation, a share later
    sent = at + timedelta(days=rng.uniform(1.5, 9.5) if rng.random() < 0.7 else rng.uniform(10.5, 16))
    sent = max(sent, reviewed + timedelta(hours=1))
    if sent > NOW:
        return
    channels = rng.sample(CHANNELS, rng.randint(1, 3))
    respond_by = sent + timedelta(days=20)
    for index, channel in enumerate(channels):
        failed = index > 0 and rng.random() < 0.25
        await store.record_notice(
            conn, event_id=ids.event_id("seed-notice", case_id, channel), case_id=case_id,
            notice_id=f"{case_id}-owner-{channel}", kind="owner_notice", channel=channel,
            outcome="failed" if failed else "sent", reason="smtp 550" if failed else "",
            recipient="" if failed else f"owner-{channel}", occurred_at=sent + timedelta(minutes=5 * index),
            respond_by=None if failed else respond_by)
    await store.update_case(conn, case_id, state="notified", notified_at=sent, respond_by=respond_by)
    resolved = sent + timedelta(days=rng.uniform(2, 19) if rng.random() < 0.6 else rng.uniform(21, 30))
    deadline = sent + timedelta(days=20)
    if resolved > deadline and deadline + timedelta(hours=1) <= NOW:
        warned = deadline + timedelta(minutes=rng.uniform(1, 50))
        await store.record_notice(
            conn, event_id=ids.event_id("seed-warning", case_id), case_id=case_id, notice_id=f"{case_id}-warning",
            kind="inspection_warning", channel="inspection_registry", outcome="sent", occurred_at=warned)
        await store.update_case(conn, case_id, state="warned", warned_at=warned)
    if resolved <= NOW:
        await store.update_case(conn, case_id, state="resolved", resolved_at=resolved, resolution="paid")


def status(camera: str, at: datetime, state: str, reason: str = "") -> CameraStatus:
    return CameraStatus(id=ids.event_id("seed-status", camera, at.isoformat()), camera_id=camera, occurred_at=at,
                        state=state, reason=reason)


CAMERA_HISTORY = [
    status("hp-cam-01", datetime(2026, 11, 10, 6, 0, tzinfo=ICT), "online"),
    status("hp-cam-02", datetime(2026, 11, 10, 6, 0, tzinfo=ICT), "online"),
    status("hp-cam-03", datetime(2026, 11, 10, 6, 0, tzinfo=ICT), "online"),
    status("hp-cam-02", datetime(2026, 11, 15, 22, 0, tzinfo=ICT), "offline", "connected but no frame for more than 3 s"),
    status("hp-cam-02", datetime(2026, 11, 16, 2, 30, tzinfo=ICT), "online"),
    status("hp-cam-01", datetime(2026, 11, 18, 23, 10, tzinfo=ICT), "degraded", "source delivers 1.8 fps, below the target 5 fps"),
    status("hp-cam-01", datetime(2026, 11, 19, 0, 40, tzinfo=ICT), "online"),
    status("hp-cam-03", datetime(2026, 11, 21, 14, 0, tzinfo=ICT), "offline", "connect failed: connection refused"),
    status("hp-cam-03", datetime(2026, 11, 24, 8, 0, tzinfo=ICT), "online"),
]


async def seed_telemetry(conn: asyncpg.Connection, seed: int = 19) -> None:
    rng = random.Random(seed)
    for event in CAMERA_HISTORY:
        await store.record_camera_status(conn, event)
        await store.record_camera_change(conn, event, event.id)
    start = WEEK[0] - timedelta(days=1)
    for camera in CAMERAS:
        for hour in range(9 * 24):
            window = start + timedelta(hours=hour)
            counts = [(cls, f"{line}:forward", rng.randint(0, 40)) for cls in ("car", "motorcycle", "truck")
                      for line in ("approach-north", "approach-south")]
            await store.record_counts(conn, event_id=ids.event_id("seed-count", camera, window.isoformat()),
                                      camera_id=camera, window_start=window, window_end=window + timedelta(hours=1),
                                      counts=counts)


INCIDENTS_TABLE = """CREATE TABLE IF NOT EXISTS portal.incidents (
    incident_id text PRIMARY KEY, camera_id text NOT NULL, type text NOT NULL, detected_at timestamptz NOT NULL,
    acknowledged_at timestamptz, closed_at timestamptz)"""


async def seed_incidents(conn: asyncpg.Connection, seed: int = 19) -> None:
    """Incidents as the operations board records them: into its table (migration 006) when the
    database has it, else into a table of the columns the report reads."""
    rng = random.Random(seed)
    await conn.execute(INCIDENTS_TABLE)
    columns = {r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'portal' AND table_name = 'incidents'")}
    for n in range(30):
        detected = WEEK[0] - timedelta(days=1) + timedelta(seconds=rng.uniform(0, 9 * 86400))
        ack = detected + timedelta(seconds=rng.uniform(20, 900)) if rng.random() < 0.85 else None
        closed = (ack + timedelta(minutes=rng.uniform(5, 120))) if ack and rng.random() < 0.8 else None
        row = {"incident_id": f"inc-{n}", "camera_id": rng.choice(list(CAMERAS)),
               "type": rng.choice(("stopped_vehicle", "congestion", "wrong_way_driving")), "detected_at": detected,
               "acknowledged_at": ack, "closed_at": closed}
        board = {"last_event_id": f"seed-{n}", "acknowledged_by": "ttdh-lan" if ack else None,
                 "closed_by": "ttdh-lan" if closed else None, "close_note": "đã xử lý" if closed else None,
                 "detected": True, "occurred_at": detected}
        row.update({k: v for k, v in board.items() if k in columns})
        names = list(row)
        await conn.execute(f"INSERT INTO portal.incidents ({', '.join(names)}) "
                           f"VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))})", *row.values())
