"""What detect's shadow metrics would show for a candidate on a clip, without a bus: the live
vehicle stage (the detect settings: MODELS_DIR, VEHICLE_MODEL, rider fusion...) and the
candidate's, on the same frames, compared by detect's own code (services/detect/shadow.py).

    MODELS_DIR=../shared/models python eval/shadow_agreement.py ../shared/data/video/vn_haiphong_intersection.mp4 \
        --candidate models/vn_yolox_nano_ft1.onnx [--names models/vn_yolox_nano_ft1.names] [--every 4]

`--every N` takes every N-th decoded frame (the clips run at 20 fps: 4 is about 5 frames/s).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.detect import shadow  # noqa: E402
from services.detect.vehicles import VehicleDetector, read_class_names  # noqa: E402
from services.replay import stack  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Shadow agreement of a candidate vehicle model on a clip.")
    p.add_argument("video", type=Path)
    p.add_argument("--candidate", type=Path, required=True, help="the candidate ONNX file")
    p.add_argument("--names", type=Path, help="its class names (default: the file with .names)")
    p.add_argument("--format", default="yolox")
    p.add_argument("--every", type=int, default=4, help="every N-th decoded frame (default 4)")
    p.add_argument("--frames", type=int, default=10_000, help="at most this many decoded frames")
    args = p.parse_args(argv)
    settings = stack.detect_settings()
    from services.detect.pipeline import Pipeline  # noqa: PLC0415

    live = Pipeline.from_settings(settings)
    detector = VehicleDetector(args.candidate, args.format, read_class_names(args.names or args.candidate.with_suffix(".names")),
                               conf=settings.vehicle_conf, intra_op_threads=settings.intra_op_threads)
    candidate = live.with_vehicles(detector, settings.vehicle_keep_classes, args.candidate.name)
    totals = Counter()
    classes: dict[str, Counter] = {"live": Counter(), "candidate": Counter()}
    frames = 0
    for frame in stack.frames_at(str(args.video), set(range(0, args.frames, args.every))):
        image = stack.decode_jpeg(frame)
        compared = shadow.compare(live.find_vehicles(image), candidate.find_vehicles(image))
        frames += 1
        totals.update(live=compared.live, candidate=compared.candidate, matched=compared.matched)
        classes["live"].update(compared.live_classes)
        classes["candidate"].update(compared.candidate_classes)
    union = totals["live"] + totals["candidate"] - totals["matched"]
    print(f"{args.video.name}: {frames} frames (every {args.every}); live {Path(settings.vehicle_model).name}, "
          f"candidate {args.candidate.name}")
    print(f"vehicles: live {totals['live']}, candidate {totals['candidate']}, matched at IoU 0.5 {totals['matched']}; "
          f"agreement {totals['matched'] / union if union else 1.0:.3f}; "
          f"share of live vehicles the candidate also finds {totals['matched'] / max(totals['live'], 1):.3f}")
    print("objects per frame (candidate - live): " + ", ".join(
        f"{name} {(classes['candidate'][name] - classes['live'][name]) / max(frames, 1):+.2f}"
        for name in sorted(set(classes["live"]) | set(classes["candidate"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
