"""Incidents on a real PostgreSQL and a real nats-server: detected / updated / cleared folded into
one row whatever the order they arrive in, each event applied once."""

from __future__ import annotations

import itertools
from datetime import datetime

import asyncpg
import pytest

from portal_samples import ICT, incident_events, publish_incident
from services.portal import handlers
from services.runtime import db

START = datetime(2026, 11, 20, 8, 5, 0, tzinfo=ICT)

# What the board shows of an incident; created_at / changed_at / last_event_id depend on the order.
SHOWN = ("incident_id", "camera_id", "type", "severity", "detected", "latitude", "longitude", "address", "lane", "zone",
         "occurred_at", "detected_at", "updated_at", "cleared_at", "clear_reason", "duration_s", "track_ids",
         "vehicle_class", "traffic", "parameters", "evidence", "evidence_status", "last_change")


async def _row(conn: asyncpg.Connection, incident_id: str) -> dict:
    row = await conn.fetchrow(f"SELECT {', '.join(SHOWN)} FROM portal.incidents WHERE incident_id = $1", incident_id)
    assert row is not None, f"no row for {incident_id}"
    return {k: row[k] for k in SHOWN if k != "incident_id"}


@pytest.mark.parametrize("type_", ["stopped_vehicle", "congestion"])
async def test_events_fold_to_the_same_incident_in_every_order(portal_url, unique, type_):
    pool = await db.create_pool(portal_url, max_size=2)
    try:
        finals = {}
        for n, order in enumerate(itertools.permutations(range(3))):
            events = incident_events(f"cam-{unique}", n, type_=type_, start=START)
            for i in order:
                assert await handlers.on_incident(pool, events[i]) is True
            # A redelivery of any of them, after the fact, changes nothing.
            for event in events:
                assert await handlers.on_incident(pool, event) is False
            async with pool.acquire() as conn:
                row = await _row(conn, events[0].incident_id)
                applied = await conn.fetchval("SELECT count(*) FROM portal.incident_events WHERE incident_id = $1",
                                              events[0].incident_id)
            assert applied == 3
            finals[order] = row
        in_order = finals[(0, 1, 2)]
        detected, updated, cleared = incident_events(f"cam-{unique}", 0, type_=type_, start=START)
        # In order: the detected's place and evidence, the update's severity, the clearing's end.
        assert in_order["detected"] is True and in_order["address"].startswith("Ngã tư Lạch Tray")
        assert in_order["occurred_at"] == detected.occurred_at and in_order["detected_at"] == detected.detected_at
        assert in_order["severity"] == "critical" and in_order["updated_at"] == updated.occurred_at
        assert in_order["cleared_at"] == cleared.occurred_at and in_order["clear_reason"] == "resolved"
        assert in_order["duration_s"] == 200.0
        if type_ == "congestion":
            assert '"level": "jammed"' in in_order["traffic"] and in_order["last_change"] == "level heavy -> jammed"
        else:
            assert in_order["traffic"] is None and in_order["track_ids"] == [40] and in_order["vehicle_class"] == "car"
        # The track ids differ with n (one vehicle per incident); everything else must not.
        for row in finals.values():
            row.pop("track_ids")
        for order, row in finals.items():
            differing = {k for k in row if row[k] != in_order[k]}
            assert not differing, (order, {k: (row[k], in_order[k]) for k in differing})
    finally:
        await pool.close()


async def test_an_update_before_its_detection_is_kept(portal_url, unique):
    """A redelivered `detected` arriving after its `updated`: the newer severity stays, the
    detection still brings the place and the start."""
    pool = await db.create_pool(portal_url, max_size=2)
    try:
        detected, updated, _ = incident_events(f"cam-{unique}", 7)
        assert await handlers.on_incident(pool, updated)
        async with pool.acquire() as conn:
            early = await _row(conn, updated.incident_id)
        # Shown at once, as far as it is known: the camera, the type, the newest severity.
        assert early["detected"] is False and early["severity"] == "critical" and early["occurred_at"] is None
        assert await handlers.on_incident(pool, detected)
        async with pool.acquire() as conn:
            row = await _row(conn, updated.incident_id)
        assert row["detected"] is True and row["severity"] == "critical" and row["duration_s"] == 120.0
        assert row["occurred_at"] == detected.occurred_at and row["lane"] == "lane-2"
        assert row["cleared_at"] is None
    finally:
        await pool.close()


async def test_consumer_applies_incident_events_from_nats(portal_url, start_portal, js, wait_for):
    running = await start_portal(portal_url)
    detected, updated, cleared = incident_events(running.camera, 1)
    # Out of order on the bus: the clearing first, then the detection, then the update.
    for event in (cleared, detected, updated):
        await publish_incident(js, event)
    # The same detection again under another message id: past JetStream's duplicate window,
    # so only the portal's own idempotency keeps it from being applied twice.
    await publish_incident(js, detected, msg_id=detected.id + "-again")

    conn = await asyncpg.connect(portal_url)
    try:
        async def settled():
            n = await conn.fetchval("SELECT count(*) FROM portal.incident_events WHERE incident_id = $1",
                                    detected.incident_id)
            row = await conn.fetchrow("SELECT detected, severity, cleared_at, duration_s FROM portal.incidents "
                                      "WHERE incident_id = $1", detected.incident_id)
            return row if n == 3 and row["detected"] and row["severity"] == "critical" else None

        row = await wait_for(settled, timeout=15, what="three incident events applied")
        assert row["cleared_at"] == cleared.occurred_at and row["duration_s"] == 200.0
        # Every message acknowledged, including the duplicate: nothing left for redelivery.
        info = await js.consumer_info("INCIDENTS", f"portal-incidents-{running.camera[4:]}")

        async def drained():
            i = await js.consumer_info("INCIDENTS", f"portal-incidents-{running.camera[4:]}")
            return i.num_ack_pending == 0 and i.num_pending == 0 and i.delivered.stream_seq >= 4 or None

        await wait_for(drained, timeout=10, what="incident consumer drained")
        assert info.config.filter_subjects == [f"traffic.incident.*.v1.{running.camera}.>"]
        assert await conn.fetchval("SELECT count(*) FROM portal.incident_events WHERE incident_id = $1",
                                   detected.incident_id) == 3
    finally:
        await conn.close()
