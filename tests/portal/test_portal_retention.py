"""Retention with an injected clock: each data class is purged when due and not before, an image
still needed by another case is kept, every purge leaves one audit line, and a re-run does nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import asyncpg
import nats.js.errors
import pytest

from portal_samples import case_for, identified, publish_violation, put_evidence
from services.portal import audit, retention
from services.runtime import db

POLICY = retention.Policy(rejected_evidence=90, closed_evidence=365, owner_snapshot=180)


async def test_purge_by_data_class_with_an_injected_clock(portal_url, start_portal, js, street_dir, wait_for):
    running = await start_portal(portal_url)
    police = running.headers("police")
    # Three cases on the same frame (content-addressed: one object), each with its own plate crop.
    refs = [await put_evidence(js, street_dir, bucket=running.bucket, crop=(405 + 5 * n, 585, 505, 635))
            for n in range(3)]
    frame_sha = refs[0][0].sha256
    assert {r[0].sha256 for r in refs} == {frame_sha} and len({r[1].sha256 for r in refs}) == 3
    events = [identified(running.camera, n + 1, plate=f"15A-777.{10 + n}", evidence=refs[n]) for n in range(3)]
    for event in events:
        await publish_violation(js, event)
    rejected, resolved, still_open = [(await wait_for(lambda e=e: case_for(portal_url, e.violation.id)))["case_id"]
                                      for e in events]
    base = running.base
    async with running.http.post(f"{base}/api/cases/{rejected}/review", headers=police,
                                 json={"decision": "rejected", "reason": "plate_unreadable"}) as r:
        assert r.status == 200
    async with running.http.post(f"{base}/api/cases/{resolved}/review", headers=police,
                                 json={"decision": "confirmed"}) as r:
        assert r.status == 200
    async with running.http.post(f"{base}/api/cases/{resolved}/resolve", headers=police, json={"resolution": "paid"}) as r:
        assert r.status == 200
    now = datetime.now(timezone.utc)
    store = await js.object_store(running.bucket)
    pool = await db.create_pool(portal_url, max_size=2)
    conn = await asyncpg.connect(portal_url)

    async def exists(sha: str) -> bool:
        try:
            await store.get_info(sha)
            return True
        except nats.js.errors.ObjectNotFoundError:
            return False

    async def purge_lines() -> list[str]:
        return [r["object"] for r in await conn.fetch("SELECT object FROM portal.audit WHERE action = 'purge' ORDER BY seq")]

    async def owners() -> set[str]:
        return {r["case_id"] for r in await conn.fetch("SELECT case_id FROM portal.owners")}

    try:
        assert await retention.purge(pool, store, POLICY, now + timedelta(days=89)) == []  # not due yet

        done = await retention.purge(pool, store, POLICY, now + timedelta(days=91))
        crop_rejected = refs[0][1].sha256
        assert [(d.data_class, d.case_id, d.object) for d in done] == [("rejected_evidence", rejected, crop_rejected)]
        assert not await exists(crop_rejected)
        assert await exists(frame_sha)  # the same frame is evidence of the open case
        assert await purge_lines() == [f"rejected_evidence:{rejected}/{crop_rejected}"]
        async with running.http.get(f"{base}/api/cases/{rejected}/evidence/{crop_rejected}", headers=police) as r:
            assert r.status == 404
        assert await retention.purge(pool, store, POLICY, now + timedelta(days=91)) == []  # a re-run: nothing
        assert len(await purge_lines()) == 1

        done = await retention.purge(pool, store, POLICY, now + timedelta(days=181))
        assert sorted((d.data_class, d.case_id) for d in done) == sorted(
            [("owner_snapshot", rejected), ("owner_snapshot", resolved)])
        assert await owners() == {still_open}  # the open case keeps its owner

        done = await retention.purge(pool, store, POLICY, now + timedelta(days=366))
        crop_resolved = refs[1][1].sha256
        assert [(d.data_class, d.case_id, d.object) for d in done] == [("closed_evidence", resolved, crop_resolved)]
        assert not await exists(crop_resolved) and await exists(frame_sha) and await exists(refs[2][1].sha256)
        lines = await purge_lines()
        assert len(lines) == 4 and len(set(lines)) == 4
        row = await conn.fetchrow("SELECT user_id, role, purpose FROM portal.audit WHERE action = 'purge' LIMIT 1")
        assert row["user_id"] == "retention" and "90 ngày" in row["purpose"]
        assert (await audit.verify(conn)).ok  # the purges are links of the same chain

        # Keeping forever: 0 days never purges.
        assert await retention.purge(pool, store, retention.Policy(0, 0, 0), now + timedelta(days=10_000)) == []
    finally:
        await conn.close()
        await pool.close()


def test_retention_settings_are_checked():
    from services.portal.settings import Settings
    from services.runtime.settings import SettingError

    with pytest.raises(SettingError, match="RETENTION_OWNER_SNAPSHOT_DAYS"):
        Settings(database_url="postgresql://x/y", retention_owner_snapshot_days=-1)
