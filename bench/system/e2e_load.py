"""End-to-end load: N cameras (the real clips, looping as files at a fixed rate) through
ingest → detect → track → registry → portal on this machine, for a fixed time. Reported, each
next to a baseline measured in the same run on the same frames:

  * frames/s carried by detect and its CPU per frame
                                       vs the bare models alone (`session.run` of the vehicle and
                                          plate detectors on tensors made beforehand, one thread:
                                          bench/detect_throughput.py's models_alone), always, and
                                          the bare detect pipeline (JPEG decode + Pipeline.process)
  * ingest CPU per camera              vs a bare PyAV decode of the same clip paced at the clip's
                                          own rate, as ingest decodes a live camera (bench/ingest_cpu.py)
  * PostgreSQL use of the pipeline     vs `pgbench -S` on the same server (bench/registry_lookup.py)
  * detect utilisation (handler busy time / wall time), frames dropped per camera (stale or
    superseded: detect's fair admission), frame→detection and frame→violation latency
    p50/p95/p99, CPU (cores) and resident memory per service, cameras per core.

With --json, the tables go to stderr and stdout gets one JSON document: per camera count
offered_fps, carried_fps, violation_p50_s, violation_p95_s, stack_cpu_cores, cameras_per_core,
models_alone_fps (and more; see summary()).

    python bench/system/e2e_load.py                      # 1, 4 and 8 cameras at 5 frames/s, 60 s each (~8 min)
    python bench/system/e2e_load.py --cameras 4 --fps 5 --seconds 120 --json
    python bench/system/e2e_load.py --quick              # 2 cameras, 30 s
    python bench/system/e2e_load.py --smoke --json       # 1 camera, a few seconds (the test suite's smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the single benchmarks, for their baselines

import nats  # noqa: E402

from bench.system.stack import DEFAULT_SHARED, REPO, ROADWATCH, Sampler, Stack, percentile, print_table  # noqa: E402
from proto import codec, subjects  # noqa: E402
from proto.v1.detection import DetectionMade  # noqa: E402
from proto.v1.violation import ViolationDetected  # noqa: E402

CLIPS = {"haiphong": "vn_haiphong_intersection.mp4", "saigon": "vn_saigon_intersection.mp4"}


def baselines(shared: Path, n_frames: int, decode_seconds: float) -> dict[str, float]:
    """The bare figures, in this process, before the stack starts (nothing else running)."""
    import detect_throughput
    import ingest_cpu

    from services.detect.pipeline import Pipeline
    from services.detect.settings import Settings as DetectSettings

    out: dict[str, float] = {}
    frames = detect_throughput.load_frames(shared / "data/video", every=3, limit=n_frames)
    settings = DetectSettings(models_dir=str(shared / "models"), http_port=0)
    pipeline = Pipeline.from_settings(settings)
    pipeline.process(__import__("cv2").imdecode(__import__("numpy").frombuffer(frames[0], "uint8"), 1))  # warm-up
    out["models_alone_fps"], out["models_alone_cpu_per_frame"] = detect_throughput.models_alone(pipeline, frames)
    fps, _, cpu_per_frame = detect_throughput.bare_pipeline(pipeline, frames)
    out["bare_pipeline_fps"], out["bare_pipeline_cpu_per_frame"] = fps, cpu_per_frame
    # Paced: ingest decodes a live camera at its own rate, so its baseline does too (like with like).
    cpu, video_s = ingest_cpu.bare_decode(shared / "data/video" / CLIPS["haiphong"], decode_seconds, 1, paced=True)
    out["bare_decode_cpu_per_video_s"] = cpu / video_s
    del pipeline
    return out


def camera_counts(metrics: dict[str, float]) -> dict[str, collections.Counter]:
    """camera -> Counter(result -> frames), from detect's roadwatch_detect_camera_frames_total."""
    found: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for key, value in metrics.items():
        match = re.fullmatch(r'roadwatch_detect_camera_frames_total\{camera="([^"]+)",result="([^"]+)"\}', key)
        if match:
            found[match.group(1)][match.group(2)] += value
    return found


def number(value: float) -> float | None:
    """JSON has no NaN: a figure that could not be measured (no violations) is null."""
    return None if value is None or math.isnan(value) else round(value, 4)


def pgbench_baseline(url: str, seconds: int) -> float:
    import registry_lookup

    registry_lookup.run_pgbench(url, ["-i", "-s", "5", "-q"])
    tps, _ = registry_lookup.pgbench_tps(registry_lookup.run_pgbench(url, ["-S", "-c", "4", "-j", "2", "-T", str(seconds)]))
    return tps


def scenes_for(cameras: list[tuple[str, str]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for camera, clip in cameras:
        text = (REPO / f"deploy/local/scenes/demo-{clip}.yaml").read_text(encoding="utf-8")
        text = text.replace(f"camera: demo-{clip}", f"camera: {camera}")
        if "  source: vision\n" in text:  # each camera reads its own lamps
            text = text.replace("  source: vision\n", f"  source: vision\n  intersection: x-{camera}\n")
        (folder / f"{camera}.yaml").write_text(text, encoding="utf-8")


async def main_async(args: argparse.Namespace) -> int:
    shared = Path(args.shared)
    counts = [int(n) for n in str(args.cameras).split(",")]
    print(f"{os.cpu_count()} CPUs; {counts} camera(s) at {args.fps} frames/s, {args.seconds:.0f} s each", flush=True)
    base = await asyncio.to_thread(baselines, shared, args.baseline_frames, args.decode_seconds)
    print(f"baselines: models alone {base['models_alone_fps']:.2f} frames/s "
          f"({base['models_alone_cpu_per_frame'] * 1000:.0f} ms CPU/frame), bare detect pipeline "
          f"{base['bare_pipeline_fps']:.2f} frames/s ({base['bare_pipeline_cpu_per_frame'] * 1000:.0f} ms CPU/frame), "
          f"bare PyAV decode paced at the clip's rate {base['bare_decode_cpu_per_video_s'] * 100:.1f}% of a core "
          "per camera (25 fps clip)", flush=True)
    rows, runs = [], []
    for n in counts:
        args.n = n
        print(f"\n=== {n} camera(s) at {args.fps} frames/s ===", flush=True)
        row, run = await run_one(args, shared, base)
        rows.append(row)
        runs.append(run)
    print("\nsummary:")
    print_table(["cameras", "offered", "carried by detect", "dropped", "detect util.", "frame→detection p50/p95/p99",
                 "frame→violation p50/p95/p99 (n)", "stack CPU", "cameras per core", "detect CPU/frame vs models alone",
                 "detect RSS peak"], rows)
    if args.json:
        document = {"cpus": os.cpu_count(), "fps_per_camera": args.fps, "seconds": args.seconds,
                    "detect_workers": args.detect_workers or "default (cores available)",
                    "baselines": {k: number(v) for k, v in base.items()}, "runs": runs}
        print(json.dumps(document, indent=2), file=args.stdout, flush=True)
    return 0


async def run_one(args: argparse.Namespace, shared: Path, base: dict[str, float]) -> list[str]:
    async with Stack(f"load{args.n}", keep=args.keep) as stack:
        tps = await asyncio.to_thread(pgbench_baseline, stack.url, args.pgbench_seconds)
        print(f"baseline: pgbench -S {tps:,.0f} transactions/s (4 clients)", flush=True)
        cameras = [(f"load-{list(CLIPS)[i % 2]}-{i}", list(CLIPS)[i % 2]) for i in range(args.n)]
        scenes_for(cameras, stack.work / "scenes")
        lines = ["cameras:"]
        for camera, clip in cameras:
            lines += [f"  - id: {camera}", f"    name: {camera}", f"    url: {shared / 'data/video' / CLIPS[clip]}",
                      f"    fps: {args.fps}", "    jpeg_quality: 85", f"    scene: scenes/{camera}.yaml",
                      "    location: {latitude: 20.8449, longitude: 106.6881, commune_code: \"11311\"}"]
        (stack.work / "cameras.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        # Registry: a synthetic extract (the clips' plates are mostly not in it: unidentified cases).
        env = {**os.environ, "DATABASE_URL": stack.url}
        import subprocess

        roadwatch = [ROADWATCH] if ROADWATCH else [sys.executable, "-m", "services.cli"]
        env["PYTHONPATH"] = str(REPO)
        subprocess.run([*roadwatch, "registry", "synth", "--vehicles", "20000", "--out",
                        str(stack.work / "registry.csv")], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        subprocess.run([*roadwatch, "registry", "import", str(stack.work / "registry.csv")],
                       check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        stack.add("registry")
        stack.add("portal")
        stack.add("track", SCENES_DIR=str(stack.work / "scenes"))
        detect_env = {"MODELS_DIR": str(shared / "models"), "BATCH_SIZE": str(args.batch)}
        if args.detect_workers:  # else the service's default: the cores available to it
            detect_env["WORKERS"] = str(args.detect_workers)
        stack.add("detect", **detect_env)
        for name in list(stack.services):
            await stack.ready(name)
        nc = await nats.connect(stack.nats_url)
        detections: list[float] = []
        violations: list[tuple[float, ViolationDetected]] = []
        per_camera = collections.Counter()

        async def on_detection(msg) -> None:
            event = codec.decode(msg.data, DetectionMade)
            detections.append(time.time() - event.occurred_at.timestamp())
            per_camera[event.camera_id] += 1

        async def on_violation(msg) -> None:
            event = codec.decode(msg.data, ViolationDetected)
            violations.append((time.time(), event))

        await nc.subscribe(subjects.ALL_DETECTIONS, cb=on_detection)
        await nc.subscribe(subjects.ALL_VIOLATIONS_DETECTED, cb=on_violation)
        stack.add("ingest", CAMERAS_FILE=str(stack.work / "cameras.yaml"))
        await stack.ready("ingest")
        await asyncio.sleep(args.warmup)  # the first frames: models warm, consumers created
        detections.clear()
        per_camera.clear()
        violations.clear()
        detect_before = await stack.metrics("detect")
        sampler = Sampler(stack)
        sampler.start()
        js = nc.jetstream()
        frames_before = (await js.stream_info("FRAMES")).state.messages
        started = time.monotonic()
        await asyncio.sleep(args.seconds)
        elapsed = time.monotonic() - started
        await sampler.stop()
        frames_after = (await js.stream_info("FRAMES")).state.messages
        detect_after = await stack.metrics("detect")
        n_det = len(detections)

        def busy(values: dict[str, float]) -> float:
            return sum(v for k, v in values.items()
                       if k.startswith("roadwatch_handler_duration_seconds_sum") and 'service="detect"' in k)

        utilisation = (busy(detect_after) - busy(detect_before)) / elapsed
        # Violations: occurred_at is the capture time of the frame that fired the rule.
        latencies = [arrived - v.occurred_at.timestamp() for arrived, v in violations]
        pool = await stack.connect(stack.url)
        window = [v.id for _, v in violations]
        cases = await pool.fetch("SELECT created_at, violation_at, state FROM portal.cases WHERE violation_id = ANY($1)",
                                 window)
        case_latency = [(r["created_at"] - r["violation_at"]).total_seconds() for r in cases]
        await pool.close()
        offered = args.n * args.fps
        ingested = (frames_after - frames_before) / elapsed
        processed = n_det / elapsed
        usage = {name: cores for name, cores, _, _ in sampler.table()}
        total_cores = sum(usage.values())
        detect_cpu_per_frame = usage.get("detect", 0) / processed if processed else float("nan")
        ingest_per_camera = usage.get("ingest", 0) / args.n
        dropped_by_camera = {camera: {result: int(n - camera_counts(detect_before).get(camera, {}).get(result, 0))
                                      for result, n in counter.items()}
                             for camera, counter in camera_counts(detect_after).items()}
        dropped = sum(n for results in dropped_by_camera.values() for r, n in results.items() if r != "detected")
        models_cpu = base["models_alone_cpu_per_frame"]
        cameras_per_core = processed / args.fps / max(total_cores, 1e-9)
        print()
        rows = [
            ["frames offered (cameras × fps)", f"{offered:.1f}/s", "", ""],
            ["frames published by ingest", f"{ingested:.2f}/s", "", ""],
            ["frames carried by detect", f"{processed:.2f}/s", f"models alone {base['models_alone_fps']:.2f}/s, "
             f"bare pipeline {base['bare_pipeline_fps']:.2f}/s", f"{processed / base['bare_pipeline_fps']:.2f}"],
            ["frames dropped by detect (stale or superseded)", f"{dropped}", "", ""],
            ["detect CPU per frame", f"{detect_cpu_per_frame * 1000:.0f} ms",
             f"models alone {models_cpu * 1000:.0f} ms, bare pipeline {base['bare_pipeline_cpu_per_frame'] * 1000:.0f} ms",
             f"{detect_cpu_per_frame / models_cpu:.2f} / {detect_cpu_per_frame / base['bare_pipeline_cpu_per_frame']:.2f}"],
            ["detect utilisation (handler time / wall)", f"{utilisation:.0%}", "", ""],
            ["ingest CPU per camera", f"{ingest_per_camera:.1%} of a core",
             f"bare PyAV decode, paced {base['bare_decode_cpu_per_video_s']:.1%}",
             f"{ingest_per_camera / base['bare_decode_cpu_per_video_s']:.2f}"],
            ["frame → detection latency p50 / p95 / p99",
             f"{percentile(detections, .5):.2f} / {percentile(detections, .95):.2f} / {percentile(detections, .99):.2f} s",
             f"bare pipeline {1 / base['bare_pipeline_fps']:.2f} s per frame", ""],
            ["violations (frame → violation.detected) p50 / p95 / p99",
             f"{len(latencies)}: {percentile(latencies, .5):.1f} / {percentile(latencies, .95):.1f} / "
             f"{percentile(latencies, .99):.1f} s" if latencies else "0", "", ""],
            ["cases opened (violation time → case row) p50 / p95",
             f"{len(cases)}: {percentile(case_latency, .5):.1f} / {percentile(case_latency, .95):.1f} s"
             if cases else "0", "", ""],
            ["PostgreSQL transactions of the pipeline", f"≈{len(cases) * 3 / elapsed:.1f}/s (3 per case)",
             f"pgbench -S {tps:,.0f}/s", f"{len(cases) * 3 / elapsed / tps:.5f}"],
            ["CPU of the whole stack", f"{total_cores:.2f} cores of {os.cpu_count()}", "", ""],
            ["cameras per core at this rate", f"{cameras_per_core:.2f}",
             f"bare pipeline {base['bare_pipeline_fps'] / args.fps:.2f}", ""],
        ]
        print_table(["figure", "pipeline", "baseline (same run)", "ratio"], rows)
        print()
        print_table(["process", "CPU (cores)", "RSS mean (MiB)", "RSS peak (MiB)"],
                    [[n, f"{c:.2f}", f"{m:.0f}", f"{p:.0f}"] for n, c, m, p in sorted(sampler.table())])
        print(f"\nper camera, detect's frames in the window: {dropped_by_camera}; violations by type: "
              f"{dict(collections.Counter(v.type for _, v in violations))}", flush=True)
        await nc.close()
        peak = {name: p for name, _, _, p in sampler.table()}
        row = [str(args.n), f"{offered:.0f}/s", f"{processed:.2f}/s", str(dropped), f"{utilisation:.0%}",
               f"{percentile(detections, .5):.2f} / {percentile(detections, .95):.2f} / {percentile(detections, .99):.2f} s",
               (f"{percentile(latencies, .5):.1f} / {percentile(latencies, .95):.1f} / {percentile(latencies, .99):.1f} s "
                f"({len(latencies)})") if latencies else "— (0)",
               f"{total_cores:.2f}", f"{cameras_per_core:.2f}",
               f"{detect_cpu_per_frame * 1000:.0f} / {models_cpu * 1000:.0f} ms ({detect_cpu_per_frame / models_cpu:.2f}×)",
               f"{peak.get('detect', 0):.0f} MiB"]
        run = {
            "cameras": args.n,
            "offered_fps": number(offered),
            "published_fps": number(ingested),
            "carried_fps": number(processed),
            "carried_share": number(processed / offered),
            "violation_p50_s": number(percentile(latencies, .5)),
            "violation_p95_s": number(percentile(latencies, .95)),
            "violations": len(latencies),
            "detection_p50_s": number(percentile(detections, .5)),
            "detection_p95_s": number(percentile(detections, .95)),
            "stack_cpu_cores": number(total_cores),
            "cameras_per_core": number(cameras_per_core),
            "models_alone_fps": number(base["models_alone_fps"]),
            "models_alone_cpu_per_frame_s": number(models_cpu),
            "detect_cpu_per_frame_s": number(detect_cpu_per_frame),
            "detect_cpu_vs_models_alone": number(detect_cpu_per_frame / models_cpu),
            "detect_utilisation": number(utilisation),
            "frames_dropped": dropped,
            "per_camera": dropped_by_camera,
            "cpu_cores_by_process": {name: number(cores) for name, cores in usage.items()},
        }
        return row, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", default="1,4,8", help="camera counts, one run each (comma-separated)")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--detect-workers", type=int, default=0,
                        help="detect's WORKERS (model threads); default: the service's own (cores available)")
    parser.add_argument("--baseline-frames", type=int, default=40)
    parser.add_argument("--decode-seconds", type=float, default=10.0,
                        help="video seconds of the paced decode baseline (takes as long in wall time)")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="tables to stderr, a JSON summary to stdout")
    parser.add_argument("--quick", action="store_true", help="2 cameras for 30 s")
    parser.add_argument("--smoke", action="store_true", help="1 camera, a few seconds: does it run at all")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--shared", default=str(DEFAULT_SHARED))
    args = parser.parse_args()
    if args.quick:
        args.cameras, args.seconds, args.warmup, args.baseline_frames = "2", 30, 10, 20
    if args.smoke:
        args.cameras, args.seconds, args.warmup, args.baseline_frames = "1", 6, 4, 4
        args.decode_seconds, args.pgbench_seconds = 2.0, 1
    args.stdout = sys.stdout
    if not args.json:
        return asyncio.run(main_async(args))
    with contextlib.redirect_stdout(sys.stderr):
        return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
