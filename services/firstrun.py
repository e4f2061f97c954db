"""`make run`: the demo configuration on one machine, and what it needs to say when a part is missing.

`roadwatch stack-env VAR_DIR` checks the models and the demo cameras, writes VAR_DIR/run.env
(the environment every process gets) and VAR_DIR/Procfile (the committed Procfile less the
services whose inputs are missing), and says what is missing and how to provide it, so that a
machine with only the repository still starts NATS, PostgreSQL, the portal, registry and notify.
`roadwatch localdb` is the database step: PostgreSQL (given or embedded), migrations, and a
synthetic registry that includes the plates of the demo clips.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from services import localstack
from services.runtime.settings import SettingError, parse

REPO = Path(__file__).resolve().parents[1]
PROCFILE = REPO / "Procfile"
# The models the detect service loads with its default settings (services/detect/settings.py).
DETECT_MODELS = (
    "yolox_nano.onnx", "coco.names", "y5fu_640x_sim.onnx", "y5fu_320x_sim.onnx",
    "ch_PP-OCRv4_rec_infer.onnx", "ch_PP-OCRv4_det_infer.onnx",
)
SERVICES = ("ingest", "detect", "track", "registry", "portal", "notify")


def default_models_dir(local: localstack.LocalSettings) -> Path:
    given = local.models_dir
    return Path(given).resolve() if given else (REPO.parent / "shared" / "models").resolve()


def nats_port(local: localstack.LocalSettings, reach: str) -> int:
    """NATS_PORT, else the default port unless something (a system nats-server) already has it."""
    default = localstack.DEFAULT_NATS_PORT
    if local.nats_port:
        return local.nats_port
    return default if not localstack.port_open(reach, default) else localstack.free_port()


def missing_models(models_dir: Path) -> list[str]:
    return [name for name in DETECT_MODELS if not (models_dir / name).is_file()]


def missing_camera_sources(cameras_file: Path) -> tuple[list[str], str | None]:
    """(camera files/folders that do not exist, error of the file itself or None)."""
    from services.ingest import cameras as camera_config

    try:
        cameras = camera_config.load(cameras_file)
    except camera_config.CamerasError as exc:
        return [], str(exc)
    missing = []
    for camera in cameras:
        if "://" not in camera.url and not Path(camera.url).exists():
            missing.append(f"{camera.id}: {camera.url}")
    return missing, None


def run_env(environ: Mapping[str, str], var_dir: Path) -> dict[str, str]:
    """The environment every process gets under `make run`.

    Every HTTP port and nats-server bind ROADWATCH_BIND (127.0.0.1 unless set); PostgreSQL and
    the mail sink stay on 127.0.0.1 whatever it says (trust authentication, a local outbox).
    nats-server runs deploy/nats/accounts.conf with local passwords (var/nats-users, 0600): each
    service gets its own user in its NATS_URL_<SERVICE>, as the Kubernetes manifests give it.
    """
    local = parse(localstack.LocalSettings, environ)  # SettingError naming the variable
    bind = local.bind
    reach = localstack.connect_host(bind)
    given = local.database_url
    use_given = bool(given) and localstack.database_reachable(given)
    pg_port = local.embedded_pg_port
    port = nats_port(local, reach)
    passwords = localstack.nats_passwords(var_dir / "nats-users")
    env = {
        "ROADWATCH_BIND": bind,
        "HTTP_HOST": bind,
        "NATS_PORT": str(port),
        "NATS_URL": localstack.nats_url(port, host=reach),  # without credentials: for the banner
        **{f"NATS_URL_{name.upper()}": localstack.nats_url(port, name, passwords, host=reach) for name in SERVICES},
        "DATABASE_URL": given if use_given else localstack.embedded_database_url(pg_port),
        "EMBEDDED_PG": "0" if use_given else "1",
        "EMBEDDED_PG_PORT": str(pg_port),
        "ROADWATCH_VAR": str(var_dir),
        "LOG_LEVEL": local.log_level,
        "MODELS_DIR": str(default_models_dir(local)),
        "CAMERAS_FILE": local.cameras_file,
        "SCENES_DIR": local.scenes_dir,
        "DEMO_PLATES": local.demo_plates,
        "DEMO_VEHICLES": str(local.demo_vehicles),
        "SMTP_HOST": "127.0.0.1",
        "POST_SPOOL_DIR": str(var_dir / "notify" / "post"),
        "OUTBOX_DIR": str(var_dir / "outbox"),
    }
    env.update({name: str(value) for name, value in local.ports.items()})
    return env


def procfile_without(text: str, dropped: set[str]) -> str:
    keep = [line for line in text.splitlines() if line.split(":", 1)[0].strip() not in dropped]
    return "\n".join(keep) + "\n"


def preflight(env: Mapping[str, str]) -> tuple[set[str], list[str]]:
    """Which processes cannot start here, and what to tell the user about each."""
    dropped: set[str] = set()
    notes: list[str] = []
    models_dir = Path(env["MODELS_DIR"])
    absent = missing_models(models_dir)
    if absent:
        dropped.add("detect")
        notes.append(
            f"detect is not started: MODELS_DIR={models_dir} lacks {', '.join(absent)}. "
            "The README's Models table gives each file's source, licence and SHA-256; put them in one folder "
            "and run `make run MODELS_DIR=/that/folder`."
        )
    sources, error = missing_camera_sources(Path(env["CAMERAS_FILE"]))
    if error:
        dropped.add("ingest")
        notes.append(f"ingest is not started: {error}")
    elif sources:
        notes.append(
            "these demo cameras have no video here and will report offline: " + "; ".join(sources)
            + f". Edit {env['CAMERAS_FILE']} (or set CAMERAS_FILE) to point at your clips or rtsp:// cameras."
        )
    return dropped, notes


def stack_env_main(argv: list[str]) -> int:
    var_dir = Path(argv[0] if argv else "var").resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    try:
        env = run_env(os.environ, var_dir)
    except SettingError as exc:
        print(f"roadwatch stack-env: invalid setting {exc.variable}: {exc.reason}", file=sys.stderr)
        return 2
    dropped, notes = preflight(env)
    (var_dir / "run.env").touch(mode=0o600)  # it holds the services' NATS passwords
    (var_dir / "run.env").chmod(0o600)
    (var_dir / "run.env").write_text("".join(f"{key}={value}\n" for key, value in env.items()), encoding="utf-8")
    (var_dir / "Procfile").write_text(procfile_without(PROCFILE.read_text(encoding="utf-8"), dropped), encoding="utf-8")
    for note in notes:
        print(f"roadwatch: {note}", file=sys.stderr)
    print(welcome(env, dropped))
    return 0


def welcome(env: Mapping[str, str], dropped: set[str]) -> str:
    bind = env.get("ROADWATCH_BIND", localstack.LOOPBACK)
    host = localstack.connect_host(bind)
    portal = f"http://{host}:{env['PORTAL_PORT']}"
    lines = [
        "",
        "roadwatch is starting (Ctrl-C stops everything). Where to look:",
        f"  portal            {portal}/  (review queue: {portal}/hang-cho, public lookup: {portal}/tra-cuu)",
        "  demo tokens       police: demo-police   commune police: demo-commune   transport: demo-transport",
        "                    operations centre: demo-ops   citizen: demo-citizen",
        f"  notices           e-mails in {env['OUTBOX_DIR']} (a local SMTP server), letters in {env['POST_SPOOL_DIR']}",
        f"  NATS              {env['NATS_URL']} (accounts of deploy/nats/accounts.conf; local passwords in "
        f"{env['ROADWATCH_VAR']}/nats-users)    PostgreSQL  {env['DATABASE_URL']}",
        "  metrics           " + "  ".join(
            f"{name.split('_')[0].lower()} :{env[name]}/metrics" for name in map(str.upper, localstack.PORTS)
            if name != "SMTP_PORT" and name.split("_")[0].lower() not in dropped),
    ]
    if localstack.is_loopback(bind):
        lines.append(f"  listening on      {bind} only: nothing here is reachable from the network "
                     "(ROADWATCH_BIND=<address> opens the HTTP ports and NATS)")
    else:
        lines += [
            f"  WARNING           listening on {bind} (ROADWATCH_BIND): every HTTP port and nats-server are",
            "                    reachable from the network, and the demo tokens above give anyone police access.",
        ]
    lines.append("")
    return "\n".join(lines)


# Ctrl-C reaches every process at once; the servers stay up this long after it so that the
# services can finish their batch, ack and drain (honcho kills what is left after 5 s).
SERVER_GRACE_S = 2.5


def wait_for_stop(process) -> None:
    """Block until SIGTERM/SIGINT (or the server dies), then give the services their grace."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    while process is None or process.poll() is None:
        if signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 1.0) is not None:
            time.sleep(SERVER_GRACE_S)
            return


def localnats_main(argv: list[str]) -> int:
    """nats-server for make run, outside the terminal's process group (see SERVER_GRACE_S)."""
    local = localstack.local_settings(prog="localnats")
    var_dir = Path(local.roadwatch_var).resolve()
    bind = local.bind
    port = nats_port(local, localstack.connect_host(bind))
    passwords = localstack.nats_passwords(var_dir / "nats-users")
    process = localstack.start_nats(var_dir / "nats", port, log_file=var_dir / "nats.log", new_session=True,
                                    passwords=passwords, host=bind)
    print(f"nats-server ready at nats://{bind}:{port} with the accounts of deploy/nats/accounts.conf (JetStream "
          f"store in {var_dir / 'nats'}, log in {var_dir / 'nats.log'})", flush=True)
    try:
        wait_for_stop(process)
    finally:
        localstack.stop_process(process)
    return 0 if process.returncode in (0, None) else process.returncode


# --- the database step ------------------------------------------------------------------------------
def migrate_database(url: str) -> None:
    from services.runtime import migrations

    asyncio.run(migrations.migrate(url))


def seed_registry(url: str, vehicles: int, plates: Path | None) -> int:
    """A synthetic registry (with the demo clips' plates) when the registry is empty; returns rows added."""
    import asyncpg

    from services.registry import importer, synth

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT count(*) FROM registry.vehicles")
        finally:
            await conn.close()

    if asyncio.run(count()):
        return 0
    province = synth.load_province(synth.DEFAULT_PROVINCE)
    pinned = synth.read_plates(plates) if plates and plates.is_file() else []
    with tempfile.TemporaryDirectory() as tmp:
        vehicles_csv, hotlist_csv = Path(tmp) / "vehicles.csv", Path(tmp) / "hotlist.csv"
        with vehicles_csv.open("w", encoding="utf-8", newline="") as out, hotlist_csv.open("w", encoding="utf-8", newline="") as hot:
            synth.write(out, vehicles, province, seed=1, hotlist_out=hot, hotlist=20, pinned=pinned)
        if importer.main(["--database-url", url, str(vehicles_csv), str(hotlist_csv)]) != 0:
            raise RuntimeError("the demo registry could not be imported (see above)")
    return vehicles + len(pinned)


def localdb_main(argv: list[str]) -> int:
    """Run the embedded PostgreSQL in the foreground (or stand by for the given one), migrated and seeded."""
    local = localstack.local_settings(prog="localdb")
    var_dir = Path(local.roadwatch_var).resolve()
    port = local.embedded_pg_port
    url = local.database_url or localstack.embedded_database_url(port)
    process = None
    if local.embedded_pg or not local.database_url:
        process = localstack.start_postgres(var_dir / "postgres", port, log_file=var_dir / "postgres.log",
                                            new_session=True)
        localstack.create_database(localstack.embedded_database_url(port, "postgres"), localstack.DATABASE_NAME)
        print(f"embedded PostgreSQL ready at {url} (data in {var_dir / 'postgres'})", flush=True)
    else:
        print(f"using PostgreSQL at {url}; no embedded server", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        migrate_database(url)
        plates = Path(local.demo_plates) if local.demo_plates else None
        added = seed_registry(url, local.demo_vehicles, plates)
        if added:
            print(f"registry seeded with {added} synthetic vehicles (incl. the demo clips' plates)", flush=True)
        wait_for_stop(process)
    finally:
        if process is not None:
            localstack.stop_process(process)
    return 0 if process is None or process.returncode in (0, None) else process.returncode
