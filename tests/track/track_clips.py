"""Real detections of the Vietnamese clips, made once per session by the detect pipeline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from proto.v1.detection import DetectionMade
from proto.v1.frame import new_frame_meta

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)


def clip_frames(shared_dir: Path, clip: str, indexes: list[int]) -> dict[int, np.ndarray]:
    wanted = set(indexes)
    out = {}
    with av.open(str(shared_dir / "data" / "video" / clip)) as container:
        fps = float(container.streams.video[0].average_rate)
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="bgr24")
            if i >= max(wanted):
                break
    out["fps"] = fps  # type: ignore[index]
    return out


@lru_cache(maxsize=1)
def _pipeline(models_dir: Path):
    from services.detect.pipeline import Pipeline
    from services.detect.settings import Settings

    return Pipeline.from_settings(Settings(models_dir=str(models_dir)))


# (clip, camera, frame index) -> detection, and (clip, frame index) -> image: several modules ask
# for overlapping ranges of the same clip (frames 0-60 and 0-141 of Hai Phong), and each frame
# costs the pipeline about half a second, so every frame is detected once per session.
_detected: dict[tuple[Path, str, str, int], DetectionMade] = {}
_images: dict[tuple[Path, str, int], np.ndarray] = {}
_fps: dict[tuple[Path, str], float] = {}


def clip_detections(shared_dir: Path, clip: str, camera: str, first: int, last: int, step: int
                    ) -> tuple[tuple[DetectionMade, ...], dict[int, np.ndarray]]:
    from services.detect.handler import Frame, detection_event

    indexes = list(range(first, last + 1, step))
    missing = [i for i in indexes if (shared_dir, clip, i) not in _images or (shared_dir, clip, camera, i) not in _detected]
    if missing:
        decoded = clip_frames(shared_dir, clip, missing)
        _fps[(shared_dir, clip)] = decoded.pop("fps")  # type: ignore[call-overload]
        pipeline = _pipeline(shared_dir / "models")
        for i in missing:
            image = _images.setdefault((shared_dir, clip, i), decoded[i])
            if (shared_dir, clip, camera, i) in _detected:
                continue
            fps = _fps[(shared_dir, clip)]
            meta = new_frame_meta(camera_id=camera, frame_seq=i, captured_at=T0 + timedelta(seconds=i / fps),
                                  width=image.shape[1], height=image.shape[0])
            _detected[(shared_dir, clip, camera, i)] = detection_event(
                Frame(meta, 1000 + i, image, 0.0), pipeline.process(image), model="test", now=T0)
    events = tuple(_detected[(shared_dir, clip, camera, i)] for i in indexes)
    return events, {i: _images[(shared_dir, clip, i)] for i in indexes}
