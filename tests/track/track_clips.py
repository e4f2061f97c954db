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


@lru_cache(maxsize=4)
def clip_detections(shared_dir: Path, clip: str, camera: str, first: int, last: int, step: int
                    ) -> tuple[tuple[DetectionMade, ...], dict[int, np.ndarray]]:
    from services.detect.handler import Frame, detection_event
    from services.detect.pipeline import Pipeline
    from services.detect.settings import Settings

    pipeline = Pipeline.from_settings(Settings(models_dir=str(shared_dir / "models")))
    indexes = list(range(first, last + 1, step))
    frames = clip_frames(shared_dir, clip, indexes)
    fps = frames.pop("fps")  # type: ignore[call-overload]
    events = []
    for i in indexes:
        image = frames[i]
        meta = new_frame_meta(camera_id=camera, frame_seq=i, captured_at=T0 + timedelta(seconds=i / fps),
                              width=image.shape[1], height=image.shape[0])
        events.append(detection_event(Frame(meta, 1000 + i, image, 0.0), pipeline.process(image), model="test", now=T0))
    return tuple(events), frames
