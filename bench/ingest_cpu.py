"""CPU cost of the ingest service per camera-minute, against a bare PyAV decode of the same clip.

    .venv/bin/python bench/ingest_cpu.py [--shared ../shared] [--clip PATH] [--cameras 2] [--seconds 30] [--fps 5]

Runs a real nats-server and the real service process with N cameras playing the clip in real
time (as live cameras would), sampled to --fps and published on JetStream; measures the
service's CPU time (user + system, all threads, from /proc) over a steady window, and the
camera-seconds of video it decoded in that window (from /cameras). The baseline, measured in
the same run on the same machine, before and after the service (averaged): this process decoding
the same clip with PyAV in one thread per camera, one decoder thread each like the service,
paced at the clip's own rate as the service decodes a live camera (like with like: a decoder
fed in real time pays for cold caches between frames, one flat out does not), with nothing else
done. A flat-out decode is printed beside it for information. The goal is a ratio of at most 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services import localstack  # noqa: E402

CLIP = Path("data") / "video" / "vn_haiphong_intersection.mp4"
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _decode_loop(clip: Path, video_seconds: float, paced: bool, out: list[float]) -> None:
    decoded = 0.0
    start = time.monotonic()
    while decoded < video_seconds:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            rate = float(stream.average_rate)
            for _ in container.decode(stream):
                decoded += 1 / rate
                if decoded >= video_seconds:
                    break
                if paced and (delay := start + decoded - time.monotonic()) > 0:
                    time.sleep(delay)
    out.append(decoded)


def bare_decode(clip: Path, video_seconds: float, threads: int, *, paced: bool = False) -> tuple[float, float]:
    """CPU seconds for `threads` threads each decoding `video_seconds` of the clip, as the
    service decodes one camera per thread; returns (cpu, total video seconds). Paced: frames
    are decoded at the clip's own rate, as a live camera delivers them (caches go cold between
    frames, which costs about a tenth more than decoding flat out)."""
    done: list[float] = []
    workers = [threading.Thread(target=_decode_loop, args=(clip, video_seconds, paced, done)) for _ in range(threads)]
    start = self_cpu()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return self_cpu() - start, sum(done)


def cameras_report(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cameras", timeout=5) as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared data folder")
    parser.add_argument("--clip", type=Path, default=None, help=f"default: SHARED/{CLIP}")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (after a 4 s warm-up)")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--baseline-seconds", type=float, default=0.0,
                        help="video seconds per thread of each paced baseline (as long in wall time); "
                             "default max(0.6 x --seconds, 15)")
    parser.add_argument("--motion", action="store_true", help="enable the motion gate on every camera")
    parser.add_argument("--encoder", choices=("auto", "turbojpeg", "opencv"), default="auto",
                        help="JPEG_ENCODER of the service")
    args = parser.parse_args()
    args.clip = (args.clip or args.shared / CLIP).resolve()
    if not args.clip.exists():
        print(f"clip not found: {args.clip}", file=sys.stderr)
        return 2
    with av.open(str(args.clip)) as container:
        stream = container.streams.video[0]
        width, height, clip_fps = stream.codec_context.width, stream.codec_context.height, float(stream.average_rate)

    # The machine may be shared: measure the baseline before and after the service and average.
    per_thread = args.baseline_seconds or max(args.seconds * 0.6, 15.0)
    before_cpu, before_video = bare_decode(args.clip, per_thread, args.cameras, paced=True)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmpdir = Path(tmp)
        nats_port, http_port = localstack.free_port(), localstack.free_port()
        nats = localstack.start_nats(tmpdir / "js", nats_port, log_file=tmpdir / "nats.log")
        cameras = tmpdir / "cameras.yaml"
        entries = "".join(
            f"  - id: bench-{i}\n    name: bench {i}\n    url: {args.clip}\n    fps: {args.fps}\n"
            f"    scene: bench.yaml\n    location: {{latitude: 20.84, longitude: 106.69}}\n"
            + ("    motion: true\n" if args.motion else "")
            for i in range(args.cameras))
        cameras.write_text("cameras:\n" + entries, encoding="utf-8")
        env = {**os.environ, "NATS_URL": f"nats://127.0.0.1:{nats_port}", "HTTP_PORT": str(http_port),
               "CAMERAS_FILE": str(cameras), "REPLICA_ID": "bench", "LOG_LEVEL": "INFO",
               "JPEG_ENCODER": args.encoder,
               "PYTHONPATH": str(REPO)}
        log = open(tmpdir / "ingest.log", "wb")
        service = subprocess.Popen([sys.executable, "-m", "services.cli", "ingest"], cwd=REPO, env=env,
                                   stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    report = cameras_report(http_port)
                    if len(report["cameras"]) == args.cameras and all(c["frames_out"] > 0 for c in report["cameras"]):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or service.poll() is not None:
                    print((tmpdir / "ingest.log").read_text()[-3000:], file=sys.stderr)
                    raise SystemExit("the service did not start publishing")
                time.sleep(0.2)
            time.sleep(4.0)  # warm-up: every camera past its first open
            before = cameras_report(http_port)
            cpu_before, nats_before, wall_before = process_cpu(service.pid), process_cpu(nats.pid), time.monotonic()
            time.sleep(args.seconds)
            after = cameras_report(http_port)
            cpu_after, nats_after, wall_after = process_cpu(service.pid), process_cpu(nats.pid), time.monotonic()
        finally:
            service.terminate()
            service.wait(20)
            localstack.stop_process(nats)
            log.close()
            service_log = (tmpdir / "ingest.log").read_text(errors="replace")
    started = {c["camera"]: c["frames_in"] for c in before["cameras"]}
    if any(c["frames_in"] < started.get(c["camera"], 0) for c in after["cameras"]):
        events = [line for line in service_log.splitlines() if "lease" in line or '"camera st' in line]
        print("a camera restarted during the measurement; service log:\n" + "\n".join(events[-30:]), file=sys.stderr)
        return 1

    after_cpu, after_video = bare_decode(args.clip, per_thread, args.cameras, paced=True)
    count = lambda report, key: sum(c[key] for c in report["cameras"])  # noqa: E731
    frames_in = count(after, "frames_in") - count(before, "frames_in")
    frames_out = count(after, "frames_out") - count(before, "frames_out")
    dropped = count(after, "dropped") - count(before, "dropped")
    video_s = frames_in / clip_fps
    service_cpu = cpu_after - cpu_before
    per_camera_minute = service_cpu / (video_s / 60)

    flat_cpu, flat_video = bare_decode(args.clip, min(args.seconds, 15.0), args.cameras)
    flat_per_minute = flat_cpu / (flat_video / 60)
    base_cpu = before_cpu + after_cpu
    base_video = before_video + after_video
    base_per_minute = base_cpu / (base_video / 60)
    ratio = per_camera_minute / base_per_minute
    wall = wall_after - wall_before

    print(f"clip: {args.clip.name} {width}x{height} at {clip_fps:.2f} fps; {args.cameras} cameras in real time, "
          f"sampled to {args.fps:g} fps{' with the motion gate' if args.motion else ''}, JPEG encoder {args.encoder}; "
          f"window {wall:.1f} s")
    print(f"decoded {frames_in} frames = {video_s / 60:.2f} camera-minutes; published {frames_out} "
          f"({frames_out / wall / args.cameras:.2f} fps per camera), dropped {dropped}")
    print(f"bare PyAV decode, paced (baseline): {base_per_minute:6.2f} CPU s per camera-minute "
          f"({args.cameras} threads at the clip's rate, {base_video:.0f} s of video; before "
          f"{before_cpu / (before_video / 60):.2f}, after {after_cpu / (after_video / 60):.2f})")
    print(f"bare PyAV decode, flat out        : {flat_per_minute:6.2f} CPU s per camera-minute "
          f"({args.cameras} threads, {flat_video:.0f} s of video; for information)")
    print(f"ingest service (whole process)    : {per_camera_minute:6.2f} CPU s per camera-minute")
    print(f"ratio ingest / paced decode       : {ratio:6.2f}x   (goal <= 1.5x)")
    print(f"ratio ingest / flat-out decode    : {per_camera_minute / flat_per_minute:6.2f}x")
    print(f"cameras per core                  : {60 / per_camera_minute:6.1f}   (paced bare decode: "
          f"{60 / base_per_minute:.1f})")
    print(f"nats-server, for information      : {(nats_after - nats_before) / (video_s / 60):6.2f} CPU s per "
          "camera-minute")
    return 0


if __name__ == "__main__":
    sys.exit(main())
