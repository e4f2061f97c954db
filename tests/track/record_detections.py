"""Record the real detect pipeline's output on a development clip into a JSON fixture.

    PYTHONPATH=. python tests/track/record_detections.py vn_haiphong_intersection.mp4 \
        tests/track/data/vn_haiphong_10fps.json --fps 10

Frames are sampled as ingest samples a camera (`services.ingest.sampler.FpsSampler` on the
presentation time, one frame per 1/fps slot), and every sampled frame goes through
`services.detect.pipeline.Pipeline` (YOLOX-nano, plates, OCR) with the service's settings except
`vehicle_conf`, lowered to 0.1 so that ByteTrack's second, low-score stage has boxes to work with
(filter `score >= 0.3` to see what the service's default passes on). The 5 frames/s sampling of a
clip is a subset of its 10 frames/s sampling (same slot grid), so one 10 fps file serves both.

The fixture keeps what track reads of a DetectionMade: the objects (class, score, box) and the
plates (box, text, confidence, format validity, vehicle index); `frame` is the index in decode
order, `t` the presentation time in seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import av

from services.detect.pipeline import Pipeline
from services.detect.settings import Settings
from services.ingest.sampler import FpsSampler


def record(video: Path, fps: float, models_dir: Path, conf: float) -> dict:
    pipeline = Pipeline.from_settings(Settings(models_dir=str(models_dir), vehicle_conf=conf))
    sampler = FpsSampler(fps)
    frames = []
    started = time.process_time()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            t = float(frame.pts * stream.time_base)
            if not sampler.take(t):
                continue
            image = frame.to_ndarray(format="bgr24")
            result = pipeline.process(image)
            frames.append({
                "frame": index, "t": round(t, 4),
                "objects": [{"class": v.class_name, "score": round(v.score, 3), "box": [round(c, 1) for c in v.box]}
                            for v in result.vehicles],
                "plates": [{"box": [round(c, 1) for c in p.read.box], "text": p.read.plate.text,
                            "confidence": round(p.read.plate.confidence, 3), "format_valid": p.read.plate.format_valid,
                            "vehicle_index": p.vehicle_index}
                           for p in result.plates],
            })
        width, height = stream.codec_context.width, stream.codec_context.height
    return {
        "clip": video.name, "width": width, "height": height, "fps": fps, "vehicle_conf": conf,
        "model": pipeline.model_name,
        "made_by": "tests/track/record_detections.py (services.detect.pipeline.Pipeline, default models)",
        "cpu_s_per_frame": round((time.process_time() - started) / max(1, len(frames)), 3),
        "frames": frames,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="file name under SHARED/data/video")
    parser.add_argument("out", type=Path)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--conf", type=float, default=0.1)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / ".." / "shared")
    args = parser.parse_args(argv)
    data = record(args.shared / "data" / "video" / args.clip, args.fps, args.shared / "models", args.conf)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        f.write('{' + ", ".join(f'"{k}": {json.dumps(v)}' for k, v in data.items() if k != "frames") + ', "frames": [\n')
        f.write(",\n".join(json.dumps(fr, ensure_ascii=False, separators=(",", ":")) for fr in data["frames"]))
        f.write("\n]}\n")
    print(f"{args.out}: {len(data['frames'])} frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
