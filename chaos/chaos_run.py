"""Chaos: a seeded replay of N violations through registry → portal (confirmed by a police
reviewer over the review API) → notify (email, SMS, paper letter), while a real camera plays
through ingest → detect → track, and meanwhile: kill -9 of every service in turn, kill -9 and
restart of nats-server, kill -9 and restart of PostgreSQL, and the camera cut for 60 s.

Afterwards every violation must have exactly one case, every case exactly one notice per owner
channel (email when the owner has an address, SMS when a phone, the paper letter always),
delivered to the SMTP server / SMS gateway / print spool under exactly one idempotency key
each, one case.reviewed and one notice.sent per notice on the bus, and every service healthy.
The counts are printed; any mismatch exits 1.

    python chaos/chaos_run.py                 # 300 violations, camera cut 60 s (~5 min)
    python chaos/chaos_run.py --quick         # 80 violations, camera cut 20 s
    python chaos/chaos_run.py --video         # the real clip end to end per fault (chaos/video_run.py)
    python chaos/chaos_run.py --cluster       # a 3-node JetStream cluster, one node killed (chaos/cluster_run.py)

PostgreSQL: an embedded one in a temporary folder (a restart of DATABASE_URL's server is not
ours to do; with DATABASE_URL set, the PostgreSQL restart is skipped and says so).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import nats  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.system.stack import DEFAULT_SHARED, REPO, ROADWATCH, SmsGateway, SmtpSink, Stack, print_table  # noqa: E402
from proto import codec, ids, subjects  # noqa: E402
from proto.v1 import CaseReviewed, NoticeSent  # noqa: E402
from proto.v1.common import Location, PlateText  # noqa: E402
from proto.v1.telemetry import CameraStatus  # noqa: E402
from proto.v1.violation import ViolationDetected  # noqa: E402
from services import localstack  # noqa: E402
from services.notify import mail  # noqa: E402
from services.runtime import bus  # noqa: E402

REPLAY_CAMERA = "chaos-replay"
VISION_CAMERA = "chaos-vision"
POLICE = {"Authorization": "Bearer demo-police"}
ICT = timezone(timedelta(hours=7))
CLIP = "data/video/vn_haiphong_intersection.mp4"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- a camera we can cut: MJPEG over HTTP from the real clip -------------------------------------
class ClipCamera:
    def __init__(self, clip: Path, fps: float, max_frames: int = 300) -> None:
        import av

        self.frames: list[bytes] = []
        with av.open(str(clip)) as container:
            for frame in container.decode(video=0):
                if len(self.frames) >= max_frames:
                    break
                image = frame.to_image()
                from io import BytesIO

                out = BytesIO()
                image.save(out, format="JPEG", quality=85)
                self.frames.append(out.getvalue())
        self.fps = fps
        self.port = localstack.free_port()
        self.runner: web.AppRunner | None = None
        self.up = True
        self.responses: set[web.StreamResponse] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.up:
            raise web.HTTPServiceUnavailable()
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await response.prepare(request)
        index = 0
        try:
            while self.up:
                jpeg = self.frames[index % len(self.frames)]
                await response.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                index += 1
                await asyncio.sleep(1 / self.fps)
        except (ConnectionError, asyncio.CancelledError):
            pass
        if request.transport is not None:
            request.transport.close()  # the link is cut: no graceful end of stream
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/mjpeg", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.up = False  # ends the streaming handlers, which cleanup() would otherwise wait for
        if self.runner:
            await self.runner.cleanup()


# --- the replay ------------------------------------------------------------------------------------
def registry_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def violation(i: int, row: dict[str, str]) -> ViolationDetected:
    at = datetime(2026, 11, 28, 7, 0, tzinfo=ICT) + timedelta(seconds=13 * i)
    layout = "two_line" if row["vehicle_type"] == "motorcycle" else "one_line"
    return ViolationDetected(
        id=ids.event_id("vio", REPLAY_CAMERA, i), camera_id=REPLAY_CAMERA, occurred_at=at, type="red_light",
        location=Location(latitude=20.8449, longitude=106.6881, address="Ngã tư Lạch Tray – Văn Cao",
                          commune_code="11311"),
        vehicle_class=row["vehicle_type"], track_id=i,
        plate=PlateText(text=row["plate"], confidence=0.95, layout=layout, format_valid=True),
        rule="stop-line-main", detected_at=at + timedelta(seconds=2))


async def publish_until_acked(js, subject: str, payload: bytes, msg_id: str, deadline: float) -> int:
    """Publish with the same Nats-Msg-Id until JetStream acknowledges; returns the attempts."""
    attempts = 0
    while True:
        attempts += 1
        try:
            await js.publish(subject, payload, headers={bus.MSG_ID: msg_id}, timeout=2)
            return attempts
        except Exception:  # noqa: BLE001 - NATS down or restarting: try again with the same id
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def replay(js, events: list[ViolationDetected], seconds: float, deadline: float, stats: dict) -> None:
    gap = seconds / max(len(events), 1)
    for event in events:
        stats["publish_attempts"] += await publish_until_acked(
            js, subjects.violation_detected(event.camera_id, event.type), codec.encode(event), event.id, deadline)
        stats["published"] += 1
        await asyncio.sleep(gap)


async def reviewer(base_of, expected: int, stop: asyncio.Event, stats: dict) -> None:
    """A police officer confirming every identified case of the replay camera, over the API."""
    confirmed: set[str] = set()
    async with aiohttp.ClientSession() as http:
        while not stop.is_set() and len(confirmed) < expected:
            try:
                async with http.get(f"{base_of()}/api/cases", headers=POLICE, timeout=aiohttp.ClientTimeout(total=5),
                                    params={"state": "identified", "camera": REPLAY_CAMERA, "limit": "200"}) as r:
                    listing = await r.json() if r.status == 200 else {"items": []}
                for item in listing["items"]:
                    case_id = item["case_id"]
                    async with http.post(f"{base_of()}/api/cases/{case_id}/review", headers=POLICE,
                                         json={"decision": "confirmed"},
                                         timeout=aiohttp.ClientTimeout(total=10)) as r:
                        if r.status == 200:
                            confirmed.add(case_id)
                            stats["confirmed"] += 1
                        elif r.status == 409:
                            confirmed.add(case_id)
                            stats["review_409"] += 1
                        else:
                            stats["review_errors"] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, KeyError, ValueError):
                stats["review_errors"] += 1
            await asyncio.sleep(0.5)


async def stream_events(js, subject: str, kind) -> list:
    found = []
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy="all")
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.5)
            except nats.errors.TimeoutError:
                break
            try:
                found.append(codec.decode(msg.data, kind))
            except Exception:  # noqa: BLE001
                pass
    finally:
        await sub.unsubscribe()
    return found


# --- the run ---------------------------------------------------------------------------------------
async def main_async(args: argparse.Namespace) -> int:
    failures: list[str] = []
    timeline: list[tuple[str, str, str]] = []
    shared = Path(args.shared)
    if os.environ.get("DATABASE_URL") and not args.allow_external_db:
        os.environ.pop("DATABASE_URL")  # we restart PostgreSQL: it has to be ours
    async with Stack("chaos", keep=args.keep) as stack:
        log(f"work folder {stack.work}; NATS {stack.nats_url}; PostgreSQL {stack.url}")
        # Registry: a synthetic extract, imported with the real tools.
        extract = stack.work / "registry.csv"
        env = {**os.environ, "DATABASE_URL": stack.url, "PYTHONPATH": str(REPO)}
        subprocess.run([ROADWATCH, "registry", "synth", "--vehicles", str(max(2000, args.violations * 5)),
                        "--out", str(extract), "--seed", str(args.seed)], check=True, env=env, cwd=REPO,
                       stdout=subprocess.DEVNULL)
        subprocess.run([ROADWATCH, "registry", "import", str(extract)], check=True, env=env, cwd=REPO,
                       stdout=subprocess.DEVNULL)
        rows = registry_rows(extract)
        # Plates that are unique as bare plates (so that every violation is identified exactly).
        bare = collections.Counter("".join(c for c in r["plate"] if c.isalnum()) for r in rows)
        rows = [r for r in rows if bare["".join(c for c in r["plate"] if c.isalnum())] == 1]
        rng = random.Random(args.seed)
        chosen = rng.sample(rows, args.violations)
        events = [violation(i, row) for i, row in enumerate(chosen)]
        owner_of = {e.id: row for e, row in zip(events, chosen)}
        log(f"registry: {len(registry_rows(extract))} vehicles imported; replaying {len(events)} violations")

        # notify's configuration: the example, with every owner's commune in the unit's area (no
        # transfers to communes the example does not list) and short retries.
        communes = sorted({r["owner_commune_code"] for r in chosen} | {"11311", "11312", "11314"})
        text = (REPO / "services/notify/notify.example.yaml").read_text(encoding="utf-8")
        text = text.replace('communes: ["11311", "11312", "11314"]', "communes: [" + ", ".join(f'"{c}"' for c in communes) + "]")
        text = text.replace("  base_s: 30\n  max_s: 3600", "  base_s: 2\n  max_s: 10")
        config = stack.work / "notify.yaml"
        config.write_text(text, encoding="utf-8")

        smtp = await SmtpSink().start()
        sms = await SmsGateway().start()
        camera = ClipCamera(shared / CLIP, fps=args.fps)
        await camera.start()
        scenes = stack.work / "scenes"
        scenes.mkdir()
        scene = (REPO / "deploy/local/scenes/demo-haiphong.yaml").read_text(encoding="utf-8")
        (scenes / f"{VISION_CAMERA}.yaml").write_text(scene.replace("camera: demo-haiphong", f"camera: {VISION_CAMERA}"),
                                                     encoding="utf-8")
        cameras = stack.work / "cameras.yaml"
        cameras.write_text(
            f"cameras:\n  - id: {VISION_CAMERA}\n    name: chaos camera\n    url: http://127.0.0.1:{camera.port}/mjpeg\n"
            f"    fps: {args.fps}\n    scene: scenes/{VISION_CAMERA}.yaml\n"
            "    location: {latitude: 20.8449, longitude: 106.6881, commune_code: \"11311\"}\n", encoding="utf-8")
        post_dir = stack.work / "post"
        stack.add("registry")
        stack.add("portal", OUTBOX_RETRY_S="1", PUBLIC_RATE_PER_MINUTE="10000")
        stack.add("notify", NOTIFY_CONFIG=str(config), SMTP_PORT=str(smtp.port), SMS_GATEWAY_URL=sms.url,
                  POST_SPOOL_DIR=str(post_dir), LEASE_S="5", ACK_WAIT_S="10", POLL_INTERVAL_S="0.2")
        stack.add("ingest", CAMERAS_FILE=str(cameras), STALL_S="2", READ_TIMEOUT_S="3", OPEN_TIMEOUT_S="3",
                  BACKOFF_MAX_S="3")
        stack.add("detect", MODELS_DIR=str(shared / "models"))
        stack.add("track", SCENES_DIR=str(scenes))
        for name in stack.services:
            await stack.ready(name)
        log("all six services ready")

        async def quiet(exc) -> None:  # reconnect errors while nats-server is down are expected
            stats["nats_client_errors"] += 1

        stats: dict[str, int] = collections.Counter()
        nc = await nats.connect(stack.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=quiet)
        js = nc.jetstream()
        deadline = time.monotonic() + args.timeout
        portal_base = lambda: f"http://127.0.0.1:{stack.services['portal'].port}"  # noqa: E731
        stop = asyncio.Event()
        frame_arrivals: list[float] = []

        async def on_frame(msg) -> None:
            frame_arrivals.append(time.monotonic())

        await nc.subscribe(subjects.frame_captured(VISION_CAMERA), cb=on_frame)
        replay_task = asyncio.create_task(replay(js, events, args.replay_seconds, deadline, stats))
        review_task = asyncio.create_task(reviewer(portal_base, len(events), stop, stats))

        async def step(what: str, action, *, wait_ready: str | None = None) -> None:
            started = time.monotonic()
            outcome = "done"
            try:
                await action()
                if wait_ready:
                    await stack.ready(wait_ready, timeout=120)
            except Exception as exc:  # noqa: BLE001 - recorded and failed at the end
                outcome = f"FAILED: {exc!r}"[:200]
                failures.append(f"{what}: {exc!r}")
            timeline.append((time.strftime("%H:%M:%S"), what, f"{outcome} ({time.monotonic() - started:.1f} s)"))
            log(f"{what}: {outcome}")

        async def kill_and_restart(name: str) -> None:
            stack.kill9(name)
            await asyncio.sleep(args.down_s)
            stack.restart(name)

        async def cut_camera() -> None:
            camera.up = False
            await asyncio.sleep(args.cut_s)
            camera.up = True

        async def restart_nats() -> None:
            stack.kill_nats()
            await asyncio.sleep(args.down_s)
            stack.start_nats()

        async def restart_postgres() -> None:
            await asyncio.to_thread(stack.restart_postgres, kill=True)

        await asyncio.sleep(args.replay_seconds / 8)
        # The camera link is cut for cut_s while the services die one by one.
        cut_started = time.monotonic()
        cut = asyncio.create_task(step(f"camera {VISION_CAMERA} cut for {args.cut_s:.0f} s", cut_camera))
        for name in ("registry", "portal", "notify", "ingest", "detect", "track"):
            if name in args.skip:
                continue
            await step(f"kill -9 {name}, restart after {args.down_s:.0f} s", lambda n=name: kill_and_restart(n),
                       wait_ready=name)
            await asyncio.sleep(args.gap_s)
        if "nats" not in args.skip:
            await step(f"kill -9 nats-server, restart after {args.down_s:.0f} s (same store)", restart_nats)
            await asyncio.sleep(args.gap_s)
        if "postgres" in args.skip:
            pass
        elif stack.embedded_pg:
            await step("kill -9 PostgreSQL (postmaster and backends), restart (crash recovery)", restart_postgres)
        else:
            timeline.append(("", "PostgreSQL restart", "skipped: DATABASE_URL given"))
        await cut
        cut_ended = time.monotonic()
        chaos_ended = time.monotonic()
        for name in stack.services:
            await step(f"{name} ready again", lambda: asyncio.sleep(0), wait_ready=name)

        # Wait for the pipeline to finish: every case notified (or the deadline).
        await replay_task
        pool = await stack.connect(stack.url)
        expected_channels = {}
        for event in events:
            row = owner_of[event.id]
            expected_channels[event.id] = ({"email"} if row["owner_email"] else set()) | (
                {"sms"} if row["owner_phone"] else set()) | {"post"}
        n_expected_notices = sum(len(c) for c in expected_channels.values())
        while time.monotonic() < deadline:
            try:
                notified = await pool.fetchval(
                    "SELECT count(*) FROM portal.cases WHERE camera_id = $1 AND state = 'notified'", REPLAY_CAMERA)
                sent = await pool.fetchval("SELECT count(*) FROM notify.notices WHERE status = 'sent'")
            except (asyncpg.PostgresError, OSError):
                await pool.close()
                pool = await stack.connect(stack.url)
                continue
            if notified >= len(events) and sent >= n_expected_notices:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(3)  # late duplicates, if any, would arrive now
        stop.set()
        await review_task
        log(f"pipeline drained; {stats['published']} violations published ({stats['publish_attempts']} publish "
            f"attempts), {stats['confirmed']} confirmed by the reviewer ({stats['review_409']} already reviewed, "
            f"{stats['review_errors']} errors retried)")

        # --- the counts ------------------------------------------------------------------------------
        case_rows = await pool.fetch("SELECT case_id, violation_id, state FROM portal.cases WHERE camera_id = $1",
                                     REPLAY_CAMERA)
        cases_per_violation = collections.Counter(r["violation_id"] for r in case_rows)
        case_of = {r["violation_id"]: r["case_id"] for r in case_rows}
        states = collections.Counter(r["state"] for r in case_rows)
        notices = await pool.fetch("SELECT notice_id, case_id, kind, channel, transport, status FROM notify.notices")
        by_case_channel = collections.Counter((n["case_id"], n["channel"]) for n in notices)
        reviewed = await stream_events(js, f"traffic.case.reviewed.v1.{REPLAY_CAMERA}.*", CaseReviewed)
        reviewed_per_case = collections.Counter(e.case_id for e in reviewed)
        sent_events = await stream_events(js, f"traffic.notice.sent.v1.{REPLAY_CAMERA}.*", NoticeSent)
        sent_per_notice = collections.Counter(e.notice_id for e in sent_events)
        vision_status = await stream_events(js, subjects.camera_status(VISION_CAMERA), CameraStatus)
        vision_frames = (await js.stream_info("FRAMES", subjects_filter=subjects.frame_captured(VISION_CAMERA))).state

        missing_cases = [e.id for e in events if cases_per_violation[e.id] == 0]
        double_cases = [v for v, n in cases_per_violation.items() if n > 1]
        wrong_notices = []
        for event in events:
            case_id = case_of.get(event.id)
            if case_id is None:
                continue
            got = {channel for (c, channel) in by_case_channel if c == case_id}
            if got != expected_channels[event.id] or any(by_case_channel[(case_id, ch)] != 1 for ch in got):
                wrong_notices.append((case_id, sorted(got), sorted(expected_channels[event.id])))
        status_counts = collections.Counter((n["channel"], n["status"]) for n in notices)
        smtp_expected = {mail.message_id(n["notice_id"]) for n in notices if n["transport"] == "smtp"}
        sms_expected = {n["notice_id"] for n in notices if n["transport"] == "sms"}
        post_expected = {n["notice_id"] for n in notices if n["transport"] == "spool"}
        post_files = {p.stem for p in post_dir.glob("*.pdf")} if post_dir.exists() else set()
        smtp_repeats = sum(n - 1 for n in smtp.message_ids.values() if n > 1)
        sms_repeats = sum(n - 1 for n in sms.keys.values() if n > 1)

        rows_out = [
            ["violations replayed (distinct ids)", len(events), len({e.id for e in events}), ""],
            ["cases in portal.cases (one per violation)", len(events), len(case_rows),
             "ok" if len(case_rows) == len(events) and not missing_cases and not double_cases else "**MISMATCH**"],
            ["cases notified", len(events), states.get("notified", 0),
             "ok" if states.get("notified", 0) == len(events) else "**MISMATCH**"],
            ["case.reviewed events (one per case)", len(events), len(reviewed),
             "ok" if len(reviewed_per_case) == len(events) and max(reviewed_per_case.values(), default=0) == 1 else "**MISMATCH**"],
            ["notices in notify.notices", n_expected_notices, len(notices),
             "ok" if len(notices) == n_expected_notices and not wrong_notices else "**MISMATCH**"],
        ]
        for channel in ("email", "sms", "post"):
            want = sum(channel in c for c in expected_channels.values())
            rows_out.append([f"  {channel} notices sent", want, status_counts.get((channel, "sent"), 0),
                             "ok" if status_counts.get((channel, "sent"), 0) == want else "**MISMATCH**"])
        rows_out += [
            ["notice.sent events (one per notice)", len(notices), len(sent_events),
             "ok" if set(sent_per_notice) == {n["notice_id"] for n in notices} and max(sent_per_notice.values(), default=0) == 1 else "**MISMATCH**"],
            ["emails at the SMTP server, distinct Message-IDs", len(smtp_expected), len(smtp.message_ids),
             "ok" if set(smtp.message_ids) == smtp_expected else "**MISMATCH**"],
            ["  same Message-ID delivered again (receiver deduplicates)", 0, smtp_repeats, "ok" if not smtp_repeats else "note"],
            ["SMS at the gateway, distinct Idempotency-Keys", len(sms_expected), len(sms.keys),
             "ok" if set(sms.keys) == sms_expected else "**MISMATCH**"],
            ["  same Idempotency-Key sent again (gateway deduplicates)", 0, sms_repeats, "ok" if not sms_repeats else "note"],
            ["letters in the print spool", len(post_expected), len(post_files),
             "ok" if post_files == post_expected else "**MISMATCH**"],
        ]
        print()
        table = print_table(["count", "expected", "found", ""], rows_out)
        for row in rows_out:
            if row[3] == "**MISMATCH**":
                failures.append(f"{row[0].strip()}: expected {row[1]}, found {row[2]}")
        if missing_cases:
            failures.append(f"{len(missing_cases)} violations without a case, e.g. {missing_cases[:3]}")
        if double_cases:
            failures.append(f"{len(double_cases)} violations with more than one case")
        if wrong_notices:
            failures.append(f"{len(wrong_notices)} cases with wrong notices, e.g. {wrong_notices[:3]}")

        # The camera: offline during the cut, online again after, frames before and after.
        changes = [(s.occurred_at.strftime("%H:%M:%S"), s.state, s.reason[:60]) for s in vision_status if not s.heartbeat]
        print(f"\ncamera {VISION_CAMERA}: state changes {changes}", flush=True)
        print(f"camera {VISION_CAMERA}: {vision_frames.messages} frames in FRAMES; cut lasted "
              f"{cut_ended - cut_started:.0f} s of wall time including the other steps", flush=True)
        if not any(state == "offline" for _, state, _ in changes):
            failures.append("ingest never reported the cut camera offline")
        after = [t for t in frame_arrivals if t > chaos_ended]
        print(f"camera {VISION_CAMERA}: {len(frame_arrivals)} frames seen on the bus, {len(after)} of them after the "
              f"last chaos step (the camera link was back {time.monotonic() - cut_ended:.0f} s before this check)",
              flush=True)
        if not changes or changes[-1][1] != "online":
            failures.append("the cut camera did not come back online (last state change: "
                            f"{changes[-1] if changes else None})")
        if not after:
            failures.append("no frame from the cut camera after the chaos ended: ingest did not resume it")

        print("\nchaos timeline:", flush=True)
        timeline_table = print_table(["time (UTC)", "step", "outcome"], [list(t) for t in timeline])
        health = await stack.health()
        rows_h = []
        for name, (alive, healthz, readyz) in health.items():
            rows_h.append([name, "running" if alive else "**EXITED**", healthz, readyz, stack.services[name].restarts])
            if not (alive and healthz == 200 and readyz == 200):
                failures.append(f"{name} not healthy at the end: alive={alive} /healthz {healthz} /readyz {readyz}")
        print()
        print_table(["service", "process", "/healthz", "/readyz", "restarts"], rows_h)
        dlq = await js.stream_info("DEAD_LETTERS")
        print(f"\ndead letters during the run: {dlq.state.messages}", flush=True)
        if dlq.state.messages:
            letters = await stream_events(js, subjects.ALL_DEAD_LETTERS, __import__("proto.v1", fromlist=["DeadLetter"]).DeadLetter)
            for letter in letters[:10]:
                print(f"  {letter.consumer} {letter.error}: {letter.reason[:140]}", flush=True)
        await pool.close()
        await nc.close()
        await smtp.stop()
        await sms.stop()
        await camera.stop()
        del table, timeline_table
    if failures:
        print("\nCHAOS FAILED:\n  " + "\n  ".join(failures), flush=True)
        return 1
    print("\nOK: every violation has exactly one case and exactly one notice per channel", flush=True)
    return 0


def main() -> int:
    # The other two runs of `make chaos-*`: their own scripts, reached from here as flags.
    if "--video" in sys.argv[1:]:
        from chaos import video_run

        return video_run.main([arg for arg in sys.argv[1:] if arg != "--video"])
    if "--cluster" in sys.argv[1:]:
        from chaos import cluster_run

        return cluster_run.main([arg for arg in sys.argv[1:] if arg != "--cluster"])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--violations", type=int, default=300)
    parser.add_argument("--replay-seconds", type=float, default=120)
    parser.add_argument("--cut-s", type=float, default=60)
    parser.add_argument("--down-s", type=float, default=2)
    parser.add_argument("--gap-s", type=float, default=4)
    parser.add_argument("--fps", type=float, default=2)
    parser.add_argument("--timeout", type=float, default=540)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="80 violations over 40 s, camera cut 20 s")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    parser.add_argument("--allow-external-db", action="store_true", help="use DATABASE_URL (no PostgreSQL restart)")
    parser.add_argument("--shared", default=str(DEFAULT_SHARED))
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out: a service, nats, postgres")
    args = parser.parse_args()
    args.skip = {word.strip() for word in args.skip.split(",") if word.strip()}
    if args.quick:
        args.violations, args.replay_seconds, args.cut_s, args.gap_s = min(args.violations, 80), 40, 20, 1
        args.timeout = min(args.timeout, 300)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
