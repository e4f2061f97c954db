"""`roadwatch detect IMAGE... [--scene FILE] [--json]` and `roadwatch plate IMAGE... [--json]`.

The same Pipeline the service runs, so that what an operator sees on a still is what the
service would publish for that frame. Models come from the same settings (MODELS_DIR, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from services.detect.pipeline import FrameResult, Pipeline
from services.detect.plates import PlateRead
from services.detect.regions import DetectionPlan, RegionError, load_plan
from services.detect.sessions import ModelError
from services.detect.settings import Settings
from services.runtime.settings import load


def plate_json(read: PlateRead, vehicle_index: int | None = None) -> dict:
    p = read.plate
    out = {
        "text": p.text,
        "raw": p.raw,
        "confidence": p.confidence,
        "box": [round(v, 1) for v in read.box],
        "corners": [[round(x, 1), round(y, 1)] for x, y in read.corners],
        "layout": p.layout,
        "format_valid": p.format_valid,
        "country": p.country or p.foreign,
        "alternatives": [{"text": t, "confidence": c} for t, c in p.alternatives],
        "source": read.source,
    }
    if vehicle_index is not None:
        out["vehicle_index"] = vehicle_index
    return out


def frame_json(image: str, result: FrameResult) -> dict:
    return {
        "image": image,
        "vehicles": [{"class": v.class_name, "score": v.score, "box": list(v.box), "riders": v.riders}
                     for v in result.vehicles],
        "plates": [plate_json(p.read, p.vehicle_index) for p in result.plates],
    }


def _parse(argv: list[str], prog: str, what: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"roadwatch {prog}", description=what)
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--json", action="store_true", help="one JSON object per line per image")
    parser.add_argument("--models-dir", help="overrides MODELS_DIR")
    parser.add_argument("--countries", help="countries whose plate formats to expect, e.g. vn or sk,cz (overrides PLATE_COUNTRIES)")
    if prog == "detect":
        parser.add_argument("--scene", type=Path, metavar="FILE",
                            help="a camera's scene file: its detection: block (roi, slices) is used as the service would")
    return parser.parse_intermixed_args(argv)


def _plan(args: argparse.Namespace, pipeline: Pipeline, prog: str) -> DetectionPlan | None:
    if getattr(args, "scene", None) is None:
        return None
    try:
        plan = load_plan(args.scene)
        if plan is not None:
            pipeline.check_plan(plan)
    except RegionError as exc:
        print(f"roadwatch {prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if plan is None:
        print(f"roadwatch {prog}: {args.scene} has no detection: block; the whole frame is used", file=sys.stderr)
    return plan


def _pipeline(args: argparse.Namespace, prog: str) -> Pipeline:
    environ = dict(os.environ)
    if args.models_dir:
        environ["MODELS_DIR"] = args.models_dir
    if args.countries:
        environ["PLATE_COUNTRIES"] = args.countries
    settings = load(Settings, environ, service=prog)
    try:
        return Pipeline.from_settings(settings)
    except ModelError as exc:
        print(f"roadwatch {prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _read(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def _run(argv: list[str], prog: str, what: str, one) -> int:
    try:
        return _run_images(argv, prog, what, one)
    except BrokenPipeError:  # `roadwatch detect ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run_images(argv: list[str], prog: str, what: str, one) -> int:
    args = _parse(argv, prog, what)
    pipeline = _pipeline(args, prog)
    plan = _plan(args, pipeline, prog)
    status = 0
    for path in args.images:
        image = _read(path)
        if image is None:
            status = 1
            message = f"cannot read {path} as an image"
            if args.json:
                print(json.dumps({"image": str(path), "error": message}), flush=True)
            else:
                print(f"roadwatch {prog}: {message}", file=sys.stderr)
            continue
        out = one(pipeline, str(path), image, plan)
        if args.json:
            print(json.dumps(out, ensure_ascii=False), flush=True)
        else:
            print(_human(out))
    return status


def _human(out: dict) -> str:
    lines = [out["image"]]
    for v in out.get("vehicles", []):
        x1, y1, x2, y2 = v["box"]
        riders = f"  {v['riders']} rider(s)" if v.get("riders") else ""
        lines.append(f"  {v['class']:<10} {v['score']:.2f}  [{x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}]{riders}")
    for p in out["plates"]:
        valid = "" if p["format_valid"] else "  (fits no expected plate format)"
        if p.get("country") and not p["format_valid"]:
            valid = f"  (a plate of {p['country']}, not expected: kept as read)"
        lines.append(f"  plate {p['text']!r} {p['confidence']:.2f} {p['layout']}{valid}")
    return "\n".join(lines)


def detect_main(argv: list[str]) -> int:
    return _run(argv, "detect", "Find vehicles and read plates in images, as the detect service does.",
                lambda p, name, image, plan: frame_json(name, p.process(image, plan)))


def plate_main(argv: list[str]) -> int:
    return _run(argv, "plate", "Read already-cropped plate images.",
                lambda p, name, image, plan: {"image": name, "plates": [plate_json(p.read_plate_image(image))]})
