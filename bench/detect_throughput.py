"""Throughput and latency of the detect service against a bare loop over the same frames.

Frames: every 3rd frame of the two Vietnamese clips, JPEG-encoded as ingest publishes them.
Measured in one run, on one machine, in this order:
  * bare model loop: only `session.run` of the vehicle and plate detectors on pre-made tensors
    (the floor of the work; no JPEG decode, no plate reading);
  * bare pipeline loop: JPEG decode + `Pipeline.process` in a plain Python loop, one thread,
    no bus: the same work the service does per frame — the baseline for the ratio;
  * the service (`roadwatch detect` subprocess on a local nats-server) at BATCH_SIZE 1, 4, 8:
    throughput with a backlog of all frames published at once, CPU time per frame of the
    service process, then latency (publish → detection received) with frames paced at a fixed
    rate, and the worker's resident memory (VmHWM);
  each service configuration alternates with the bare pipeline loop (best of --reps each), so
  that load from other processes on a shared machine hits both sides of the ratio alike.

    make bench-detect      (= MODELS_DIR=../shared/models python bench/detect_throughput.py --shared ../shared)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nats  # noqa: E402

from proto import codec, subjects  # noqa: E402
from proto.v1.detection import DetectionMade  # noqa: E402
from proto.v1.frame import frame_headers, new_frame_meta  # noqa: E402
from services import localstack  # noqa: E402
from services.detect.pipeline import Pipeline  # noqa: E402
from services.detect.settings import Settings  # noqa: E402
from services.runtime import bus  # noqa: E402
from services.runtime.settings import load  # noqa: E402
from proto import streams  # noqa: E402

CLIPS = ("vn_haiphong_intersection.mp4", "vn_saigon_intersection.mp4")
REPO = Path(__file__).resolve().parents[1]


def load_frames(video_dir: Path, every: int, limit: int) -> list[bytes]:
    frames = []
    for clip in CLIPS:
        with av.open(str(video_dir / clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every == 0:
                    ok, data = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 85])
                    frames.append(data.tobytes())
                if len(frames) >= limit * (CLIPS.index(clip) + 1) // len(CLIPS):
                    break
    return frames


def models_alone(pipeline: Pipeline, frames: list[bytes]) -> tuple[float, float]:
    """The floor of detect's work: only `session.run` of the vehicle and plate detectors on
    tensors made beforehand, one thread. (frames/s, CPU seconds per frame)."""
    images = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames]
    vt = [pipeline.vehicles.preprocess(im)[0] for im in images]
    pt = [pipeline.reader.detector.preprocess(im)[0] for im in images]
    cpu = time.process_time()
    started = time.perf_counter()
    for a, b in zip(vt, pt):
        pipeline.vehicles.run(a)
        pipeline.reader.detector.run(b)
    return len(frames) / (time.perf_counter() - started), (time.process_time() - cpu) / len(frames)


def bare_models(pipeline: Pipeline, frames: list[bytes]) -> float:
    return models_alone(pipeline, frames)[0]


def bare_pipeline(pipeline: Pipeline, frames: list[bytes]) -> tuple[float, list[float], float]:
    """(frames/s, seconds per frame, CPU seconds per frame)."""
    times = []
    cpu = time.process_time()
    started = time.perf_counter()
    for f in frames:
        t = time.perf_counter()
        pipeline.process(cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR))
        times.append(time.perf_counter() - t)
    return len(frames) / (time.perf_counter() - started), times, (time.process_time() - cpu) / len(frames)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: unlike wall time, barely moved by other load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_service(nats_url: str, frames: list[bytes], batch: int, workers: int, run: int,
                      pipeline: Pipeline, reps: int, latency_fps: float, intra_op: int = 1) -> dict:
    """One service process per configuration; `reps` pairs of (bare loop, service backlog), the
    best of each kept, so that a burst of load from elsewhere on the machine does not decide.
    The backlog is published at once, so FRAMES_PER_CAMERA is raised to keep every frame (the
    overload admission would otherwise detect only the newest of the one bench camera)."""
    env = {**os.environ, "NATS_URL": nats_url, "BATCH_SIZE": str(batch), "WORKERS": str(workers),
           "INTRA_OP_THREADS": str(intra_op), "FRAMES_PER_CAMERA": str(len(frames) + 1),
           "HTTP_PORT": str(localstack.free_port()), "MAX_FRAME_AGE_S": "3600", "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "detect"], cwd=REPO, env=env)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        deadline = time.monotonic() + 60
        while True:  # ready once its durable consumer has a pull waiting
            try:
                info = await js.consumer_info("FRAMES", streams.DETECT.name)
                if info.num_waiting:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("detect service did not start")
            await asyncio.sleep(0.1)

        async def send(camera: str, seq: int, data: bytes) -> None:
            meta = new_frame_meta(camera_id=camera, frame_seq=seq, captured_at=datetime.now(timezone.utc),
                                  width=1, height=1)
            await js.publish(subjects.frame_captured(camera), data, headers=frame_headers(meta))

        received: dict[int, float] = {}
        done = asyncio.Event()
        expected = len(frames)

        async def on_detection(msg):
            event = codec.decode(msg.data, DetectionMade)
            received[event.frame.frame_seq] = time.perf_counter()
            if len(received) == expected:
                done.set()

        bare_best, service_best = 0.0, 0.0
        bare_cpu, service_cpu = float("inf"), float("inf")
        for rep in range(reps):
            fps, _, cpu = bare_pipeline(pipeline, frames)
            bare_best, bare_cpu = max(bare_best, fps), min(bare_cpu, cpu)
            camera = f"bench-{run}-tput-{rep}"
            received.clear()
            done.clear()
            sub = await nc.subscribe(subjects.detection_made(camera), cb=on_detection)
            cpu_before = cpu_seconds(process.pid)
            started = time.perf_counter()
            await asyncio.gather(*(send(camera, i, f) for i, f in enumerate(frames)))
            await asyncio.wait_for(done.wait(), 600)
            service_best = max(service_best, len(frames) / (max(received.values()) - started))
            service_cpu = min(service_cpu, (cpu_seconds(process.pid) - cpu_before) / len(frames))
            await sub.unsubscribe()

        # latency: frames paced at a fixed rate well under every configuration's throughput, so
        # that the figures compare configurations rather than queues
        camera = f"bench-{run}-lat"
        received.clear()
        done.clear()
        sent: dict[int, float] = {}
        sub = await nc.subscribe(subjects.detection_made(camera), cb=on_detection)
        interval = 1.0 / latency_fps
        for i, f in enumerate(frames):
            sent[i] = time.perf_counter()
            await send(camera, i, f)
            await asyncio.sleep(max(0.0, sent[i] + interval - time.perf_counter()))
        await asyncio.wait_for(done.wait(), 600)
        await sub.unsubscribe()
        latencies = sorted((received[i] - sent[i]) * 1000 for i in sent)
        return {
            "bare": bare_best,
            "fps": service_best,
            "bare_cpu": bare_cpu * 1000,
            "cpu": service_cpu * 1000,
            "p50": statistics.median(latencies),
            "p95": latencies[int(round(0.95 * (len(latencies) - 1)))],
            "rss": rss_peak_mib(process.pid),
        }
    finally:
        await nc.close()
        process.terminate()
        process.wait(30)


async def main_async(args, settings: Settings) -> int:
    frames = load_frames(args.video, args.every, args.frames)
    pipeline = Pipeline.from_settings(settings)
    pipeline.process(cv2.imdecode(np.frombuffer(frames[0], np.uint8), cv2.IMREAD_COLOR))  # warm-up
    print(f"{len(frames)} frames from {', '.join(CLIPS)}; INTRA_OP_THREADS={settings.intra_op_threads}; "
          f"best of {args.reps} per configuration")
    models_fps = max(bare_models(pipeline, frames) for _ in range(args.reps))
    base_fps, base_times, _ = bare_pipeline(pipeline, frames)
    ms = sorted(t * 1000 for t in base_times)
    print(f"\nbare model loop (vehicle + plate detector session.run only): {models_fps:.2f} frames/s")
    print(f"bare pipeline loop: {base_fps:.2f} frames/s, per frame p50 {statistics.median(ms):.1f} ms, "
          f"p95 {ms[int(round(0.95 * (len(ms) - 1)))]:.1f} ms")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = localstack.free_port()
        server = localstack.start_nats(Path(tmp) / "js", port)
        url = f"nats://127.0.0.1:{port}"
        try:
            nc = await nats.connect(url)
            await bus.ensure_streams(nc.jetstream(), (streams.FRAMES, streams.DETECTIONS, streams.DEAD_LETTERS))
            await nc.close()
            # Threads over frames (WORKERS) against threads inside each model (INTRA_OP_THREADS),
            # the same number of cores either way: which the defaults should use.
            configs = ([(b, 1, 1) for b in (args.batches if args.batches is not None else (1, 4, 8))]
                       + [(b, 2, 1) for b in args.two_workers]
                       + [(b, 1, 2) for b in args.two_intra_op])
            for run, (batch, workers, intra_op) in enumerate(configs):
                r = await run_service(url, frames, batch, workers, run, pipeline, args.reps, args.latency_fps, intra_op)
                rows.append((f"B={batch} W={workers} INTRA={intra_op}", r))
        finally:
            localstack.stop_process(server)
    print(f"\n{'service':<22} {'frames/s':>8} {'bare f/s':>8} {'ratio':>6} {'CPU ms/f':>8} {'bare CPU':>8} "
          f"{'ratio':>6} {'p50 ms':>7} {'p95 ms':>7} {'RSS MiB':>7}")
    for name, r in rows:
        print(f"{name:<22} {r['fps']:8.2f} {r['bare']:8.2f} {r['fps'] / r['bare']:6.2f} {r['cpu']:8.1f} "
              f"{r['bare_cpu']:8.1f} {r['bare_cpu'] / r['cpu']:6.2f} {r['p50']:7.1f} {r['p95']:7.1f} {r['rss']:7.1f}")
    print("\nframes/s ratio = service over the bare pipeline loop (decode + process, one thread, no bus), the")
    print("two measured alternately (best of --reps each); CPU ratio = bare CPU ms per frame over the service")
    print("process's CPU ms per frame (the bus client, JSON and threads included; nats-server excluded), which")
    print(f"other load on the machine hardly moves. Latency = publish to detection received, frames paced at")
    print(f"{args.latency_fps:g} frames/s; RSS = peak resident memory of the service process.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="the shared folder (data/video)")
    parser.add_argument("--video", type=Path, help="folder of the clips (default: SHARED/data/video)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--two-workers", type=int, nargs="*", default=[8], help="batch sizes to also run with WORKERS=2")
    parser.add_argument("--two-intra-op", type=int, nargs="*", default=[8],
                        help="batch sizes to also run with WORKERS=1 INTRA_OP_THREADS=2")
    parser.add_argument("--batches", type=int, nargs="*", default=None,
                        help="WORKERS=1 batch sizes (default 1 4 8); with --frames 8 --reps 1 a smoke run")
    parser.add_argument("--latency-fps", type=float, default=4.0, help="frame rate of the latency run")
    parser.add_argument("--reps", type=int, default=3, help="alternating bare/service repetitions per configuration")
    args = parser.parse_args(argv)
    args.video = args.video or args.shared / "data" / "video"
    settings = load(Settings, service="bench-detect")
    return asyncio.run(main_async(args, settings))


if __name__ == "__main__":
    sys.exit(main())
