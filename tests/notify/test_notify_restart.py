"""Notify killed (SIGKILL) in the middle of sending, then started again: no notice is lost, and
no notice is recorded or announced twice. The one thing a crash can repeat is the message the
mail server accepted while notify died before recording it; it is resent with the same
Message-ID (the idempotency key a receiver deduplicates on), and the test holds exactly those
messages at the server at the moment of the kill to prove that only they are repeated."""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from notify_samples import EXAMPLE, case, owner, vehicle
from notify_servers import SmtpSink, migrate, register, start_registry
from proto import codec, subjects
from proto.v1 import NoticeSent
from services import localstack
from services.notify import decisions, mail
from services.runtime import bus

CASES = 16


def start(repo: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.cli", "notify"], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))


async def sent_events(js, camera: str) -> list[NoticeSent]:
    sub = await js.subscribe(f"traffic.notice.sent.v1.{camera}.*", ordered_consumer=True, deliver_policy="all")
    found = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except Exception:
                break
            found.append(codec.decode(msg.data, NoticeSent))
    finally:
        await sub.unsubscribe()
    return found


async def test_killed_while_sending_loses_nothing_and_repeats_nothing(
        nats_url, database_url, unique, js, tmp_path, repo_dir, wait_for):
    await migrate(database_url)
    camera = f"cam-{unique}"
    base = int(unique[:5], 16) % 10000
    cases = []
    for number in range(CASES):
        plate = f"15A{(base * 10 + number) % 100000:05d}"
        await register(database_url, vehicle(plate=plate, printed=f"15A-{plate[3:6]}.{plate[6:]}"),
                       owner(email=f"owner{number}-{unique}@example.vn", national_id=f"0311{base:04d}{number:04d}"))
        cases.append(case(f"K-{unique}-{number:02d}", camera=camera, plate=plate))
    lookup_subject, registry_stop, registry_task = await start_registry(nats_url, database_url, unique)
    smtp = await SmtpSink().start()
    smtp.hold, smtp.hold_after = asyncio.Event(), 5
    config_file = tmp_path / "notify.yaml"
    config_file.write_text(EXAMPLE.read_text(encoding="utf-8").replace("channels: [email, sms, post]",
                                                                       "channels: [email]"), encoding="utf-8")
    port = localstack.free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NATS_URL": nats_url, "DATABASE_URL": database_url,
        "HTTP_PORT": str(port), "LOG_LEVEL": "INFO", "NOTIFY_CONFIG": str(config_file),
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "POST_SPOOL_DIR": str(tmp_path / "post"),
        "REGISTRY_LOOKUP_SUBJECT": lookup_subject, "CONSUMER_NAME": f"notify-{unique}",
        # Its own incident consumer too: the shared durable one holds other tests' incidents,
        # whose alerts would reach this mail server.
        "INCIDENT_CONSUMER_NAME": f"notify-incidents-{unique}",
        "CONSUMER_FILTER": f"traffic.case.reviewed.v1.{camera}.>,traffic.case.resolved.v1.{camera}",
        "SEND_CONCURRENCY": "4", "LEASE_S": "2", "ACK_WAIT_S": "2", "POLL_INTERVAL_S": "0.05",
    }
    log = tmp_path / "notify.log"
    process = start(repo_dir, env, log)
    try:
        for reviewed in cases:
            await js.publish(subjects.case_reviewed(camera, "confirmed"), codec.encode(reviewed),
                             headers={bus.MSG_ID: reviewed.id})
        # Kill while the mail server holds messages it has received but not yet answered.
        await wait_for(lambda: _is_set(smtp.holding), timeout=60, what="notify to be sending")
        # Every send slot of notify (SEND_CONCURRENCY) is now stuck at the server.
        await wait_for(lambda: _equals(lambda: smtp.held, 4), timeout=30, what="four messages held")
        in_flight = smtp.held
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        accepted_before_kill = len(smtp.mails)
        held_ids = None
        smtp.hold.set()  # the server goes on and accepts what it held: notify never heard the 250
        smtp.hold_after = None
        await wait_for(lambda: _equals(lambda: len(smtp.mails), accepted_before_kill + in_flight),
                       what="the held messages to be accepted")
        held_ids = {m.message["Message-ID"] for m in smtp.mails[accepted_before_kill:]}

        process = start(repo_dir, env, log)
        expected = {decisions.notice_id(c.case_id, "owner_notice", "email") for c in cases}

        async def all_sent():
            return {e.notice_id for e in await sent_events(js, camera)} == expected

        await wait_for(all_sent, timeout=60, what="every notice to be sent after the restart")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                exposition = await response.text()
        assert "roadwatch_notify_notices_total" in exposition
        # Base units: the delay from violation to notice in seconds, and promtool finds nothing to fix.
        assert 'roadwatch_notify_notice_delay_seconds_bucket{le="86400.0"}' in exposition
        assert "notice_delay_days" not in exposition
        check = promtool_check_metrics(exposition)
        assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        registry_stop.set()
        await asyncio.wait_for(registry_task, 30)
        await smtp.stop()

    # Nothing lost: every notice reached the server, under its own Message-ID.
    ids = collections.Counter(m.message["Message-ID"] for m in smtp.mails)
    assert set(ids) == {mail.message_id(n) for n in expected}
    # Nothing repeated but the messages the server held when notify died; each at most twice,
    # and the copies are the same message (same document).
    repeated = {message_id for message_id, count in ids.items() if count > 1}
    assert max(ids.values()) <= 2
    assert repeated == held_ids
    for message_id in repeated:
        copies = [m for m in smtp.mails if m.message["Message-ID"] == message_id]
        assert copies[0].attachments == copies[1].attachments
    assert in_flight == 4
    # Recorded and announced once: one notice.sent per notice in the stream, one row per notice.
    events = await sent_events(js, camera)
    assert len(events) == CASES and {e.notice_id for e in events} == expected
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM notify.notices GROUP BY status")
        assert {r["status"]: r["n"] for r in rows} == {"sent": CASES}
        assert await conn.fetchval("SELECT count(*) FROM notify.cases") == CASES
    finally:
        await conn.close()


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def _equals(value, expected) -> bool:
    return value() == expected


def promtool_check_metrics(exposition: str) -> subprocess.CompletedProcess:
    """`promtool check metrics` (lint of names, units, help) on a /metrics text."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed (Debian package prometheus; make deploy-deps)")
    return subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)
