"""Models are loaded once per session: each load is 0.1-0.5 s and the suite shares two cores."""

from __future__ import annotations

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
    """Frame `index` of a clip under data/video, as BGR; cached per (clip, index)."""
    cache: dict[tuple[str, int], np.ndarray] = {}

    def frame(clip: str, index: int) -> np.ndarray:
        key = (clip, index)
        if key not in cache:
            with av.open(str(shared_dir / "data" / "video" / clip)) as container:
                for i, decoded in enumerate(container.decode(video=0)):
                    if i == index:
                        cache[key] = decoded.to_ndarray(format="bgr24")
                        break
        return cache[key]

    return frame


@pytest.fixture(scope="session")
def street(shared_dir: Path):
    def image(name: str) -> np.ndarray:
        loaded = cv2.imread(str(shared_dir / "data" / "street" / name))
        assert loaded is not None, name
        return loaded

    return image
