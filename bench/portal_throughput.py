"""Portal benchmark: cases opened per second from violations on NATS next to a bare INSERT of
the same rows; public lookups per second over HTTP next to the same SQL query run directly;
police decisions per second (transaction + outbox + publish) next to a bare UPDATE.

Like with like: each portal replica's consumer opens one case at a time, so the bare INSERT
runs as many connections as there are portal replicas (--replicas, default 2 as deployed),
each inserting one case at a time; it is measured before and after the portal (a fresh and a
filled table) and averaged. Lookups and decisions run --concurrency clients on both sides.

Each figure is reported as a ratio to its baseline measured in the same run on the same
machine: absolute figures say more about the machine than about the code.

    python bench/portal_throughput.py                      # 5,000 violations, 10 s of lookups
    python bench/portal_throughput.py --violations 1000 --seconds 5

PostgreSQL: DATABASE_URL's server if set, else an embedded one in a temporary folder; a
database `rw_bench_portal` is created (dropped first). NATS: a nats-server of its own. The
portal runs as its own process (`roadwatch portal`), the load generator in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import nats  # noqa: E402

from proto import codec, ids, subjects  # noqa: E402
from proto.v1 import ViolationIdentified  # noqa: E402
from proto.v1.common import Location, PlateText  # noqa: E402
from proto.v1.violation import Owner, Vehicle, ViolationDetected  # noqa: E402
from services import localstack  # noqa: E402
from services.portal import cases, materialise, store  # noqa: E402
from services.runtime import bus, migrations  # noqa: E402

BENCH_DB = "rw_bench_portal"
ICT = timezone(timedelta(hours=7))



def plate_of(i: int) -> str:
    return f"{15 + i % 80}{'ABCDEFGHK'[i % 9]}-{100 + (i // 100) % 900:03d}.{i % 100:02d}"


def violation(camera: str, i: int) -> ViolationIdentified:
    plate = plate_of(i)
    at = datetime(2026, 11, 1, 7, 0, tzinfo=ICT) + timedelta(seconds=37 * i)
    v = ViolationDetected(
        id=ids.event_id("vio", camera, i), camera_id=camera, occurred_at=at, type="red_light",
        location=Location(latitude=20.84, longitude=106.68, address="Ngã tư Lạch Tray – Văn Cao", commune_code="11311"),
        vehicle_class="car", track_id=i, plate=PlateText(text=plate, confidence=0.9, format_valid=True))
    bare = cases.plate_key(plate)
    return ViolationIdentified(
        id=ids.event_id("idf", v.id), camera_id=camera, occurred_at=at, violation=v,
        vehicle=Vehicle(plate=bare, plate_printed=plate, vehicle_type="car"),
        owner=Owner(kind="person", name=f"Chủ xe {i}", commune_code="11311"), match="exact", matched_plate=bare)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def timed_load(call, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies


async def main_async(args: argparse.Namespace, work: Path) -> None:
    processes: list[subprocess.Popen] = []
    try:
        admin_url, embedded = localstack.benchmark_postgres(work)
        processes += [embedded] if embedded else []
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
        await admin.close()
        url = localstack.with_database(admin_url, BENCH_DB)
        await migrations.migrate(url, migrations.discover(services=["portal"]))
        pool = await asyncpg.create_pool(url, min_size=4, max_size=8)
        print(f"PostgreSQL {await pool.fetchval('SHOW server_version')}; {os.cpu_count()} CPUs shared by everything",
              flush=True)

        nats_port = localstack.free_port()
        processes.append(localstack.start_nats(work / "nats", nats_port, log_file=work / "nats.log"))
        nats_url = f"nats://127.0.0.1:{nats_port}"
        ports = [localstack.free_port() for _ in range(args.replicas)]
        for replica, http_port in enumerate(ports):
            with (work / f"portal-{replica}.log").open("wb") as log:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "services.cli", "portal"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": url, "NATS_URL": nats_url,
                         "HTTP_PORT": str(http_port), "PUBLIC_RATE_PER_MINUTE": "10000", "LOG_LEVEL": "WARNING"}))
            localstack.wait_port("127.0.0.1", http_port, 60, processes[-1])
        base = f"http://127.0.0.1:{ports[0]}"
        n = args.violations

        # 1. Baseline: materialise and INSERT the same rows, no NATS, as many connections as
        # portal replicas, each one case at a time (each replica's consumer handles one at a time).
        async def bare_inserts(camera: str) -> float:
            queue = [violation(camera, i) for i in range(n)]
            queue.reverse()

            async def replica() -> None:
                async with pool.acquire() as conn:
                    while queue:
                        row, owner = materialise.case_from_identified(queue.pop())
                        async with conn.transaction():
                            await store.insert_case(conn, row, owner, "Asia/Ho_Chi_Minh")

            started = time.perf_counter()
            await asyncio.gather(*(replica() for _ in range(args.replicas)))
            return n / (time.perf_counter() - started)

        bare_before = await bare_inserts("bench-base")

        # ...and through the portal: published on VIOLATIONS, consumed, committed.
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await bus.ensure_streams(js)
        events = [violation("bench-cam", i) for i in range(n)]
        started = time.perf_counter()
        await asyncio.gather(*(js.publish(subjects.violation_identified("bench-cam", "red_light"), codec.encode(e),
                                          headers={bus.MSG_ID: e.id}) for e in events))
        while await pool.fetchval("SELECT count(*) FROM portal.cases WHERE camera_id = 'bench-cam'") < n:
            await asyncio.sleep(0.05)
        portal_cases = n / (time.perf_counter() - started)
        bare_after = await bare_inserts("bench-base-after")
        baseline_cases = (bare_before + bare_after) / 2
        print(f"cases opened: {portal_cases:,.0f}/s through NATS + {args.replicas} portal replica(s) vs "
              f"{baseline_cases:,.0f}/s bare materialise+INSERT on {args.replicas} connection(s), one case at a time "
              f"each (before {bare_before:,.0f}, after {bare_after:,.0f}); ratio {portal_cases / baseline_cases:.2f}",
              flush=True)

        # 2. Public lookups: HTTP vs the same query.
        plates = [cases.plate_key(plate_of(i)) for i in range(n)]
        await pool.execute("UPDATE portal.cases SET state = 'confirmed', reviewer = 'bench', reviewed_at = now() "
                           "WHERE camera_id = 'bench-cam'")
        rng = random.Random(1)

        async def direct() -> None:
            async with pool.acquire() as conn:
                await store.list_cases(conn, states=sorted(cases.OPEN), plate_key=rng.choice(plates), limit=100)

        done, lat_direct = await timed_load(direct, args.seconds, args.concurrency)
        direct_rate = done / args.seconds
        async with aiohttp.ClientSession() as http:
            async def lookup() -> None:
                async with http.get(f"{base}/api/public/lookup", params={"plate": rng.choice(plates)}) as r:
                    assert r.status == 200, r.status
                    await r.read()

            done, lat_http = await timed_load(lookup, args.seconds, args.concurrency)
            http_rate = done / args.seconds
            print(f"public lookups: {http_rate:,.0f}/s over HTTP (p50 {percentile(lat_http, .5) * 1e3:.1f} ms, "
                  f"p99 {percentile(lat_http, .99) * 1e3:.1f} ms) vs {direct_rate:,.0f}/s bare SQL "
                  f"(p50 {percentile(lat_direct, .5) * 1e3:.1f} ms); ratio {http_rate / direct_rate:.2f}", flush=True)

            # 3. Police decisions: review over HTTP (lock, checked UPDATE, outbox, publish) vs a bare UPDATE.
            ids_ = [r["case_id"] for r in await pool.fetch(
                "SELECT case_id FROM portal.cases WHERE camera_id = 'bench-base' ORDER BY case_id")]
            half = len(ids_) // 2
            bare_queue = list(ids_[:half])
            started = time.perf_counter()

            async def bare_officer() -> None:  # same concurrency, so both get PostgreSQL's group commit
                while bare_queue:
                    case_id = bare_queue.pop()
                    await pool.execute("UPDATE portal.cases SET state = 'confirmed' WHERE case_id = $1", case_id)

            await asyncio.gather(*(bare_officer() for _ in range(args.concurrency)))
            bare_rate = half / (time.perf_counter() - started)
            headers = {"Authorization": "Bearer demo-police"}
            queue = list(ids_[half:])
            started = time.perf_counter()

            async def officer() -> None:
                while queue:
                    case_id = queue.pop()
                    async with http.post(f"{base}/api/cases/{case_id}/review", json={"decision": "confirmed"},
                                         headers=headers) as r:
                        assert r.status == 200, await r.text()

            await asyncio.gather(*(officer() for _ in range(args.concurrency)))
            review_rate = (len(ids_) - half) / (time.perf_counter() - started)
            print(f"decisions: {review_rate:,.0f}/s over HTTP with outbox and publish vs {bare_rate:,.0f}/s bare "
                  f"UPDATE (ratio {review_rate / bare_rate:.2f})", flush=True)
        await nc.close()
        await pool.close()
    finally:
        for process in reversed(processes):
            localstack.stop_process(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--violations", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replicas", type=int, default=2,
                        help="portal processes; the bare INSERT runs as many connections (default 2, as deployed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rw-bench-portal-"))
    try:
        asyncio.run(main_async(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
