"""The case state machine: pure rules, and the database enforcing the same table."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import asyncpg
import pytest

from services.portal import cases, materialise, store
from portal_samples import LACH_TRAY, identified, unidentified


def test_transitions_follow_design():
    # DESIGN.md §4: detected → identified | unidentified → confirmed | rejected → notified → resolved, + warned
    assert cases.next_states("identified") == ("confirmed", "merged", "rejected")
    assert cases.next_states("unidentified") == ("confirmed", "merged", "rejected")
    assert cases.next_states("confirmed") == ("merged", "notified", "resolved")
    assert cases.next_states("merged") == ()  # final: merged into the case of the same event
    assert cases.next_states("notified") == ("resolved", "warned")
    assert cases.next_states("warned") == ("resolved",)
    assert cases.next_states("rejected") == () and cases.next_states("resolved") == ()
    assert not cases.allowed("identified", "notified")  # no notice before a police decision


def test_notice_effects():
    assert cases.state_after_notice("confirmed", "owner_notice") == "notified"
    assert cases.state_after_notice("notified", "owner_notice") is None  # another channel of the same notice
    assert cases.state_after_notice("notified", "inspection_warning") == "warned"
    assert cases.state_after_notice("resolved", "inspection_lifted") is None
    assert cases.state_after_notice("identified", "owner_notice") is None


@pytest.mark.parametrize("typed, printed", [
    ("15a12345", "15A-123.45"), ("15A-123.45", "15A-123.45"), ("30g 1234", "30G-1234"),
    ("29-B1 123.45", "29-B1 123.45"), ("29b112345", "29-B1 123.45"), ("15-A1 2345", "15-A1 2345"), ("51LD 123.45", "51LD-123.45"),
])
def test_plate_formatting(typed, printed):
    assert cases.format_plate(typed) == printed
    assert cases.format_plate(typed, "car") == printed
    assert cases.plate_key(printed) == cases.plate_key(typed)


@pytest.mark.parametrize("bad", ["", "ABC", "05A-123.45", "15A-12", "15-123.45", "1SA12345"])
def test_bad_plates_refused(bad):
    with pytest.raises(ValueError):
        cases.format_plate(bad)


def test_materialise_identified_keeps_owner_apart():
    row, owner = materialise.case_from_identified(identified("cam-a", 1))
    assert row["state"] == "identified" and row["plate"] == "15A-123.45" and row["plate_key"] == "15A12345"
    assert row["owner_commune"] == LACH_TRAY
    assert owner["name"] == "Nguyễn Văn An"
    assert not any(owner["name"] in str(v) or owner["national_id"] in str(v) for v in row.values())


def test_materialise_unidentified_without_plate():
    row = materialise.case_from_unidentified(unidentified("cam-a", 2, plate=None))
    assert row["state"] == "unidentified" and row["plate"] == "" and row["plate_read"] is None
    assert row["unidentified_reason"] == "no_read"


async def test_database_table_matches_code(portal_url):
    conn = await asyncpg.connect(portal_url)
    try:
        rows = await conn.fetch("SELECT from_state, to_state FROM portal.case_transitions")
        assert {(r["from_state"], r["to_state"]) for r in rows} == cases.TRANSITIONS
        assert {r["state"] for r in await conn.fetch("SELECT state FROM portal.case_states")} == set(cases.STATES)
        opened = {r["state"] for r in await conn.fetch("SELECT state FROM portal.case_states WHERE open")}
        assert opened == cases.OPEN
    finally:
        await conn.close()


async def test_database_refuses_every_other_transition(portal_url):
    """Every (from, to) pair is tried on a real row: allowed ones pass, others raise and leave the row as it was."""
    conn = await asyncpg.connect(portal_url)
    try:
        row, owner = materialise.case_from_identified(identified("cam-sm", 5000))
        target = await store.insert_case(conn, row, owner, "Asia/Ho_Chi_Minh")
        for n, (frm, to) in enumerate(itertools.product(cases.STATES, cases.STATES)):
            if frm == to:
                continue
            row, owner = materialise.case_from_identified(identified("cam-sm", n))
            async with conn.transaction():
                case_id = await store.insert_case(conn, row, owner, "Asia/Ho_Chi_Minh")
                # Walk to `frm` along allowed edges (bypassing nothing: each step is a checked UPDATE).
                path = {"identified": [], "confirmed": ["confirmed"], "rejected": ["rejected"],
                        "notified": ["confirmed", "notified"], "warned": ["confirmed", "notified", "warned"],
                        "resolved": ["confirmed", "resolved"]}.get(frm)
                if path is None:  # detected / unidentified: not reachable from identified
                    continue
                for step in path:
                    await store.update_case(conn, case_id, state=step,
                                            reject_reason="x" if step == "rejected" else None)
            extra = {}
            if to == "merged":  # into another open case; a confirmed one only while notify holds it
                extra["merged_into"] = target
                if frm == "confirmed":
                    await store.update_case(conn, case_id, notice_hold="possible_duplicate")
            before = await store.get_case(conn, case_id)
            if cases.allowed(frm, to):
                async with conn.transaction():
                    await store.update_case(conn, case_id, state=to, reject_reason="x" if to == "rejected" else None,
                                            **extra)
                assert (await store.get_case(conn, case_id))["state"] == to
            else:
                with pytest.raises(store.TransitionRefused):
                    async with conn.transaction():
                        await store.update_case(conn, case_id, state=to, reviewer="someone")
                after = await store.get_case(conn, case_id)
                assert after == before, f"{frm} -> {to} was half-applied"
        # A reviewed case cannot be reviewed again, even into the state it is in.
        row, owner = materialise.case_from_identified(identified("cam-sm", 1000))
        confirmed = await store.insert_case(conn, row, owner, "Asia/Ho_Chi_Minh")
        await store.update_case(conn, confirmed, state="confirmed", reviewer="first",
                                reviewed_at=datetime.now(timezone.utc))
        before = await store.get_case(conn, confirmed)
        with pytest.raises(store.TransitionRefused, match="already reviewed by first"):
            await store.update_case(conn, confirmed, state="confirmed", reviewer="second",
                                    reviewed_at=datetime.now(timezone.utc))
        assert await store.get_case(conn, confirmed) == before
        # A review is a move out of identified / unidentified, not a stamp on another state.
        notified = await conn.fetchval("SELECT case_id FROM portal.cases WHERE state = 'notified' AND reviewed_at IS NULL"
                                       " LIMIT 1")
        with pytest.raises(store.TransitionRefused, match="a review moves"):
            await store.update_case(conn, notified, reviewer="x", reviewed_at=datetime.now(timezone.utc))
        # A finished case cannot be edited at all, even without a change of state.
        resolved = await conn.fetchval("SELECT case_id FROM portal.cases WHERE state = 'resolved' LIMIT 1")
        with pytest.raises(store.TransitionRefused):
            await store.update_case(conn, resolved, plate="15A-999.99")
        # And a case cannot be born confirmed.
        row, owner = materialise.case_from_identified(identified("cam-sm", 999))
        row["state"] = "confirmed"
        with pytest.raises(asyncpg.PostgresError):
            await store.insert_case(conn, row, owner, "Asia/Ho_Chi_Minh")
    finally:
        await conn.close()


async def test_case_numbers_and_idempotent_insert(portal_url):
    conn = await asyncpg.connect(portal_url)
    try:
        row, owner = materialise.case_from_identified(identified("cam-num", 1))
        first = await store.insert_case(conn, row, owner, "Asia/Ho_Chi_Minh")
        assert first is not None and first.startswith("CASE-2026-")
        assert await store.insert_case(conn, row, owner, "Asia/Ho_Chi_Minh") is None  # replay
        assert await conn.fetchval("SELECT count(*) FROM portal.cases") == 1
        assert [h["to_state"] for h in await store.history(conn, first)] == ["identified"]
    finally:
        await conn.close()
