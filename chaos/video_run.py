"""Faults on the real video path: a real clip through ingest → detect → track → registry → portal
→ notify, once undisturbed and once per fault (kill -9 of detect, of track, of notify mid-run; a
nats-server kill -9 and restart), each in a fresh stack; every run is compared with the
undisturbed one: the same violations (by id), the same cases, one notice per case and channel.

The clip (the Hải Phòng intersection, repeated PASSES times into one file, no re-encoding) is
played by ingest in real time with a fixed `start_at`, so every run stamps the same capture times
and so gets the same frame, detection and violation ids. A police reviewer works the camera's
queue over the API as an officer would (`Reviewer`): an unidentified case is confirmed with a
plate of its own (most of the clip's plates are unreadable; a registered plate of the class the
camera saw, none given twice), a case repeating an open one (the looped clip brings the same
vehicle round every pass) is merged into it, and a refused decision is retried a few times with a
growing pause, then reported.

    python chaos/video_run.py                     # 6 passes (42 s of video), all four faults (~15 min)
    python chaos/video_run.py --faults detect     # the undisturbed run and one fault
    python chaos/video_run.py --smoke             # vision only (ingest, detect, track), 1 pass, nats restart

Settings of the runs that differ from the defaults, and why: detect MAX_FRAME_AGE_S=1e9 (the
frames carry the fixed recording time, so they are "old" by the wall clock); ingest QUEUE_SIZE=200
and PUBLISH_TIMEOUT_S=15 (frames wait in ingest through a nats-server restart instead of being
dropped); LEASE_TTL_S=30 (the camera's lease outlives the restart); detect FRAMES_PER_CAMERA=100000
(no overload shedding: the backlog after a restart is caught up, not superseded by newer frames,
which the default does on purpose; this run compares faults, not the overload policy).
Exit 1 when a run differs from the undisturbed one; the table says where.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import nats  # noqa: E402
import nats.errors  # noqa: E402

from bench.system.stack import DEFAULT_SHARED, REPO, ROADWATCH, SmsGateway, SmtpSink, Stack, print_table  # noqa: E402
from proto import codec, streams, subjects  # noqa: E402
from proto.v1 import NoticeSent, ViolationDetected  # noqa: E402
from proto.v1.telemetry import CameraStatus  # noqa: E402

CAMERA = "chaos-video"
CLIP = "data/video/vn_haiphong_intersection.mp4"
DEMO_PLATES = REPO / "deploy" / "local" / "demo-plates.txt"
TWO_WHEELERS = ("motorcycle", "bicycle")
# The portal's refusal of a review that repeats an open case names the case to merge into.
REPEAT_OF = re.compile(r"có thể trùng với (\S+?):")
POLICE = {"Authorization": "Bearer demo-police"}
FAULTS = ("detect", "track", "notify", "nats")
VISION = ("ingest", "detect", "track")
FULL = ("registry", "portal", "notify", *VISION)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def repeat_clip(source: Path, target: Path, passes: int) -> float:
    """The clip `passes` times in one file (packets copied, timestamps shifted); returns its seconds."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        base = stream.time_base
    span = pts[-1] - pts[0] + (pts[1] - pts[0])
    with av.open(str(target), "w") as out:
        video = None
        for k in range(passes):
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                if video is None:
                    video = out.add_stream_from_template(stream)
                for packet in container.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.pts += k * span
                    packet.dts += k * span
                    packet.stream = video
                    out.mux(packet)
    return float(span * passes * base)


@dataclass
class Run:
    name: str
    fault: str | None
    frames: int = 0
    detections: int = 0
    violations: list[str] = field(default_factory=list)  # ids, in stream order (a repeat would show twice)
    events: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # id -> (type, rule, occurred_at)
    cases: dict[str, list[str]] = field(default_factory=dict)  # violation id -> case ids
    states: collections.Counter = field(default_factory=collections.Counter)
    merged: set[str] = field(default_factory=set)  # violation ids whose case was merged into another (a repeat)
    notices: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (case, kind, channel) -> notice.sent
    channels_of: dict[str, set[str]] = field(default_factory=dict)  # violation id -> owner-notice channels
    smtp_repeats: int = 0
    audit_lines: int = 0  # registry.owner_lookup_audit rows: one per owner lookup over the bus
    dead_letters: int = 0
    fault_s: float = 0.0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


async def ordered(js, subject: str, kind=None) -> list:
    found = []
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy="all")
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.5)
            except nats.errors.TimeoutError:
                break
            found.append(codec.decode(msg.data, kind) if kind else msg)
    finally:
        await sub.unsubscribe()
    return found


async def pipeline_idle(js) -> bool:
    """Nothing waiting and nothing in flight on any durable consumer of any stream."""
    for stream in streams.ALL:
        try:
            infos = await js.consumers_info(stream.name)
        except Exception:  # noqa: BLE001 - NATS restarting: not idle
            return False
        for info in infos:
            if info.num_pending or info.num_ack_pending:
                return False
    return True


def review_plates(extract: Path) -> dict[str, list[str]]:
    """Registered plates for the reviewer to read off unidentified cases, by the camera's class
    ("motorcycle": two-line plates of motorbikes, "car": one-line plates of cars), none of the demo
    plates (identified cases carry them); owners with both e-mail and phone, so that a case has the
    same notice channels whichever plate a run gives it."""
    demo = {line.split(",")[0].strip() for line in DEMO_PLATES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")}
    plates: dict[str, list[str]] = {"car": [], "motorcycle": []}
    with extract.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["plate"] in demo or not (row["owner_email"] and row["owner_phone"]):
                continue
            if row["vehicle_type"] == "motorcycle" and " " in row["plate"]:
                plates["motorcycle"].append(row["plate"])
            elif row["vehicle_type"] == "car" and " " not in row["plate"]:
                plates["car"].append(row["plate"])
    return {kind: sorted(found) for kind, found in plates.items()}


class Reviewer:
    """A police officer working the camera's queue. `step` (no I/O) says what to do with a case
    of the list; a refused decision is tried again after 2, 4, 8 s, and after `attempts` refusals
    is given up and kept in `refused` with the portal's answer, instead of being posted again every
    round (which once left ~12,000 owner lookups in the registry's audit for 15 cases)."""

    def __init__(self, plates: dict[str, list[str]], attempts: int = 5) -> None:
        self.plates = {kind: list(found) for kind, found in plates.items()}
        self.attempts = attempts
        self.given: dict[str, str] = {}  # case -> the plate read for it
        self.tries: collections.Counter = collections.Counter()
        self.not_before: dict[str, float] = {}
        self.refused: dict[str, str] = {}

    def step(self, item: dict) -> tuple[str, dict] | None:
        """(action, body) for the case `item` of GET /api/cases, or None: nothing to do now."""
        case_id = item["case_id"]
        if case_id in self.refused or time.monotonic() < self.not_before.get(case_id, 0.0):
            return None
        if item.get("duplicate_of") and (item["state"] in ("identified", "unidentified")
                                         or item.get("notice_hold") == "possible_duplicate"):
            return "merge", {"into": item["duplicate_of"], "reason": "cùng một lần vi phạm (đoạn phim lặp lại)"}
        if item["state"] not in ("identified", "unidentified"):
            return None
        body: dict = {"decision": "confirmed"}
        if item["state"] == "unidentified":
            if case_id not in self.given:
                kind = "motorcycle" if item.get("vehicle_class") in TWO_WHEELERS else "car"
                if not self.plates[kind]:
                    self.refused[case_id] = f"no registered {kind} plate left to read off the case"
                    return None
                self.given[case_id] = self.plates[kind].pop(0)
            body["plate"] = self.given[case_id]
        return "review", body

    def answered(self, case_id: str, action: str, status: int, answer: dict) -> tuple[str, dict] | None:
        """After the portal's answer: the merge to make next, if the review was refused as a repeat."""
        if status == 200:
            return None
        error = str(answer.get("error", answer)) if isinstance(answer, dict) else str(answer)
        repeat = REPEAT_OF.search(error) if status == 409 and action == "review" else None
        if repeat:
            return "merge", {"into": repeat.group(1), "reason": "cùng một lần vi phạm (đoạn phim lặp lại)"}
        self.tries[case_id] += 1
        if self.tries[case_id] >= self.attempts:
            self.refused[case_id] = f"{action} refused {self.tries[case_id]} times, last: {status} {error}"
        else:
            self.not_before[case_id] = time.monotonic() + 2.0 ** self.tries[case_id]
        return None

    async def run(self, portal: str, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as http:
            async def post(case_id: str, action: str, body: dict) -> tuple[int, dict]:
                async with http.post(f"{portal}/api/cases/{case_id}/{action}", headers=POLICE, json=body,
                                     timeout=aiohttp.ClientTimeout(total=10)) as response:
                    return response.status, await response.json(content_type=None)

            while not stop.is_set():
                try:
                    params = [("state", "identified"), ("state", "unidentified"), ("state", "confirmed"),
                              ("camera", CAMERA), ("limit", "200")]
                    async with http.get(f"{portal}/api/cases", headers=POLICE, params=params,
                                        timeout=aiohttp.ClientTimeout(total=5)) as response:
                        items = (await response.json())["items"] if response.status == 200 else []
                    for item in items:
                        todo = self.step(item)
                        while todo is not None:
                            action, body = todo
                            status, answer = await post(item["case_id"], action, body)
                            todo = self.answered(item["case_id"], action, status, answer)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError, KeyError, ValueError):
                    pass
                await asyncio.sleep(0.5)


async def one_run(name: str, fault: str | None, args: argparse.Namespace, clip: Path, clip_s: float,
                  start_at: datetime) -> Run:
    run = Run(name=name, fault=fault)
    full = not args.smoke
    began = time.monotonic()
    slug = "".join(c if c.isalnum() else "_" for c in name)
    async with Stack(f"video_{slug}", keep=args.keep, with_postgres=full) as stack:
        log(f"{name}: work folder {stack.work}")
        env = {**os.environ, "DATABASE_URL": stack.url, "PYTHONPATH": str(REPO)}
        roadwatch = [ROADWATCH] if ROADWATCH else [sys.executable, "-m", "services.cli"]
        smtp = sms = None
        if full:
            extract = stack.work / "registry.csv"
            subprocess.run([*roadwatch, "registry", "synth", "--vehicles", "2000", "--plates", str(DEMO_PLATES),
                            "--out", str(extract), "--seed", "5"], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
            subprocess.run([*roadwatch, "registry", "import", str(extract)], check=True, env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL)
            with extract.open(encoding="utf-8") as handle:
                communes = sorted({row["owner_commune_code"] for row in csv.DictReader(handle)} | {"11311", "11312", "11314"})
            text = (REPO / "services/notify/notify.example.yaml").read_text(encoding="utf-8")
            text = text.replace('communes: ["11311", "11312", "11314"]',
                                "communes: [" + ", ".join(f'"{c}"' for c in communes) + "]")
            text = text.replace("  base_s: 30\n  max_s: 3600", "  base_s: 2\n  max_s: 10")
            (stack.work / "notify.yaml").write_text(text, encoding="utf-8")
            smtp = await SmtpSink().start()
            sms = await SmsGateway().start()
        scenes = stack.work / "scenes"
        scenes.mkdir()
        scene = (REPO / "deploy/local/scenes/demo-haiphong.yaml").read_text(encoding="utf-8")
        (scenes / f"{CAMERA}.yaml").write_text(scene.replace("camera: demo-haiphong", f"camera: {CAMERA}"),
                                              encoding="utf-8")
        cameras = stack.work / "cameras.yaml"
        cameras.write_text(
            f"cameras:\n  - id: {CAMERA}\n    name: chaos video\n    url: {clip}\n    fps: {args.fps}\n"
            f"    scene: scenes/{CAMERA}.yaml\n    loop: false\n    start_at: {start_at.isoformat()}\n"
            "    location: {latitude: 20.8449, longitude: 106.6881, commune_code: \"11311\"}\n", encoding="utf-8")
        if full:
            stack.add("registry")
            stack.add("portal", OUTBOX_RETRY_S="1", PUBLIC_RATE_PER_MINUTE="10000")
            stack.add("notify", NOTIFY_CONFIG=str(stack.work / "notify.yaml"), SMTP_PORT=str(smtp.port),
                      SMS_GATEWAY_URL=sms.url, POST_SPOOL_DIR=str(stack.work / "post"), LEASE_S="5",
                      ACK_WAIT_S="10", POLL_INTERVAL_S="0.2")
        stack.add("detect", MODELS_DIR=str(Path(args.shared) / "models"), MAX_FRAME_AGE_S="1000000000",
                  FRAMES_PER_CAMERA="100000")
        stack.add("track", SCENES_DIR=str(scenes))
        for service in stack.services:
            if service != "detect":
                await stack.ready(service)
        await stack.ready("detect", timeout=300)
        async def quiet(exc) -> None:  # reconnect errors while nats-server restarts are expected
            pass

        nc = await nats.connect(stack.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=quiet)
        js = nc.jetstream()
        frames: list[float] = []
        ended = asyncio.Event()

        async def on_frame(msg) -> None:
            frames.append(time.monotonic())

        async def on_status(msg) -> None:
            status = codec.decode(msg.data, CameraStatus)
            if status.state == "offline" and "end of file" in status.reason:
                ended.set()

        await nc.subscribe(subjects.frame_captured(CAMERA), cb=on_frame)
        await nc.subscribe(subjects.camera_status(CAMERA), cb=on_status)
        await nc.flush()
        # ingest last: the clip starts when everything downstream is listening.
        stack.add("ingest", CAMERAS_FILE=str(cameras), QUEUE_SIZE="200", PUBLISH_TIMEOUT_S="15", LEASE_TTL_S="30",
                  LEASE_SCAN_S="1")
        await stack.ready("ingest")
        log(f"{name}: {', '.join(stack.services)} ready; the clip plays ({clip_s:.0f} s)")

        stop = asyncio.Event()
        officer = Reviewer(review_plates(stack.work / "registry.csv")) if full else None
        review = asyncio.create_task(officer.run(f"http://127.0.0.1:{stack.services['portal'].port}", stop)) \
            if officer else None
        played = time.monotonic()
        deadline = played + args.timeout

        if fault:
            await asyncio.sleep(clip_s * args.fault_at)
            log(f"{name}: fault at {time.monotonic() - played:.1f} s of the clip ({len(frames)} frames so far)")
            started = time.monotonic()
            if fault == "nats":
                stack.kill_nats()
                await asyncio.sleep(args.down_s)
                stack.start_nats()
            else:
                stack.kill9(fault)
                await asyncio.sleep(args.down_s)
                stack.restart(fault)
                await stack.ready(fault, timeout=300)
            run.fault_s = time.monotonic() - started
            log(f"{name}: {fault} back after {run.fault_s:.1f} s")

        # The end: the camera's file is done, then nothing waits anywhere for a few seconds, and
        # (with the portal) every case notified or merged, but for those the reviewer gave up on.
        while not ended.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        if not ended.is_set():
            run.notes.append("ingest never reported the end of the clip")
        pool = await stack.connect(stack.url) if full else None
        quiet = 0
        while time.monotonic() < deadline and quiet < 4:
            done = await pipeline_idle(js)
            if done and pool is not None:
                states = await pool.fetch("SELECT case_id, state FROM portal.cases WHERE camera_id = $1", CAMERA)
                done = all(r["state"] in ("notified", "merged") or r["case_id"] in officer.refused for r in states)
            quiet = quiet + 1 if done else 0
            await asyncio.sleep(1)
        if quiet < 4:
            run.notes.append("the pipeline did not settle before the timeout")
        stop.set()
        if review:
            await review
            run.notes += [f"reviewer gave up on {case}: {why}" for case, why in sorted(officer.refused.items())]

        run.frames = (await js.stream_info("FRAMES", subjects_filter=subjects.frame_captured(CAMERA))).state.messages
        run.detections = (await js.stream_info("DETECTIONS",
                                               subjects_filter=subjects.detection_made(CAMERA))).state.messages
        detected = await ordered(js, f"traffic.violation.detected.v1.{CAMERA}.>", ViolationDetected)
        run.violations = [v.id for v in detected]
        run.events = {v.id: (v.type, v.rule, v.occurred_at.timestamp()) for v in detected}
        run.dead_letters = (await js.stream_info("DEAD_LETTERS")).state.messages
        if pool is not None:
            case_rows = await pool.fetch("SELECT case_id, violation_id, state FROM portal.cases WHERE camera_id = $1",
                                         CAMERA)
            for row in case_rows:
                run.cases.setdefault(row["violation_id"], []).append(row["case_id"])
                run.states[row["state"]] += 1
                if row["state"] == "merged":
                    run.merged.add(row["violation_id"])
            violation_of = {row["case_id"]: row["violation_id"] for row in case_rows}
            sent = await ordered(js, f"traffic.notice.sent.v1.{CAMERA}.>", NoticeSent)
            counts = collections.Counter((n.case_id, n.kind, n.channel) for n in sent)
            run.notices = dict(counts)
            for (case_id, kind, channel) in counts:
                if kind == "owner_notice":
                    run.channels_of.setdefault(violation_of.get(case_id, "?"), set()).add(channel)
            run.smtp_repeats = sum(n - 1 for n in smtp.message_ids.values() if n > 1)
            run.audit_lines = await pool.fetchval("SELECT count(*) FROM registry.owner_lookup_audit")
            await pool.close()
        health = await stack.health()
        for service, (alive, healthz, readyz) in health.items():
            if not (alive and healthz == 200 and readyz == 200):
                run.notes.append(f"{service} not healthy at the end ({healthz}/{readyz})")
        await nc.close()
        if smtp:
            await smtp.stop()
            await sms.stop()
    run.wall_s = time.monotonic() - began
    log(f"{name}: {run.frames} frames, {run.detections} detections, {len(run.violations)} violations, "
        f"{sum(len(c) for c in run.cases.values())} cases, {sum(run.notices.values())} notices ({run.wall_s:.0f} s)")
    return run


def compare(reference: Run, run: Run, full: bool) -> tuple[list, list[str]]:
    """A table row and the differences that fail the run."""
    ref_ids, ids = set(reference.violations), set(run.violations)
    missing, extra = sorted(ref_ids - ids), sorted(ids - ref_ids)
    repeated = [v for v, n in collections.Counter(run.violations).items() if n > 1]
    failures = []
    if missing:
        failures.append(f"{run.name}: {len(missing)} violations of the undisturbed run missing, e.g. {missing[:2]}")
    if extra:
        failures.append(f"{run.name}: {len(extra)} violations the undisturbed run does not have, e.g. {extra[:2]}")
    if repeated:
        failures.append(f"{run.name}: {len(repeated)} violation ids published twice")
    # A missing id whose event (type, rule, time within 0.5 s) is among the extra ones: the same
    # crossing judged again under another id (the id holds the track's number), not a loss.
    spare = [run.events[v] for v in extra]
    renamed = 0
    for v in missing:
        kind, rule, at = reference.events[v]
        match = next((e for e in spare if e[0] == kind and e[1] == rule and abs(e[2] - at) <= 0.5), None)
        if match is not None:
            spare.remove(match)
            renamed += 1
    row = [run.name, run.frames, run.detections, len(run.violations), len(ids & ref_ids), renamed,
           len(missing) - renamed, len(extra) - renamed]
    if full:
        cases = sum(len(c) for c in run.cases.values())
        double = [v for v, c in run.cases.items() if len(c) > 1]
        without = [v for v in ids if v not in run.cases]
        per_notice = [k for k, n in run.notices.items() if n != 1]
        same_channels = all(run.channels_of.get(v) == reference.channels_of.get(v) for v in ids & ref_ids)
        owner_notices = sum(n for (c, kind, ch), n in run.notices.items() if kind == "owner_notice")
        notified_cases = len({c for (c, kind, ch) in run.notices if kind == "owner_notice"})
        if double or without:
            failures.append(f"{run.name}: violations with ≠ 1 case: {len(double)} doubled, {len(without)} without")
        if per_notice:
            failures.append(f"{run.name}: {len(per_notice)} notices sent more than once, e.g. {per_notice[:2]}")
        if notified_cases != cases - len(run.merged):
            failures.append(f"{run.name}: {cases - len(run.merged) - notified_cases} cases (not merged) without an "
                            "owner notice")
        merged_otherwise = (run.merged ^ reference.merged) & ids & ref_ids
        if merged_otherwise:
            failures.append(f"{run.name}: {len(merged_otherwise)} violations merged in one run and not in the other")
        if not same_channels:
            failures.append(f"{run.name}: a case's notice channels differ from the undisturbed run")
        if run.audit_lines < notified_cases:
            failures.append(f"{run.name}: {run.audit_lines} owner-lookup audit lines for {notified_cases} noticed cases")
        row += [cases, run.states.get("notified", 0), len(run.merged), owner_notices, notified_cases, len(per_notice), run.smtp_repeats,
                run.audit_lines]
    row += [f"{run.fault_s:.1f}" if run.fault else "-", run.dead_letters]
    failures += [f"{run.name}: {note}" for note in run.notes]
    return row, failures


async def main_async(args: argparse.Namespace) -> int:
    shared = Path(args.shared)
    if os.environ.get("DATABASE_URL") and not args.allow_external_db:
        os.environ.pop("DATABASE_URL")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"rw-chaos-video-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    clip = work / f"haiphong-x{args.passes}.mp4"
    clip_s = repeat_clip(shared / CLIP, clip, args.passes)
    # One recording time for every run: the same capture times, hence the same ids. Recent, so
    # that the portal's and notify's deadlines (days from the violation) are today's.
    start_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta_s(600)
    log(f"clip {clip} ({clip_s:.1f} s, {args.passes} passes of {CLIP}) at {args.fps} fps, start_at {start_at.isoformat()}")
    runs = [await one_run("undisturbed", None, args, clip, clip_s, start_at)]
    for fault in args.faults:
        runs.append(await one_run(f"kill -9 {fault}" if fault != "nats" else "nats-server restart", fault, args,
                                  clip, clip_s, start_at))
    full = not args.smoke
    header = ["run", "frames", "detections", "violations", "same id", "same event, new id", "missing", "extra"]
    if full:
        header += ["cases", "notified", "merged", "owner notices", "cases noticed", "notice sent ≠1", "e-mail repeats",
                   "lookup audit lines"]
    header += ["fault s", "dead letters"]
    rows, failures = [], []
    for run in runs:
        row, failed = compare(runs[0], run, full)
        rows.append(row)
        failures += failed
    if not runs[0].violations:
        failures.append("the undisturbed run found no violation: nothing to compare")
    print()
    print_table(header, rows)
    if failures:
        print("\nDIFFERENCES:\n  " + "\n  ".join(failures), flush=True)
        return 1
    print("\nOK: every run has the undisturbed run's violations (by id), cases and notices", flush=True)
    return 0


def timedelta_s(seconds: float):
    from datetime import timedelta

    return timedelta(seconds=seconds)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=6, help="times the 7 s clip is played (default 6)")
    parser.add_argument("--fps", type=float, default=4)
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    parser.add_argument("--fault-at", type=float, default=0.45, help="fraction of the clip played before the fault")
    parser.add_argument("--down-s", type=float, default=2)
    parser.add_argument("--timeout", type=float, default=600, help="per run, from the start of the clip")
    parser.add_argument("--smoke", action="store_true",
                        help="ingest, detect, track only, 1 pass; nats-server restarted unless --faults says otherwise")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (logs)")
    parser.add_argument("--allow-external-db", action="store_true")
    parser.add_argument("--shared", default=str(DEFAULT_SHARED))
    args = parser.parse_args(argv)
    args.faults_given = args.faults != ",".join(FAULTS)
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)} (expected {', '.join(FAULTS)})")
    if args.smoke:
        args.passes, args.timeout = 1, min(args.timeout, 120)
        args.faults = args.faults if args.faults_given else ["nats"]
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
