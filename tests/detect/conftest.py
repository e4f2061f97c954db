"""Models are loaded once per session: each load is 0.1-0.5 s and the suite shares two cores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from services.detect.pipeline import Pipeline
from services.detect.settings import Settings


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def settings(models_dir: Path) -> Settings:
    return Settings(models_dir=str(models_dir))


@pytest.fixture(scope="session")
def pipeline(settings: Settings) -> Pipeline:
    return Pipeline.from_settings(settings)


@pytest.fixture(scope="session")
def video_frame(shared_dir: Path):
    """Frame `index` of a clip under data/video, as BGR; cached per (clip, index).

    Each clip stays open where the last frame was taken, so that asking for frames in increasing
    order (0, 7, 14, ...) decodes the clip once instead of from its start for every frame."""
    cache: dict[tuple[str, int], np.ndarray] = {}
    open_clips: dict[str, tuple[av.container.InputContainer, Iterator[tuple[int, av.VideoFrame]]]] = {}

    def frame(clip: str, index: int) -> np.ndarray:
        key = (clip, index)
        if key in cache:
            return cache[key]
        for attempt in range(2):
            if clip not in open_clips:
                container = av.open(str(shared_dir / "data" / "video" / clip))
                open_clips[clip] = (container, enumerate(container.decode(video=0)))
            container, decoded = open_clips[clip]
            for i, picture in decoded:
                if i == index:
                    cache[key] = picture.to_ndarray(format="bgr24")
                    return cache[key]
                if i > index:
                    break
            # Past it (an earlier frame asked for after a later one) or at the end: from the start.
            container.close()
            del open_clips[clip]
        raise IndexError(f"{clip} has no frame {index}")

    yield frame
    for container, _ in open_clips.values():
        container.close()


@pytest.fixture(scope="session")
def street(shared_dir: Path):
    def image(name: str) -> np.ndarray:
        loaded = cv2.imread(str(shared_dir / "data" / "street" / name))
        assert loaded is not None, name
        return loaded

    return image
