"""Notify benchmark: owner notices/s end to end (case.reviewed → owner lookup → PDF letter with
the evidence frame → email with the letter attached → notice.sent), next to two baselines
measured in the same run on the same machine: bare PDF rendering of the same letter in one
process, and bare SMTP sends of the same email to the same server.

    python bench/notify_throughput.py                        # 300 cases
    python bench/notify_throughput.py --cases 100 --shared ../shared

PostgreSQL: DATABASE_URL's server if set, else 127.0.0.1:5432 if it answers, else an embedded
one in a temporary folder (database `rw_bench_notify`, dropped first). NATS: a nats-server of its
own. The registry and notify run as their own processes; the SMTP server (aiosmtpd, counting
only) and the load generator run in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiosmtplib  # noqa: E402
import asyncpg  # noqa: E402
import nats  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402
from nats.js import api  # noqa: E402

from proto import codec, ids, subjects  # noqa: E402
from proto.v1 import CaseReviewed, EvidenceRef, Location, Owner, Vehicle  # noqa: E402
from services import localstack  # noqa: E402
from services.notify import config as notify_config  # noqa: E402
from services.notify import decisions, letter, mail  # noqa: E402
from services.notify.settings import Settings  # noqa: E402
from services.runtime import bus, migrations  # noqa: E402

BENCH_DB = "rw_bench_notify"
EXAMPLE = REPO / "services" / "notify" / "notify.example.yaml"
FRAME = "data/street/vn_cam_g30_Image3154.jpg"
CAMERA = "bench-cam-01"



class Counting:
    """An SMTP server that accepts and counts."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        self.bytes += len(envelope.content)
        return "250 OK"


def owner_of(number: int) -> tuple[str, Vehicle, Owner]:
    plate = f"15A{number:05d}"
    return plate, Vehicle(plate=plate, plate_printed=f"15A-{number // 100:03d}.{number % 100:02d}",
                          plate_colour="white", vehicle_type="car", brand="Toyota", colour="silver",
                          registration_date=date(2021, 3, 4), inspection_status="valid"), Owner(
        kind="person", name="Trần Thị Huệ", national_id=f"031190{number:06d}",
        address="Số 18 ngõ 45 Lạch Tray, phường Ngô Quyền, Hải Phòng", commune_code="11311", province="Hải Phòng",
        phone="0912345678", email=f"owner{number}@example.vn")


def reviewed(number: int, plate: str, frame: bytes) -> CaseReviewed:
    digest = hashlib.sha256(frame).hexdigest()
    from datetime import datetime, timedelta, timezone

    at = datetime(2026, 11, 20, 7, 45, tzinfo=timezone(timedelta(hours=7)))
    return CaseReviewed(
        id=ids.event_id("rev", "bench", number), camera_id=CAMERA, occurred_at=at + timedelta(days=1),
        case_id=f"BENCH-{number:06d}", violation_id=ids.event_id("vio", "bench", number), violation_type="red_light",
        violation_at=at, location=Location(latitude=20.84, longitude=106.69, address="Ngã tư Lạch Tray – Văn Cao",
                                           commune_code="11311"),
        decision="confirmed", plate=plate, vehicle_type="car", reviewer="csgt-hp-0042", agency="hp-csgt",
        evidence=(EvidenceRef(bucket="evidence", name=digest, sha256=digest, kind="frame", size=len(frame)),))


def bare_render(rules, fonts, frame: bytes, n: int) -> tuple[float, bytes]:
    """Letters/s rendering the same letter in one process: the CPU floor of a notice."""
    plate, vehicle, owner = owner_of(1)
    case = reviewed(1, plate, frame)
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    values = decisions.fields(case, vehicle, owner, rules, notice_at=now, respond_by_at=decisions.respond_by(now, rules))
    pdf = b""
    started = time.perf_counter()
    for _ in range(n):
        pdf = letter.render_letter(rules.templates.owner_letter, values, rules.unit(case.agency), issued_at=now,
                                   images=[frame], fonts=fonts)
    return n / (time.perf_counter() - started), pdf


async def bare_smtp(port: int, pdf: bytes, n: int, concurrency: int) -> float:
    """Emails/s of the same size sent straight to the same server, with the same concurrency."""
    from datetime import datetime, timezone

    queue = list(range(n))

    async def worker() -> None:
        while queue:
            number = queue.pop()
            message = mail.compose(sender="thongbao@csgt.vn", sender_name="CSGT", to=f"o{number}@example.vn",
                                   subject="Thông báo vi phạm", body="Kính gửi", notice_id=f"bare-{number}",
                                   case_id="BARE", sent_at=datetime.now(timezone.utc), attachments=[("a.pdf", pdf)])
            await aiosmtplib.send(message, hostname="127.0.0.1", port=port, timeout=30)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def where_time_goes(port: int) -> list[str]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = values.get(name, 0.0) + float(value)

    def mean(prefix: str, label: str = "") -> float:
        total = sum(v for k, v in values.items() if k.startswith(prefix + "_sum") and label in k)
        count = sum(v for k, v in values.items() if k.startswith(prefix + "_count") and label in k)
        return 1000 * total / count if count else float("nan")

    handled = sum(v for k, v in values.items()
                  if k.startswith("roadwatch_messages_total") and 'service="notify"' in k and 'result="ack"' in k)
    handler_s = sum(v for k, v in values.items()
                    if k.startswith("roadwatch_handler_duration_seconds_sum") and 'service="notify"' in k)
    per_case = 1000 * handler_s / handled if handled else float("nan")
    return [f"case event handled (owner lookup, evidence, render, record): {per_case:.0f} ms",
            f"  of which PDF rendering: {mean('roadwatch_notify_render_seconds'):.0f} ms",
            f"email sent (SMTP, per message): {mean('roadwatch_notify_send_seconds', 'smtp'):.0f} ms"]


async def main_async(args: argparse.Namespace, work: Path) -> None:
    processes: list[subprocess.Popen] = []
    try:
        admin_url, embedded = localstack.benchmark_postgres(work)
        processes += [embedded] if embedded else []
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
        await conn.close()
        url = localstack.with_database(admin_url, BENCH_DB)
        await migrations.migrate(url, migrations.discover(services=["registry", "notify"]))
        nats_port = localstack.free_port()
        processes.append(localstack.start_nats(work / "js", nats_port, log_file=work / "nats.log"))
        nats_url = f"nats://127.0.0.1:{nats_port}"
        localstack.wait_port("127.0.0.1", nats_port, 30)
        print(f"{os.cpu_count()} CPUs shared by PostgreSQL, nats-server, registry, notify and this process",
              flush=True)

        conn = await asyncpg.connect(url)
        for number in range(args.cases):
            plate, vehicle, owner = owner_of(number)
            owner_id = await conn.fetchval(
                "INSERT INTO registry.owners (kind, name, national_id, address, commune_code, province, phone, email) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id", owner.kind, owner.name, owner.national_id,
                owner.address, owner.commune_code, owner.province, owner.phone, owner.email)
            await conn.execute(
                "INSERT INTO registry.vehicles (plate, plate_display, plate_colour, vehicle_type, brand, colour, "
                "registration_date, inspection_status, owner_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                plate, vehicle.plate_printed, vehicle.plate_colour, vehicle.vehicle_type, vehicle.brand,
                vehicle.colour, vehicle.registration_date, vehicle.inspection_status, owner_id)
        await conn.close()

        sink = Counting()
        server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink), "127.0.0.1", 0)
        smtp_port = server.sockets[0].getsockname()[1]
        frame = (Path(args.shared) / FRAME).read_bytes()
        config_file = work / "notify.yaml"
        config_file.write_text(EXAMPLE.read_text(encoding="utf-8").replace("channels: [email, sms, post]",
                                                                           "channels: [email]"), encoding="utf-8")
        rules = notify_config.load(config_file)
        defaults = Settings(database_url=url)
        fonts = letter.Fonts(regular=Path(defaults.font_path), bold=Path(defaults.font_bold_path)).prepare(work / "fonts")

        # --- baselines -------------------------------------------------------------------------
        render_rate, pdf = await asyncio.to_thread(bare_render, rules, fonts, frame, min(args.cases, 100))
        print(f"baseline, bare PDF rendering (one process): {render_rate:.1f} letters/s, {len(pdf) / 1024:.0f} KiB "
              "each", flush=True)
        smtp_rate = await bare_smtp(smtp_port, pdf, min(args.cases, 200), args.concurrency)
        print(f"baseline, bare SMTP sends with the letter attached ({args.concurrency} at once): "
              f"{smtp_rate:.1f} emails/s", flush=True)
        sink.count = 0

        # --- the service ----------------------------------------------------------------------------
        env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
        log = (work / "services.log").open("ab")
        processes.append(subprocess.Popen([sys.executable, "-m", "services.cli", "registry"], cwd=REPO,
                                          env={**env, "HTTP_PORT": "0"}, stdout=log, stderr=subprocess.STDOUT))
        notify_port = localstack.free_port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "services.cli", "notify"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**env, "HTTP_PORT": str(notify_port), "NOTIFY_CONFIG": str(config_file),
                 "SMTP_PORT": str(smtp_port), "POST_SPOOL_DIR": str(work / "post"),
                 "SEND_CONCURRENCY": str(args.concurrency), "POLL_INTERVAL_S": "0.1"}))
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await bus.ensure_streams(js)
        store = await js.create_object_store("evidence", config=api.ObjectStoreConfig(bucket="evidence"))
        await store.put(hashlib.sha256(frame).hexdigest(), frame)
        sent = 0
        done = asyncio.Event()

        async def on_sent(msg) -> None:
            nonlocal sent
            sent += 1
            if sent >= args.cases:
                done.set()

        await nc.subscribe("traffic.notice.sent.v1.>", cb=on_sent)
        # Warm-up: one case through everything (processes started, caches loaded), not timed.
        plate, _, _ = owner_of(0)
        await js.publish(subjects.case_reviewed(CAMERA, "confirmed"), codec.encode(reviewed(0, plate, frame)))
        deadline = time.monotonic() + 120
        while sent < 1:
            if time.monotonic() > deadline:
                raise SystemExit(f"notify sent nothing within two minutes; see {work / 'services.log'}")
            await asyncio.sleep(0.1)
        started = time.perf_counter()
        for number in range(1, args.cases):
            plate, _, _ = owner_of(number)
            event = reviewed(number, plate, frame)
            await js.publish(subjects.case_reviewed(CAMERA, "confirmed"), codec.encode(event),
                             headers={bus.MSG_ID: event.id})
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        rate = (args.cases - 1) / elapsed
        print(f"notify end to end: {args.cases - 1} cases → {args.cases - 1} emails with the PDF in {elapsed:.1f} s: "
              f"{rate:.1f} notices/s", flush=True)
        print(f"  = {rate / render_rate:.2f} × bare PDF rendering, {rate / smtp_rate:.2f} × bare SMTP sends; "
              f"SMTP server received {sink.count} emails", flush=True)
        print("  where a case's time goes in notify (means from its /metrics):", flush=True)
        for line in await where_time_goes(notify_port):
            print(f"    {line}", flush=True)
        await nc.close()
        server.close()
    finally:
        for process in reversed(processes):
            localstack.stop_process(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rw-bench-notify-") as work:
        asyncio.run(main_async(args, Path(work)))


if __name__ == "__main__":
    main()
