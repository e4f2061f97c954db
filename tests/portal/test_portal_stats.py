"""Statistics, CSV export and the PDF report on real data; the outbox after a crash; evidence
that no longer matches its SHA-256; probes, metrics and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pypdf

from proto import codec
from proto.v1 import CaseReviewed
from services import localstack
from services.portal import materialise
from portal_samples import ICT, case_for, identified, publish_violation, put_evidence, unidentified


async def seed(running, js, portal_url, wait_for, evidence):
    """Five violations over two local days (one just after local midnight, still the 20th in UTC)."""
    camera = running.camera
    events = [
        identified(camera, 1, type_="red_light", evidence=evidence, at=datetime(2026, 11, 20, 8, 0, tzinfo=ICT)),
        identified(camera, 2, type_="red_light", plate="15A-222.22", evidence=evidence,
                   at=datetime(2026, 11, 20, 9, 0, tzinfo=ICT)),
        identified(camera, 3, type_="speeding", plate="15A-333.33", evidence=evidence,
                   at=datetime(2026, 11, 21, 0, 30, tzinfo=ICT)),
        unidentified(camera, 4, type_="wrong_way", evidence=evidence, at=datetime(2026, 11, 21, 10, 0, tzinfo=ICT)),
        unidentified(camera, 5, type_="red_light", evidence=evidence, at=datetime(2026, 11, 21, 11, 0, tzinfo=ICT)),
    ]
    for event in events:
        await publish_violation(js, event)
    found = [await wait_for(lambda e=e: case_for(portal_url, e.violation.id)) for e in events]
    police = running.headers("police")
    for case, body in ((found[0], {"decision": "confirmed"}), (found[3], {"decision": "rejected", "reason": "duplicate"})):
        async with running.http.post(f"{running.base}/api/cases/{case['case_id']}/review", json=body, headers=police) as r:
            assert r.status == 200
    return found


async def test_statistics_csv_and_pdf(portal_url, start_portal, js, street_dir, wait_for, repo_dir):
    running = await start_portal(portal_url)
    await seed(running, js, portal_url, wait_for, await put_evidence(js, street_dir, bucket=running.bucket))
    ops = running.headers("operations_centre")
    period = "from=2026-11-20&to=2026-11-21"

    async def get(path, role_headers=ops):
        async with running.http.get(f"{running.base}{path}", headers=role_headers) as r:
            assert r.status == 200, await r.text()
            return r.headers["Content-Type"], await r.read()

    _, body = await get(f"/api/stats/violations?group=type&{period}")
    by_type = {row["key"]: row for row in codec.decode(body, list[dict])}
    assert by_type["red_light"] == {"key": "red_light", "total": 3, "confirmed": 1, "rejected": 0, "awaiting_review": 2}
    assert by_type["wrong_way"]["rejected"] == 1 and by_type["speeding"]["total"] == 1
    _, body = await get(f"/api/stats/violations?group=day&{period}")
    assert {r["key"]: r["total"] for r in codec.decode(body, list[dict])} == {"2026-11-20": 2, "2026-11-21": 3}
    _, body = await get("/api/stats/violations?group=day&from=2026-11-21&to=2026-11-21")
    assert [r["total"] for r in codec.decode(body, list[dict])] == [3]  # local days, not UTC days

    content_type, body = await get(f"/api/stats/violations?group=camera&{period}&format=csv")
    assert content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows == [{"key": running.camera, "total": "5", "confirmed": "1", "rejected": "1", "awaiting_review": "3"}]

    async with running.http.get(f"{running.base}/api/stats/violations?from=2026-11-22&to=2026-11-20", headers=ops) as r:
        assert r.status == 400 and "khoảng thời gian" in (await r.json())["error"]

    content_type, body = await get(f"/api/reports/summary.pdf?{period}", running.headers("transport"))
    assert content_type == "application/pdf" and body.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)
    folder = repo_dir / "var" / "artifacts" / "portal"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bao-cao.pdf").write_bytes(body)
    assert "BÁO CÁO TÌNH HÌNH VI PHẠM" in text and "Kỳ báo cáo: 20/11/2026 – 21/11/2026" in text
    assert "Tổng số vi phạm camera phát hiện: 5; đã xác nhận: 1; đã loại bỏ: 1; đang chờ cán bộ xác minh: 3" in text
    assert "Không chấp hành hiệu lệnh đèn tín hiệu giao thông" in text and running.camera in text
    assert "Nguyễn" not in text and "15A-222.22" not in text  # aggregates only

    # The same report from the command line.
    out = folder / "bao-cao-cli.pdf"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "portal", "report", "--from", "2026-11-20", "--to", "2026-11-21",
        "--out", str(out), "--database-url", portal_url, cwd=repo_dir, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    cli_text = " ".join(p.extract_text() for p in pypdf.PdfReader(out).pages)
    assert "Tổng số vi phạm camera phát hiện: 5;" in cli_text


async def test_outbox_publishes_what_a_crash_left_behind(portal_url, start_portal, js, nc, wait_for):
    """A decision committed but never published (the replica died in between) goes out later."""
    running = await start_portal(portal_url)
    event = identified(running.camera, 1)
    await publish_violation(js, event)
    case = await wait_for(lambda: case_for(portal_url, event.violation.id))
    subject, reviewed = materialise.reviewed_event(
        case, decision="confirmed", plate=case["plate"], plate_corrected=False, reason=None, reviewer="csgt-binh",
        agency="hp-csgt", at=datetime.now(timezone.utc))
    sub = await nc.subscribe(subject)
    conn = await asyncpg.connect(portal_url)
    try:
        await conn.execute("INSERT INTO portal.outbox (event_id, subject, payload, created_at) "
                           "VALUES ($1, $2, $3, now() - interval '1 minute')", reviewed.id, subject, codec.encode(reviewed))
        msg = await sub.next_msg(timeout=15)
        assert codec.decode(msg.data, CaseReviewed).id == reviewed.id
        await wait_for(lambda: conn.fetchval("SELECT published_at IS NOT NULL FROM portal.outbox WHERE event_id = $1",
                                             reviewed.id), what="outbox row marked")
    finally:
        await conn.close()


async def test_tampered_evidence_is_refused_and_not_audited(portal_url, start_portal, js, street_dir, wait_for):
    running = await start_portal(portal_url)
    good = await put_evidence(js, street_dir, bucket=running.bucket)
    # An object filed under a SHA-256 that is not its content's (swapped in the store).
    forged_name = hashlib.sha256(b"the original frame " + running.camera.encode()).hexdigest()
    store = await js.object_store(running.bucket)
    await store.put(forged_name, (street_dir / "vn_cam_g30_Image4812.jpg").read_bytes())
    forged = type(good[0])(bucket=running.bucket, name=forged_name, sha256=forged_name, kind="frame", size=1)
    missing = type(good[0])(bucket=running.bucket, name="f" * 64, sha256="f" * 64, kind="overlay", size=1)
    event = identified(running.camera, 1, evidence=(*good, forged, missing))
    await publish_violation(js, event)
    case = await wait_for(lambda: case_for(portal_url, event.violation.id))
    police = running.headers("police")
    base = f"{running.base}/api/cases/{case['case_id']}/evidence"
    async with running.http.get(f"{base}/{good[0].sha256}", headers=police) as r:
        assert r.status == 200 and r.headers["X-Evidence-Verified"] == "true"
        assert hashlib.sha256(await r.read()).hexdigest() == good[0].sha256
        assert r.headers["Cache-Control"] == "private, no-store"
    async with running.http.get(f"{base}/{forged_name}", headers=police) as r:
        assert r.status == 502 and "SHA-256" in (await r.json())["error"]
    async with running.http.get(f"{base}/{'f' * 64}", headers=police) as r:
        assert r.status == 404
    async with running.http.get(f"{base}/{'e' * 64}", headers=police) as r:
        assert r.status == 404  # not this case's evidence
    conn = await asyncpg.connect(portal_url)
    try:
        objects = [r["object"] for r in await conn.fetch("SELECT object FROM portal.audit")]
    finally:
        await conn.close()
    assert objects == [f"{case['case_id']}/{good[0].sha256}"]  # only the read that happened


async def test_service_probes_metrics_sighup_and_sigterm(portal_url, nats_url, repo_dir, tmp_path):
    """The real process: probes and metrics; SIGHUP revokes a token (and a bad file is refused
    while the running directory stays); SIGTERM drains and exits 0."""
    import aiohttp

    from services.portal import agencies
    from services.portal.settings import EXAMPLE_AGENCIES

    example = Path(EXAMPLE_AGENCIES).read_text(encoding="utf-8")
    agencies_file = tmp_path / "agencies.yaml"
    agencies_file.write_text(example, encoding="utf-8")
    port = localstack.free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "portal", cwd=repo_dir, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(repo_dir), "DATABASE_URL": portal_url, "NATS_URL": nats_url,
             "HTTP_PORT": str(port), "DB_POOL_SIZE": "2", "AGENCIES_FILE": str(agencies_file)})
    lines: list[str] = []

    async def collect() -> None:
        async for line in process.stdout:
            lines.append(line.decode())

    collector = asyncio.create_task(collect())
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()

    async def until(condition, what: str) -> None:
        deadline = loop.time() + 30
        while not await condition():
            assert loop.time() < deadline, f"timed out waiting for {what}: {lines[-5:]}"
            await asyncio.sleep(0.1)

    try:
        async with aiohttp.ClientSession() as http:
            async def status(path: str, token: str | None = None) -> int:
                try:
                    async with http.get(base + path, headers={"Authorization": f"Bearer {token}"} if token else {}) as r:
                        return r.status
                except aiohttp.ClientError:
                    return 0

            await until(lambda: _eq(status("/readyz"), 200), "ready")
            assert await status("/healthz") == 200
            assert await status("/api/me") == 401
            assert await status("/api/me", "demo-police") == 200
            async with http.get(f"{base}/metrics") as r:
                metrics = await r.text()
            assert 'roadwatch_portal_http_requests_total{route="/api/me",status="401"} 1.0' in metrics
            assert "roadwatch_portal_outbox_pending" in metrics

            # Rotate the officer's token: the old one stops working without a restart.
            new_token, digest = agencies.new_token()
            agencies_file.write_text(example.replace(agencies.hash_token("demo-police"), digest), encoding="utf-8")
            process.send_signal(signal.SIGHUP)
            await until(lambda: _eq(status("/api/me", "demo-police"), 401), "old token revoked")
            assert await status("/api/me", new_token) == 200
            # A broken file is refused; the directory in force stays.
            agencies_file.write_text(example.replace("role: police", "role: sheriff"), encoding="utf-8")
            process.send_signal(signal.SIGHUP)
            await until(lambda: _true(any("agencies file refused" in line for line in lines)), "refusal logged")
            assert await status("/api/me", new_token) == 200
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        await collector
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert any('"stopping"' in line for line in lines) and any('"stopped"' in line for line in lines)
    assert any("sheriff" in line for line in lines if "refused" in line)


async def _eq(awaitable, value) -> bool:
    return await awaitable == value


async def _true(value: bool) -> bool:
    return value
