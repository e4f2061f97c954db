"""`make eval-video`: perception measured on the labelled development clips (docs/ACCURACY.md).

For every clip with a truth file (eval/truth/<clip stem>.json, format in docs/ACCURACY.md):

- detection on the labelled frames, per pipeline variant and for the bare vehicle model (the
  model alone on the whole frame, no slices, no fusion: the baseline): vehicle recall and
  precision at IoU >= 0.5 and >= 0.3 (class-agnostic), difficult vehicles apart, riders found
  (riders whose vehicle a vehicle-class box matches at IoU >= 0.3; a `person` box does not
  count), CPU per frame;
- `roadwatch replay` of the clip at each camera fps, per variant: stop-line crossings and
  violations found / missed / false / duplicate, incidents likewise against
  eval/truth/<clip stem>.incidents.json (and how many false ones are a vehicle waiting at a red
  light), ID switches and fragmentation on the truth crossings' track boxes, CPU per frame
  (detect with plates, and track).

A clip without a truth file yet falls back to the partial vehicle truth that came with the clips
(recall only: vehicles the person saw but did not box count as missed; no precision).

    python eval/eval_video.py [--truth-dir eval/truth]... [--fps 5,10] [--variant full,tiles2]
                              [--clip vn_haiphong_intersection] [--write docs/ACCURACY.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval import metrics, truth_files  # noqa: E402
from eval.variants import VARIANTS, VariantError, available, check_variant  # noqa: E402
from services.replay import stack  # noqa: E402
from services.replay.run import Replay  # noqa: E402
from services.track import scenes  # noqa: E402

VEHICLES = frozenset(("car", "motorcycle", "bus", "truck", "bicycle", "other"))
# Clips of the demo cameras (deploy/local/cameras.yaml) and their scenes, for partial truth.
DEMO_SCENES = {"vn_haiphong_intersection.mp4": "deploy/local/scenes/demo-haiphong.yaml",
               "vn_saigon_intersection.mp4": "deploy/local/scenes/demo-saigon.yaml"}
PARTIAL = "dev_vehicle_truth_partial.json"
BEGIN, END = "<!-- eval-video:begin -->", "<!-- eval-video:end -->"


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} % ({part}/{whole})" if whole else "–"


def ms(seconds: float, frames: int) -> str:
    return f"{1000 * seconds / frames:.0f}" if frames else "–"


class ClipError(Exception):
    """A clip that cannot be evaluated; the others still are."""


# --- detection on the labelled frames ----------------------------------------------------------------
def detection_rows(truth: truth_files.ClipTruth, video: str, detectors: dict[str, object]) -> list[str]:
    """One markdown row per detector: name -> function(image) -> [box of a vehicle class]."""
    indexes = {f["frame"] for f in truth.frames}
    frames = {frame.index: frame for frame in stack.frames_at(video, indexes)}
    missing = sorted(indexes - set(frames))
    if missing:
        raise ClipError(f"frames {missing} are beyond the end of {video}")
    rows = []
    for name, detect in detectors.items():
        scores = {0.5: metrics.FrameScore(), 0.3: metrics.FrameScore()}
        cpu = 0.0
        for labelled in truth.frames:
            image = stack.decode_jpeg(frames[labelled["frame"]])
            started = time.process_time()
            boxes = detect(image)  # type: ignore[operator]
            cpu += time.process_time() - started
            for threshold, total in scores.items():
                score = metrics.score_frame(labelled["vehicles"], labelled.get("ignore", []), boxes, threshold)
                score.truth += truth.unboxed.get(labelled["frame"], 0)
                total.add(score)
        loose, strict = scores[0.3], scores[0.5]
        precision = (lambda s: "n/a (partial)") if truth.partial else (lambda s: pct(s.correct, s.detections))
        rows.append(f"| {name} | {pct(strict.found, strict.truth)} | {precision(strict)} | {pct(loose.found, loose.truth)} "
                    f"| {precision(loose)} | {pct(loose.difficult_found, loose.difficult)} "
                    f"| {pct(loose.riders_found, loose.riders)} | {ms(cpu, len(truth.frames))} |")
    return rows


def variant_detector(detector: stack.Detector):
    def detect(image):
        return [v.box for v in detector.process(image).vehicles if v.class_name in VEHICLES]
    return detect


def bare(settings):
    model = stack.bare_detector(settings)

    def detect(image):
        return [box for name, _, box in model(image) if name in VEHICLES]
    return detect


# --- replay at the camera's fps ----------------------------------------------------------------------
def replay_row(truth: truth_files.ClipTruth, video: str, scene: scenes.Scene, variant: str, settings, fps: float) -> str:
    detector = stack.build_detector(settings, scene, use_plan=VARIANTS[variant].plan)
    engine = stack.build_tracker(scene, stack.track_settings())
    seen: dict[int, list[tuple[int, tuple]]] = {}

    def on_frame(frame, image, tracker, event) -> None:
        seen[frame.index] = [(tid, box) for tid, _, box, matched in stack.live_tracks(tracker) if matched]

    events = list(Replay(scene, detector, engine, fps=fps, on_frame=on_frame, breaks=tuple(truth.cuts)).events(video))
    summary = events[-1]
    crossings = metrics.score_events(truth.crossings, [e for e in events if e["kind"] == "crossing"], "line")
    found_i = incidents_cell(truth, events)
    violations = metrics.score_events(truth.violations, [e for e in events if e["kind"] == "violation"], "type")
    ids = metrics.identity(truth.tracks, seen)

    def counts(score: metrics.EventScore, kind: str) -> str:
        if truth.partial:
            return f"{len([e for e in events if e['kind'] == kind])} (no truth)"
        return f"{score.found} / {score.missed} / {score.false} / {score.duplicate}"

    found_c, found_v = counts(crossings, "crossing"), counts(violations, "violation")
    switches = f"{ids.switches} / {ids.fragments_per_vehicle:.2f} ({ids.vehicles})" if ids.vehicles else "–"
    counted = metrics.count_totals([e for e in events if e["kind"] == "count"])
    tallies = ", ".join(f"{c.get('line')} {c.get('direction', 'both')} {c.get('class')}: "
                        f"{counted.get((c.get('line'), c.get('direction', 'both'), c.get('class')), 0)}/{c['n']}"
                        for c in truth.counts) or "–"
    return (f"| {variant} | {fps:g} | {summary['frames_processed']} | {found_c} | {found_v} | {found_i} | {switches} "
            f"| {tallies} | {summary['tracks']} | {summary['cpu_ms_per_frame']:.0f} |")


def incidents_cell(truth: truth_files.ClipTruth, events: list[dict]) -> str:
    """Incidents found / missed / false / duplicate, and the false ones at a red-light queue."""
    detected = [e for e in events if e["kind"] == "incident" and e["action"] == "detected"]
    if truth.incidents is None:
        return f"{len(detected)} (no truth)"
    score = metrics.score_incidents(truth.incidents, detected)
    false = ", ".join(f"{e['type']} f{e['frame']}" for e in score.false)
    return (f"{score.found} / {len(score.missed)} / {len(score.false)} / {score.duplicate}; "
            f"at red queue {len(score.at_red_queue)}" + (f" ({false})" if false else ""))


# --- the report --------------------------------------------------------------------------------------
def shown(text: str) -> str:
    """Paths inside the checkout as the reader's own (relative)."""
    return text.replace(f"{ROOT}/", "")


def scene_file(truth: truth_files.ClipTruth) -> Path | None:
    """The truth's scene, relative to this checkout, else to the checkout the truth file is in."""
    name = truth.scene or (DEMO_SCENES.get(truth.clip) if truth.partial else None)
    if not name:
        return None
    here = ROOT / name
    beside = Path(truth.path).resolve().parents[2] / name
    return here if here.is_file() or not beside.is_file() else beside


def clip_section(truth: truth_files.ClipTruth, video_dir: Path, variants: list[str], fps_list: list[float]) -> list[str]:
    """Raises ClipError when the clip cannot be evaluated (missing clip, bad scene, frames beyond its end)."""
    video = str(video_dir / truth.clip)
    if not Path(video).is_file():
        raise ClipError(f"clip {video} not found")
    path = scene_file(truth)
    try:
        scene = scenes.load(path) if path else None
    except scenes.SceneError as exc:
        raise ClipError(f"its scene does not load: {exc}") from None
    source = f"partial truth ({Path(truth.path).name})" if truth.partial else f"`{Path(truth.path).name}`"
    n_vehicles = sum(len(f["vehicles"]) for f in truth.frames) + sum(truth.unboxed.values())
    incidents = (f"{len(truth.incidents['incidents'])} incidents and "
                 f"{sum(len(q.get('vehicles', [])) for q in truth.incidents['not_incidents'] if q.get('what') == 'red_light_queue')} "
                 f"vehicles waiting at a red light (`{Path(truth.path).stem}.incidents.json`)"
                 if truth.incidents is not None else "no incident truth")
    lines = [f"Truth: {source}; {len(truth.frames)} labelled frames, {n_vehicles} vehicles; "
             f"{len(truth.crossings)} line crossings, {len(truth.violations)} violations, "
             f"{sum(c['n'] for c in truth.counts)} vehicles counted; {incidents}.", ""]
    settings = {name: stack.detect_settings(**VARIANTS[name].settings()) for name in variants}
    if truth.frames:
        detectors = {f"bare {Path(settings[variants[0]].vehicle_model).stem} (full frame)": bare(settings[variants[0]])}
        for name in variants:
            detectors[name] = variant_detector(stack.build_detector(settings[name], scene, use_plan=VARIANTS[name].plan))  # type: ignore[arg-type]
        lines += ["| detector | recall IoU≥0.5 | precision IoU≥0.5 | recall IoU≥0.3 | precision IoU≥0.3 "
                  "| difficult found | riders found | CPU ms/frame |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += detection_rows(truth, video, detectors)
    if scene is not None:
        lines += ["", f"Replay with `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`: crossings "  # type: ignore[union-attr]
                      "and violations found / missed / false / duplicate; incidents likewise, with the false ones "
                      "on a vehicle waiting at a red light; ID switches / distinct track ids per truth "
                      "vehicle (truth vehicles followed); counts found/truth; CPU per frame of detect (plates "
                      "included) and track:", "",
                  "| variant | fps | frames | crossings f / m / fa / d | violations f / m / fa / d "
                  "| incidents f / m / fa / d | ID switches / fragments | counts | tracks | CPU ms/frame |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for fps in fps_list:
            for name in variants:
                lines.append(replay_row(truth, video, scene, name, settings[name], fps))
    return lines


def report(truths: list[truth_files.ClipTruth], video_dir: Path, variants: list[str], fps_list: list[float],
           command: str, out=None) -> tuple[str, list[str]]:
    """The markdown, printed clip by clip as it is measured; and the clips that could not be evaluated."""
    out = out or sys.stdout
    failed: list[str] = []
    head = [f"Generated by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
            f"({os.cpu_count()} CPU cores; CPU = process time of this single-threaded run).", "",
            "Variants: " + "; ".join(f"**{name}**: {VARIANTS[name].about}" for name in variants) + ".", ""]
    print("\n".join(head), file=out, flush=True)
    lines = head
    for truth in truths:
        try:
            section = clip_section(truth, video_dir, variants, fps_list)
        except ClipError as exc:
            failed.append(truth.clip)
            section = [f"Not evaluated: {shown(truth.path)}: {shown(str(exc))}"]
        section = [f"### {truth.clip}", "", *section, ""]
        print("\n".join(section), file=out, flush=True)
        lines += section
    return "\n".join(lines), failed


def write_section(path: Path, text: str) -> None:
    """Replace the generated section of the document (between the markers), keeping the rest."""
    current = path.read_text(encoding="utf-8") if path.exists() else f"# Accuracy\n\n{BEGIN}\n{END}\n"
    if BEGIN not in current or END not in current:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to write between")
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def select(truths: list[truth_files.ClipTruth], clips: list[str]) -> list[truth_files.ClipTruth]:
    if not clips:
        return truths
    chosen = [t for t in truths if t.stem in clips or t.clip in clips]
    unknown = sorted(set(clips) - {t.stem for t in chosen} - {t.clip for t in chosen})
    if unknown:
        raise SystemExit(f"no truth for clip(s) {', '.join(unknown)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Perception accuracy on the labelled clips (docs/ACCURACY.md).")
    p.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the shared data directory (../shared)")
    p.add_argument("--truth-dir", action="append", default=[],
                   help="directory of truth files (default eval/truth); repeatable, the first holding a clip wins")
    p.add_argument("--fps", default="5,10", help="camera frame rates to replay at, comma-separated (default 5,10)")
    p.add_argument("--variant", default=",".join(available()),
                   help=f"pipeline variants, comma-separated, among {', '.join(VARIANTS)} "
                        f"(default: those this detect can run: {', '.join(available())})")
    p.add_argument("--clip", action="append", default=[], help="only this clip (stem or file name); repeatable")
    p.add_argument("--write", metavar="ACCURACY.md", help="also write the tables into this document's generated section")
    args = p.parse_args(argv)
    try:
        fps_list = [float(x) for x in args.fps.split(",") if x.strip()]
    except ValueError:
        p.error(f"--fps: {args.fps!r} is not a list of numbers")
    variants = [v.strip() for v in args.variant.split(",") if v.strip()]
    try:
        for name in variants:
            check_variant(name)
    except VariantError as exc:
        p.error(str(exc))
    shared = Path(args.shared)
    os.environ.setdefault("MODELS_DIR", str(shared / "models"))
    video_dir = shared / "data" / "video"
    truths: list[truth_files.ClipTruth] = []
    for directory in args.truth_dir or [str(ROOT / "eval" / "truth")]:
        if Path(directory).is_dir():
            truths += [t for t in truth_files.load_dir(Path(directory)) if t.clip not in {u.clip for u in truths}]
    labelled = {t.clip for t in truths}
    for clip, scene in DEMO_SCENES.items():
        if clip not in labelled:
            partial = truth_files.load_partial(video_dir / PARTIAL, clip, scene)
            if partial is not None:
                truths.append(partial)
    truths = select(truths, args.clip)
    if not truths:
        raise SystemExit(f"no truth files in {', '.join(args.truth_dir) or 'eval/truth'} and no partial truth in {video_dir}")
    command = "make eval-video" if os.environ.get("MAKELEVEL") else "python eval/eval_video.py " + " ".join(argv or sys.argv[1:])
    text, failed = report(truths, video_dir, variants, fps_list, command)
    if args.write:
        write_section(Path(args.write), text)
    if failed:
        print(f"not evaluated: {', '.join(failed)} (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
