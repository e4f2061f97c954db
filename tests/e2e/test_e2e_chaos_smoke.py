"""Smoke test of the system-run machinery (bench/system/stack.py, used by `make chaos` and the
bad-input run): the portal killed with SIGKILL while violations and garbage arrive opens exactly
one case per violation after its restart, and every piece of garbage is a dead letter with a
reason. The full runs are chaos/chaos_run.py and bench/system/bad_input.py."""

from __future__ import annotations

import asyncio
import collections
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nats

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.system.stack import Stack  # noqa: E402
from proto import codec, ids, streams, subjects  # noqa: E402
from proto.v1 import DeadLetter, ViolationIdentified  # noqa: E402
from proto.v1.common import Location, PlateText  # noqa: E402
from proto.v1.violation import Owner, Vehicle, ViolationDetected  # noqa: E402
from services.runtime import bus  # noqa: E402

CAMERA = "smoke-cam"
ICT = timezone(timedelta(hours=7))


def identified(i: int) -> ViolationIdentified:
    at = datetime(2026, 11, 29, 7, 0, tzinfo=ICT) + timedelta(seconds=i)
    plate = f"15A-{100 + i:03d}.{i % 100:02d}"
    v = ViolationDetected(id=ids.event_id("vio", CAMERA, i), camera_id=CAMERA, occurred_at=at, type="red_light",
                          location=Location(latitude=20.84, longitude=106.68, commune_code="11311"),
                          vehicle_class="car", track_id=i, plate=PlateText(text=plate, confidence=0.9, format_valid=True))
    bare = plate.replace("-", "").replace(".", "")
    return ViolationIdentified(id=ids.event_id("idf", v.id), camera_id=CAMERA, occurred_at=at, violation=v,
                               vehicle=Vehicle(plate=bare, plate_printed=plate, vehicle_type="car"),
                               owner=Owner(kind="person", name=f"Chủ xe {i}", commune_code="11311"),
                               match="exact", matched_plate=bare)


async def test_portal_killed_mid_stream_opens_each_case_once_and_dead_letters_garbage() -> None:
    async with Stack("smoke") as stack:
        stack.add("portal")
        await stack.ready("portal")
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()
        subject = subjects.violation_identified(CAMERA, "red_light")
        events = [identified(i) for i in range(40)]
        for i, event in enumerate(events):
            await js.publish(subject, codec.encode(event), headers={bus.MSG_ID: event.id})
            await js.publish(subject, b"\x00garbage" if i % 2 else b'{"id": 1}', headers={bus.MSG_ID: f"junk-{i}"})
            if i == 20:
                stack.kill9("portal")
                stack.restart("portal")
        # Replays of the same events (an upstream restart) change nothing.
        for event in events[:10]:
            await js.publish(subject, codec.encode(event))
        await stack.ready("portal")
        conn = await stack.connect(stack.url)
        try:
            for _ in range(300):
                count = await conn.fetchval("SELECT count(*) FROM portal.cases WHERE camera_id = $1", CAMERA)
                if count >= len(events):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            rows = await conn.fetch("SELECT violation_id FROM portal.cases WHERE camera_id = $1", CAMERA)
        finally:
            await conn.close()
        per_violation = collections.Counter(r["violation_id"] for r in rows)
        assert set(per_violation) == {e.violation.id for e in events}
        assert max(per_violation.values()) == 1
        letters = []
        sub = await js.subscribe(subjects.dlq("portal"), ordered_consumer=True, deliver_policy="all")
        # Garbage the killed portal had fetched comes back after the consumer's ack_wait.
        wait_s = streams.PORTAL.ack_wait_s + 15
        while len(letters) < len(events):
            letters.append(codec.decode((await sub.next_msg(timeout=wait_s)).data, DeadLetter))
        await sub.unsubscribe()
        assert collections.Counter(d.error for d in letters) == {"decode": 20, "invalid": 20}
        assert all(d.reason and d.consumer == "portal" for d in letters)
        assert all(ok and h == r == 200 for ok, h, r in (await stack.health()).values())
        await nc.close()
