"""The registry service end to end on a real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import asyncpg
import nats.errors
import pytest

from proto import codec, streams, subjects
from proto.v1 import DeadLetter, HotlistHit, ViolationIdentified, ViolationUnidentified
from services import localstack
from services.registry import main as registry_main
from services.registry.settings import Settings
from services.runtime import migrations
from registry_samples import detection, load_vehicles, read, violation

@dataclass
class Running:
    camera: str
    lookup_subject: str
    registry: registry_main.Registry


@pytest.fixture
async def start_registry(nats_url: str, unique: str) -> AsyncIterator:
    """Start the service in this event loop against a database; stopped at the end of the test."""
    started: list[tuple[asyncio.Event, asyncio.Task]] = []

    async def start(database_url: str, **settings) -> Running:
        camera = f"cam-{unique}"
        config = Settings(nats_url=nats_url, database_url=database_url, http_port=0, db_pool_size=4, **settings)
        violations = streams.Consumer(name=f"registry-{unique}", stream="VIOLATIONS", max_deliver=10,
                                      filter_subjects=(f"traffic.violation.detected.v1.{camera}.>",))
        detections = streams.Consumer(name=f"registry-hotlist-{unique}", stream="DETECTIONS",
                                      filter_subjects=(subjects.detection_made(camera),))
        lookup_subject = subjects.request("registry", f"lookup-owner-{unique}")
        stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
        task = asyncio.create_task(registry_main.run(
            config, stop=stop, ready=ready, violations_consumer=violations, detections_consumer=detections,
            lookup_subject=lookup_subject))
        started.append((stop, task))
        done, _ = await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert ready in done, f"registry did not start: {task.result() if task.done() else 'timeout'}"
        return Running(camera, lookup_subject, ready.result())

    yield start
    for stop, task in started:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.fixture
async def registry(registry_url: str, start_registry, tmp_path: Path) -> Running:
    await load_vehicles(registry_url, tmp_path)
    running = await start_registry(registry_url)
    return running


async def stored(js, subject_filter: str, stream: str = "VIOLATIONS") -> list:
    """Every message the stream holds on a subject filter (duplicates were dropped on publish)."""
    sub = await js.pull_subscribe(subject_filter, stream=stream)
    found = []
    try:
        while True:
            found += await sub.fetch(100, timeout=0.3)
    except (nats.errors.TimeoutError, asyncio.TimeoutError):
        pass
    finally:
        await sub.unsubscribe()
    return found


def outcomes(camera: str) -> str:
    return f"traffic.violation.*.v1.{camera}.>"


async def results(js, camera: str) -> dict[str, ViolationIdentified | ViolationUnidentified]:
    out = {}
    for msg in await stored(js, outcomes(camera)):
        if ".identified." in msg.subject:
            event = codec.decode(msg.data, ViolationIdentified)
        elif ".unidentified." in msg.subject:
            event = codec.decode(msg.data, ViolationUnidentified)
        else:
            continue
        assert event.violation.id not in out, f"two results for {event.violation.id}"
        out[event.violation.id] = event
    return out


async def publish_violation(js, v, msg_id: str | None = None) -> None:
    await js.publish(subjects.violation_detected(v.camera_id, v.type), codec.encode(v),
                     headers={"Nats-Msg-Id": msg_id or v.id})


async def test_exact_near_and_missing_lookups(registry: Running, js, wait_for) -> None:
    cam = registry.camera
    cases = {
        f"{cam}-exact": violation(read("30A-123.45"), id=f"{cam}-exact", camera=cam),
        f"{cam}-near": violation(read("29-B1 I23.45", valid=False), id=f"{cam}-near", camera=cam,
                                 vehicle_class="motorcycle"),
        f"{cam}-missing": violation(read("51F-999.99"), id=f"{cam}-missing", camera=cam),
        f"{cam}-noread": violation(None, id=f"{cam}-noread", camera=cam),
        f"{cam}-clone": violation(read("30A-123.45"), id=f"{cam}-clone", camera=cam, vehicle_class="motorcycle"),
    }
    for v in cases.values():
        await publish_violation(js, v)
    got = await wait_for(lambda: _when(results(js, cam), lambda r: len(r) == len(cases)), timeout=20, what="5 results")
    exact, near = got[f"{cam}-exact"], got[f"{cam}-near"]
    assert isinstance(exact, ViolationIdentified) and exact.match == "exact" and exact.owner.name == "Nguyễn Văn An"
    assert exact.vehicle.plate_printed == "30A-123.45" and exact.owner.national_id == "001090123456"
    assert isinstance(near, ViolationIdentified) and near.match == "near" and near.matched_plate == "29B112345"
    assert near.owner.email == "binh.tran@gmail.com"
    assert got[f"{cam}-missing"].reason == "no_record"
    assert got[f"{cam}-noread"].reason == "no_read"
    assert got[f"{cam}-clone"].mismatches == ("vehicle_type",)


async def _when(coro, predicate):
    value = await coro
    return value if predicate(value) else None


async def test_redelivered_violation_gives_one_result_even_after_the_data_changed(
        registry: Running, js, registry_url: str, wait_for) -> None:
    cam = registry.camera
    v = violation(read("30A-123.45"), id=f"{cam}-again", camera=cam)
    await publish_violation(js, v)
    first = await wait_for(lambda: _when(results(js, cam), lambda r: len(r) == 1), timeout=20, what="first result")
    conn = await asyncpg.connect(registry_url)
    try:
        await conn.execute("DELETE FROM registry.vehicles WHERE plate = '30A12345'")
        # A replay past the duplicate window: JetStream stores it again and the registry sees it again.
        await publish_violation(js, v, msg_id=f"{v.id}-replayed")
        await wait_for(lambda: _consumer_idle(js, f"registry-{cam.removeprefix('cam-')}", 2), timeout=20,
                       what="the replay to be handled")
        assert await conn.fetchval("SELECT count(*) FROM registry.lookups WHERE violation_id = $1", v.id) == 1
    finally:
        await conn.close()
    again = await results(js, cam)
    assert len(again) == 1 and again[v.id] == first[v.id] and again[v.id].match == "exact"
    identified = await stored(js, subjects.violation_identified(cam, "red_light"))
    assert len(identified) == 1


async def _consumer_idle(js, durable: str, delivered: int) -> bool:
    info = await js.consumer_info("VIOLATIONS", durable)
    return info.delivered.stream_seq > 0 and info.num_ack_pending == 0 and info.num_pending == 0 \
        and info.ack_floor.consumer_seq >= delivered


async def test_malformed_violation_goes_to_the_dead_letters(registry: Running, nc, js) -> None:
    cam = registry.camera
    letters: asyncio.Queue = asyncio.Queue()
    sub = await nc.subscribe(subjects.dlq("registry"), cb=letters.put)
    try:
        await js.publish(subjects.violation_detected(cam, "red_light"), b'{"id": "x", "camera_id": 7}',
                         headers={"Nats-Msg-Id": f"{cam}-bad"})
        while True:
            letter = codec.decode((await asyncio.wait_for(letters.get(), 20)).data, DeadLetter)
            if letter.camera_id == cam:
                break
    finally:
        await sub.unsubscribe()
    assert letter.error == "invalid" and "camera_id" in letter.reason and letter.payload.startswith(b'{"id"')


async def test_owner_lookup_request_reply(registry: Running, nc) -> None:
    reply = await nc.request(registry.lookup_subject, b'{"plate": "29-B1 123.45"}', timeout=5)
    body = json.loads(reply.data)
    assert body["found"] is True and body["plate"] == "29B112345"
    assert body["owner"]["name"] == "Trần Thị Bình" and body["vehicle"]["vehicle_type"] == "motorcycle"

    near = json.loads((await nc.request(registry.lookup_subject, b'{"plate": "3OA-123.45"}', timeout=5)).data)
    assert near["found"] is False and near["near"] == ["30A-123.45"] and near["owner"] is None

    bad = await nc.request(registry.lookup_subject, b'not json', timeout=5)
    assert bad.headers["Nats-Service-Error-Code"] == "400"

    # nats.micro gives discovery for free: the service answers PING with its name.
    ping = json.loads((await nc.request("$SRV.PING.registry", b"", timeout=5)).data)
    assert ping["name"] == "registry"

    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{registry.registry.http_port}"
        async with http.get(f"{base}/readyz") as response:
            assert response.status == 200 and (await response.json())["checks"] == {"nats": True, "database": True}
        async with http.get(f"{base}/metrics") as response:
            text = await response.text()
    assert 'roadwatch_registry_owner_requests_total{result="found"}' in text
    assert 'roadwatch_registry_owner_requests_total{result="bad_request"}' in text


async def test_hotlist_hit_within_a_second_of_the_detection(registry: Running, nc, js, registry_url: str,
                                                            wait_for) -> None:
    cam = registry.camera
    conn = await asyncpg.connect(registry_url)
    try:
        await conn.execute(
            "INSERT INTO registry.hotlist (plate, plate_display, reason, agency, valid_from) "
            "VALUES ('30A12345', '30A-123.45', 'xe bị mất cắp', 'police', now() - interval '1 day')")
    finally:
        await conn.close()
    # The insert notifies the service, which reloads its in-memory hotlist.
    await wait_for(lambda: _async(len(registry.registry.hotlist) == 1), timeout=10, what="hotlist reload")

    hits: asyncio.Queue = asyncio.Queue()

    async def on_hit(msg) -> None:
        hits.put_nowait((time.perf_counter(), msg))

    sub = await nc.subscribe(subjects.hotlist_hit(cam), cb=on_hit)
    try:
        latencies = []
        window = registry.registry.config.hotlist_hit_window_s
        now = datetime.now(timezone.utc)
        for passage in range(3):
            # A car seen over four frames: one hit per passage, not one per frame. Passages are a
            # window apart (in the past, so the test does not wait for the clock).
            at = now - timedelta(seconds=passage * window)
            sent = time.perf_counter()
            for frame in range(4):
                d = detection("51F-999.99", "30A-123.45", id=f"{cam}-{passage}-{frame}", camera=cam,
                              at=at + timedelta(milliseconds=200 * frame), seq=frame)
                await js.publish(subjects.detection_made(cam), codec.encode(d), headers={"Nats-Msg-Id": d.id})
            received, msg = await asyncio.wait_for(hits.get(), 5)
            latencies.append(received - sent)
            hit = codec.decode(msg.data, HotlistHit)
            assert hit.plate == "30A12345" and hit.reason == "xe bị mất cắp" and hit.detection_id == f"{cam}-{passage}-0"
            await asyncio.sleep(0.3)
            assert hits.empty(), "the other frames of the passage produced extra hits"
    finally:
        await sub.unsubscribe()
    print(f"hotlist hit latencies: {', '.join(f'{1000 * value:.0f} ms' for value in latencies)}")
    assert max(latencies) < 1.0, f"hotlist hit latencies {latencies}"


async def _async(value):
    return value


# --- PostgreSQL restarted in the middle of a stream ------------------------------------------------
@pytest.fixture
def own_postgres(tmp_path: Path):
    """An embedded PostgreSQL this test may stop and start."""
    port = localstack.free_port()
    pgdata = tmp_path / "pg" / "data"
    log = tmp_path / "pg" / "postgres.log"
    state = {"process": localstack.start_postgres(pgdata, port, log_file=log)}

    def stop() -> None:
        localstack.stop_process(state["process"])

    def start() -> None:
        state["process"] = localstack.start_postgres(pgdata, port, log_file=log)

    yield localstack.embedded_database_url(port, "postgres"), stop, start
    localstack.stop_process(state["process"])


@pytest.mark.parametrize("db_retry_s", [15.0, 0.0], ids=["handler-waits", "nak-and-redeliver"])
async def test_postgres_restart_mid_stream_loses_nothing(own_postgres, start_registry, nc, js, tmp_path: Path,
                                                         wait_for, db_retry_s: float) -> None:
    """Both ways of riding out the restart: the handler waiting for PostgreSQL (the default),
    and, with DB_RETRY_S=0, failing at once so that JetStream redelivers after the nak delay."""
    database_url, stop_pg, start_pg = own_postgres
    # wait_s: a freshly started server may still answer "starting up" for a moment.
    await migrations.migrate(database_url, migrations.discover(services=["registry"]), wait_s=30)
    await load_vehicles(database_url, tmp_path)
    running = await start_registry(database_url, db_retry_s=db_retry_s)
    cam = running.camera
    total = 30
    ids = [f"{cam}-{n}" for n in range(total)]
    for n, vid in enumerate(ids[:10]):
        await publish_violation(js, violation(read("30A-123.45" if n % 2 else "29-B1 123.45"), id=vid, camera=cam))
    await wait_for(lambda: _when(results(js, cam), lambda r: len(r) == 10), timeout=20, what="first 10 results")

    await asyncio.get_running_loop().run_in_executor(None, stop_pg)
    for n, vid in enumerate(ids[10:], start=10):
        await publish_violation(js, violation(read("30A-123.45" if n % 2 else "29-B1 123.45"), id=vid, camera=cam))
    await asyncio.sleep(2.0)  # the registry fails on these and naks them while PostgreSQL is down
    assert len(await results(js, cam)) == 10
    # An officer's lookup meanwhile gets a clear "retry", not a hang.
    down = await nc.request(running.lookup_subject, b'{"plate": "30A-123.45"}', timeout=10)
    assert down.headers["Nats-Service-Error-Code"] == "503"
    await asyncio.get_running_loop().run_in_executor(None, start_pg)

    got = await wait_for(lambda: _when(results(js, cam), lambda r: len(r) == total), timeout=60,
                         what="all results after the restart")
    info = await js.consumer_info("VIOLATIONS", f"registry-{cam.removeprefix('cam-')}")
    redelivered = info.delivered.consumer_seq - total
    assert (redelivered > 0) if db_retry_s == 0 else (redelivered == 0), redelivered
    assert sorted(got) == sorted(ids)
    assert all(isinstance(event, ViolationIdentified) and event.match == "exact" for event in got.values())
    up = await nc.request(running.lookup_subject, b'{"plate": "30A-123.45"}', timeout=10)
    assert json.loads(up.data)["found"] is True
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM registry.lookups") == total
    finally:
        await conn.close()


async def test_service_refuses_to_start_without_the_schema(database_url: str, nats_url: str) -> None:
    config = Settings(nats_url=nats_url, database_url=database_url, http_port=0)
    assert await registry_main.run(config, stop=asyncio.Event()) == 2


def test_bad_setting_exits_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    with pytest.raises(SystemExit) as exit_:
        registry_main.main([])
    assert exit_.value.code == 2 and "DB_POOL_SIZE" in capsys.readouterr().err


async def test_command_line_migrate_then_service_starts_and_drains(database_url: str, nats_url: str,
                                                                   tmp_path) -> None:
    """`roadwatch migrate` then `roadwatch registry` as separate processes, as make run does."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url, "HTTP_PORT": str(localstack.free_port())}
    migrate = subprocess.run([sys.executable, "-m", "services.cli", "migrate"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    assert "applied registry/001_registry" in migrate.stdout and "applied registry/002_lookups_retention" in migrate.stdout
    log = tmp_path / "registry.log"  # a file: a pipe read only at the end can fill and block the service
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "registry"], env=env, stderr=out, text=True)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{env['HTTP_PORT']}") as client:
            for _ in range(300):
                try:
                    async with client.get("/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert process.poll() is None, log.read_text(encoding="utf-8")
                await asyncio.sleep(0.05)
            else:
                pytest.fail("registry never became ready")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert [line["msg"] for line in lines if line["msg"] in ("ready", "stopping", "stopped")] == \
            ["ready", "stopping", "stopped"]
    finally:
        if process.poll() is None:
            process.kill()
