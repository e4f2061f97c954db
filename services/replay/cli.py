"""`roadwatch replay VIDEO --scene SCENE.yaml [--fps N] [--json] [--annotate OUT.mp4]`.

Runs a video file once through the detect and track code of the services (no NATS, no
PostgreSQL) and prints what they found: stop-line crossings, violations, incidents, signal phases, counts
and a summary. Models and detector settings come from the same environment variables as the
detect service (MODELS_DIR, VEHICLE_*, ...); tracker settings from the track service's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av

from services.detect.sessions import ModelError
from services.replay import stack
from services.replay.run import Event, Replay
from services.runtime.settings import SettingError
from services.track import scenes

EXIT_USAGE = 2
MAX_FPS = 30.0
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2 too; keep its message short
        self.print_usage(sys.stderr)
        print(f"roadwatch replay: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="roadwatch replay", description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("video", help="video file (anything ffmpeg reads)")
    p.add_argument("--scene", required=True, help="the camera's scene file (YAML)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second sampled, as the camera's ingest (default 5)")
    p.add_argument("--break-at", type=int, action="append", default=[], metavar="FRAME",
                   help="decode index where the recording was cut or spliced (an edited clip); that frame "
                        "is marked a discontinuity, as ingest marks a reconnect: no track or phase spans it "
                        "(repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--annotate", metavar="OUT.mp4", help="also write the processed frames with boxes, tracks, "
                                                          "lines, zones and light states drawn")
    return p


def fail(message: str) -> int:
    print(f"roadwatch replay: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not 0 < args.fps <= MAX_FPS:
        return fail(f"--fps must be above 0 and at most {MAX_FPS:g}, got {args.fps:g}")
    if args.annotate and (Path(args.annotate).suffix.lower() not in VIDEO_SUFFIXES or Path(args.annotate).is_dir()):
        return fail(f"--annotate {args.annotate}: give a video file name ending in {', '.join(VIDEO_SUFFIXES)}")
    if not Path(args.video).is_file():
        return fail(f"cannot read video {args.video}: no such file")
    try:
        scene = scenes.load(args.scene)
    except scenes.SceneError as exc:
        return fail(f"invalid scene: {exc}")
    except OSError as exc:
        return fail(f"cannot read scene {args.scene}: {exc.strerror or exc}")
    try:
        detector = stack.build_detector(stack.detect_settings(), scene)
        engine = stack.build_tracker(scene, stack.track_settings())
    except SettingError as exc:
        return fail(f"invalid setting {exc.variable}: {exc.reason}")
    except ModelError as exc:
        return fail(str(exc))
    annotator = None
    if args.annotate:
        from services.replay.annotate import Annotator

        annotator = Annotator(args.annotate, scene, args.fps)
    replay = Replay(scene, detector, engine, fps=args.fps, on_frame=annotator, breaks=tuple(args.break_at))
    out = JsonLines() if args.json else Table(args.video, scene.camera)
    try:
        for event in replay.events(args.video):
            out.add(event)
    except stack.SourceError as exc:
        return fail(f"cannot read video {args.video}: {exc.reason}")
    except (OSError, av.error.FFmpegError) as exc:  # the annotated clip could not be written
        return fail(f"cannot write {args.annotate}: {getattr(exc, 'strerror', None) or exc}")
    finally:
        if annotator is not None:
            try:
                annotator.close()
            except (OSError, av.error.FFmpegError):
                pass
    out.close()
    return 0


class JsonLines:
    def add(self, event: Event) -> None:
        print(json.dumps(event, ensure_ascii=False), flush=True)

    def close(self) -> None:
        pass


class Table:
    """The readable form: one line per event, in time order, then the summary."""

    def __init__(self, video: str, camera: str) -> None:
        self.video = video
        self.camera = camera
        self.rows: list[Event] = []
        self.summary: Event = {}

    def add(self, event: Event) -> None:
        if event["kind"] == "summary":
            self.summary = event
        else:
            self.rows.append(event)

    def close(self) -> None:
        print(f"{self.video} — camera {self.camera}")
        print(f"{'t (s)':>7}  {'frame':>5}  {'what':<10}  detail")
        for row in sorted(self.rows, key=lambda e: (e.get("t", e.get("from_t", 0.0)) or 0.0)):
            t = row.get("t", row.get("from_t"))
            frame = row.get("frame", row.get("from_frame", ""))
            print(f"{t if t is not None else '':>7}  {frame:>5}  {row['kind']:<10}  {_detail(row)}")
        s = self.summary
        print(f"\n{s['frames_processed']} of {s['frames_read']} frames at {s['fps']:g} fps; "
              f"{s['detections']} vehicle detections, {s['tracks']} tracks; "
              f"CPU {s['cpu_ms_per_frame']} ms/frame (detect {s['detect_cpu_ms_per_frame']}, "
              f"track {s['track_cpu_ms_per_frame']}); {s['wall_s']} s")


def _detail(e: Event) -> str:
    kind = e["kind"]
    if kind == "crossing":
        return f"line {e['line']}  track {e['track']} ({e['class']})  x {e['x']}"
    if kind == "violation":
        measured = e["measured"]
        value = f"{measured['value']} {measured['unit']}"  # type: ignore[index]
        return (f"{e['type']} at {e['element']}  track {e['track']} ({e['class']})  plate {e['plate'] or '-'}  "
                f"measured {value}")
    if kind == "signal":
        return f"head {e['head']} {e['state']} until {e['to_t']} s (frame {e['to_frame']})"
    if kind == "count":
        return f"line {e['line']}  {e['class']} × {e['n']}"
    if kind == "incident":
        where = " ".join(f"{k} {e[k]}" for k in ("lane", "zone") if e.get(k))
        if e["action"] == "detected":
            who = f"  tracks {','.join(map(str, e['tracks']))} ({e['class']})" if e.get("tracks") else ""
            level = f"  level {e['level']}" if e.get("level") else ""
            return f"{e['type']} detected  {where}{who}{level}  since {e['started_t']} s  {e['incident_id']}"
        if e["action"] == "updated":
            return f"{e['type']} updated  {e['change']}  {e['incident_id']}"
        return f"{e['type']} cleared ({e['reason']}) after {e['duration_s']} s  {e['incident_id']}"
    return json.dumps(e, ensure_ascii=False)
