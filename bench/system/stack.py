"""A whole roadwatch on this machine for the system runs (load, chaos, bad input): a nats-server
and a PostgreSQL of its own (or DATABASE_URL's server), the services as real `roadwatch <service>`
processes, an SMTP sink and an SMS gateway for notify; kill -9 and restart of any of them; CPU and
resident memory per process (psutil). Everything it starts it stops, also on failure.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402

from services import localstack  # noqa: E402
from services.runtime import migrations  # noqa: E402

ROADWATCH = str(REPO / ".venv" / "bin" / "roadwatch") if (REPO / ".venv/bin/roadwatch").exists() else None
DEFAULT_SHARED = Path(os.environ.get("ROADWATCH_SHARED", REPO.parent / "shared"))



def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Service:
    name: str
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    cpu_s_before: float = 0.0  # CPU of earlier (killed) incarnations
    port_retries: int = 0


class SmtpSink:
    """An SMTP server that keeps every message's Message-ID (the receiver's idempotency key)."""

    def __init__(self) -> None:
        self.message_ids: collections.Counter[str] = collections.Counter()
        self.server = None
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        from email import message_from_bytes

        message = message_from_bytes(envelope.content)
        self.message_ids[str(message.get("Message-ID", ""))] += 1
        return "250 OK"

    async def start(self) -> "SmtpSink":
        from aiosmtpd.smtp import SMTP

        self.server = await asyncio.get_running_loop().create_server(lambda: SMTP(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server:
            self.server.close()


class SmsGateway:
    """An HTTP SMS gateway that keeps every request's Idempotency-Key."""

    def __init__(self) -> None:
        self.keys: collections.Counter[str] = collections.Counter()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.json()
        self.keys[request.headers.get("Idempotency-Key", "")] += 1
        return web.json_response({"ok": True})

    async def start(self) -> "SmsGateway":
        app = web.Application()
        app.router.add_post("/sms", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = localstack.free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


@dataclass
class Stack:
    """nats-server, PostgreSQL and services for one run; `async with Stack(...)` cleans up."""

    name: str
    keep: bool = False
    with_postgres: bool = True  # False: NATS only (services without a database)
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rw-system-")))
    nats: subprocess.Popen | None = None
    nats_port: int = 0
    postgres: subprocess.Popen | None = None
    pg_port: int = 0
    admin_url: str = ""
    url: str = ""
    embedded_pg: bool = False
    services: dict[str, Service] = field(default_factory=dict)
    # nats-server runs deploy/nats/accounts.conf (as make run and Kubernetes); made-up passwords.
    nats_passwords: dict[str, str] = field(default_factory=localstack.nats_passwords)

    @property
    def nats_url(self) -> str:
        """A user of the services' account, for the run's own clients (replays, counts)."""
        return self.nats_url_of("portal")

    def nats_url_of(self, user: str) -> str:
        return localstack.nats_url(self.nats_port, user, self.nats_passwords)

    async def __aenter__(self) -> "Stack":
        try:
            await self.start_servers()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- servers ---------------------------------------------------------------------------------
    async def start_servers(self) -> None:
        self.nats_port = localstack.free_port()
        self.start_nats()
        if not self.with_postgres:
            return
        given = os.environ.get("DATABASE_URL")
        if given and localstack.database_reachable(given):
            self.admin_url = localstack.with_database(given, "postgres")
        else:
            self.embedded_pg = True
            self.pg_port = localstack.free_port()
            self.start_postgres()
            self.admin_url = localstack.embedded_database_url(self.pg_port, "postgres")
        admin = await self.connect(self.admin_url)
        database = f"rw_system_{self.name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        self.url = localstack.with_database(self.admin_url, database)
        await migrations.migrate(self.url)

    def start_nats(self) -> None:
        # deploy/local/nats.conf: 8 MB payloads (frames) and the accounts, as under make run.
        self.nats = localstack.start_nats(self.work / "nats", self.nats_port, log_file=self.work / "nats.log",
                                          passwords=self.nats_passwords)

    def start_postgres(self) -> None:
        self.postgres = localstack.start_postgres(self.work / "pg", self.pg_port, log_file=self.work / "postgres.log")

    @staticmethod
    async def connect(url: str, timeout: float = 60) -> asyncpg.Connection:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await asyncpg.connect(url, timeout=5)
            except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def kill_nats(self) -> None:
        self.nats.send_signal(signal.SIGKILL)
        self.nats.wait()

    def restart_postgres(self, *, kill: bool = True) -> None:
        """kill -9 of the postmaster (crash recovery on start) or a fast shutdown, then start."""
        if not self.embedded_pg:
            raise RuntimeError("PostgreSQL restart needs the embedded server (unset DATABASE_URL)")
        if kill:
            self.postgres.send_signal(signal.SIGKILL)
            self.postgres.wait()
            # The backends outlive a killed postmaster until they notice; wait for the port to close.
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if str(self.work / "pg") in " ".join(proc.info["cmdline"] or []):
                        proc.kill()
                except psutil.Error:
                    pass
            time.sleep(0.5)
            (self.work / "pg" / "postmaster.pid").unlink(missing_ok=True)
        else:
            localstack.stop_process(self.postgres)
        self.start_postgres()

    # --- services ---------------------------------------------------------------------------------
    def add(self, name: str, **env: str) -> Service:
        port = localstack.free_port()
        user = name if name in self.nats_passwords else "portal"
        full = {**os.environ, "NATS_URL": self.nats_url_of(user), "HTTP_PORT": str(port), "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO)}
        if name in ("registry", "portal", "notify"):
            full["DATABASE_URL"] = self.url
        full.update(env)
        service = Service(name=name, env=full, port=port, log=self.work / f"{name}.log")
        self.services[name] = service
        self.spawn(service)
        return service

    def spawn(self, service: Service) -> None:
        argv = [ROADWATCH, service.name] if ROADWATCH else [sys.executable, "-m", "services.cli", service.name]
        with service.log.open("ab") as log:
            service.process = subprocess.Popen(argv, cwd=REPO, env=service.env, stdout=log, stderr=subprocess.STDOUT)

    def kill9(self, name: str) -> None:
        service = self.services[name]
        try:
            service.cpu_s_before += sum(psutil.Process(service.process.pid).cpu_times()[:2])
        except psutil.Error:
            pass
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()

    def restart(self, name: str) -> None:
        service = self.services[name]
        if service.process.poll() is None:
            self.kill9(name)
        service.restarts += 1
        self.spawn(service)

    async def ready(self, name: str, timeout: float = 120) -> None:
        service = self.services[name]
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if service.process.poll() is not None and service.port_retries < 3 and \
                        "address already in use" in service.log.read_text(errors="replace")[-4000:]:
                    # free_port() raced with another process on the machine: another port.
                    service.port_retries += 1
                    service.port = localstack.free_port()
                    service.env["HTTP_PORT"] = str(service.port)
                    with service.log.open("a") as log:
                        log.write(f"\n[stack] port taken; starting again on {service.port}\n")
                    self.spawn(service)
                    continue
                if service.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {service.process.returncode}; log: {service.log}\n"
                                       + service.log.read_text(errors="replace")[-3000:])
                try:
                    async with http.get(f"http://127.0.0.1:{service.port}/readyz",
                                        timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout} s; log: {service.log}")
                await asyncio.sleep(0.2)

    async def health(self) -> dict[str, tuple[bool, int, int]]:
        """Per service: (process alive, /healthz status, /readyz status)."""
        result = {}
        async with aiohttp.ClientSession() as http:
            for name, service in self.services.items():
                codes = []
                for probe in ("healthz", "readyz"):
                    try:
                        async with http.get(f"http://127.0.0.1:{service.port}/{probe}",
                                            timeout=aiohttp.ClientTimeout(total=5)) as response:
                            codes.append(response.status)
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        codes.append(0)
                result[name] = (service.process.poll() is None, codes[0], codes[1])
        return result

    async def metrics(self, name: str) -> dict[str, float]:
        values: dict[str, float] = {}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.services[name].port}/metrics") as response:
                text = await response.text()
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            key, value = line.rsplit(" ", 1)
            try:
                values[key] = float(value)
            except ValueError:
                pass
        return values

    def processes(self) -> dict[str, psutil.Process]:
        found = {name: psutil.Process(s.process.pid) for name, s in self.services.items() if s.process.poll() is None}
        if self.nats and self.nats.poll() is None:
            found["nats-server"] = psutil.Process(self.nats.pid)
        if self.postgres and self.postgres.poll() is None:
            found["postgresql"] = psutil.Process(self.postgres.pid)
        return found

    # --- cleanup ----------------------------------------------------------------------------------
    async def close(self) -> None:
        for service in self.services.values():
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.services.values():
            if service.process is not None:
                try:
                    service.process.wait(20)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait()
        if self.nats is not None:
            localstack.stop_process(self.nats)
        if self.postgres is not None:
            localstack.stop_process(self.postgres)
        elif self.url and self.admin_url and not self.keep:
            try:
                admin = await asyncpg.connect(self.admin_url, timeout=5)
                await admin.execute(f'DROP DATABASE IF EXISTS "rw_system_{self.name}" WITH (FORCE)')
                await admin.close()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        if not self.keep:
            import shutil

            shutil.rmtree(self.work, ignore_errors=True)


class Sampler:
    """CPU seconds and peak/mean resident memory per process of a stack, sampled every second."""

    def __init__(self, stack: Stack, interval: float = 1.0) -> None:
        self.stack, self.interval = stack, interval
        self.rss: dict[str, list[int]] = collections.defaultdict(list)
        self.cpu_start: dict[str, float] = {}
        self.cpu_end: dict[str, float] = {}
        self.task: asyncio.Task | None = None
        self.started = self.ended = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process, children: bool) -> float:
        total = sum(proc.cpu_times()[:2])
        if children:  # PostgreSQL's backends are children of the postmaster
            for child in proc.children(recursive=True):
                try:
                    total += sum(child.cpu_times()[:2])
                except psutil.Error:
                    pass
        return total

    def _rss(self, proc: psutil.Process, children: bool) -> int:
        total = proc.memory_info().rss
        if children:
            for child in proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
        return total

    async def _loop(self) -> None:
        while True:
            for name, proc in self.stack.processes().items():
                try:
                    self.rss[name].append(self._rss(proc, True))
                    self.cpu_end[name] = self._cpu(proc, True)
                except psutil.Error:
                    pass
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.started = time.monotonic()
        for name, proc in self.stack.processes().items():
            try:
                self.cpu_start[name] = self._cpu(proc, True)
            except psutil.Error:
                pass
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        for name, proc in self.stack.processes().items():
            try:
                self.cpu_end[name] = self._cpu(proc, True)
            except psutil.Error:
                pass
        self.ended = time.monotonic()
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    def table(self) -> list[tuple[str, float, float, float]]:
        """(process, mean CPU in cores, mean RSS MiB, peak RSS MiB)."""
        elapsed = max(self.ended - self.started, 1e-9)
        rows = []
        for name in self.cpu_start:
            samples = self.rss.get(name) or [0]
            rows.append((name, (self.cpu_end.get(name, 0) - self.cpu_start[name]) / elapsed,
                         sum(samples) / len(samples) / 2**20, max(samples) / 2**20))
        return rows


def print_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (what goes into docs/*.md), printed and returned."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text
