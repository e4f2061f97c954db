"""JPEG encoding of real decoded frames: TurboJPEG from the YUV planes, and the OpenCV path."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from services.ingest.jpeg import FrameEncoder, load_turbojpeg


@pytest.fixture(scope="module")
def frame(clips: Path) -> av.VideoFrame:
    with av.open(str(clips / "vn_haiphong_intersection.mp4")) as container:
        for index, decoded in enumerate(container.decode(video=0)):
            if index == 30:
                return decoded
    raise AssertionError("clip too short")


@pytest.fixture(scope="module")
def turbo() -> FrameEncoder:
    library = load_turbojpeg()
    if library is None:
        pytest.fail("libturbojpeg not found: apt-get install libturbojpeg0 (services/ingest/apt-packages.txt)")
    return FrameEncoder(library)


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.astype(np.int16)


def test_both_encoders_give_the_colours_swscale_gives(frame, turbo) -> None:
    assert frame.format.name == "yuvj420p"
    reference = frame.to_ndarray(format="bgr24").astype(np.int16)
    for encoder in (turbo, FrameEncoder(None)):
        image = decode(encoder.encode(frame, 85))
        assert image.shape == (720, 1006, 3)
        assert np.abs(image - reference).mean() < 4.0, encoder.name


def test_limited_range_frames_are_expanded_before_the_planes_are_encoded(frame, turbo) -> None:
    limited = frame.reformat(format="yuv420p", src_color_range="JPEG", dst_color_range="MPEG")
    assert limited.color_range == 1
    luma = limited.to_ndarray()[:720]
    assert 16 <= luma.min() and luma.max() <= 235  # really limited range
    reference = frame.to_ndarray(format="bgr24").astype(np.int16)
    assert np.abs(decode(turbo.encode(limited, 85)) - reference).mean() < 4.0


def test_quality_changes_the_size(frame, turbo) -> None:
    assert len(turbo.encode(frame, 50)) < len(turbo.encode(frame, 90))


def test_odd_sizes_fall_back_to_opencv(frame, turbo) -> None:
    odd = frame.reformat(width=321, height=181)
    assert decode(turbo.encode(odd, 80)).shape == (181, 321, 3)


def test_one_encoder_serves_many_camera_threads(frame, turbo) -> None:
    results: list[bytes] = []

    def work() -> None:
        for _ in range(5):
            results.append(turbo.encode(frame, 80))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 15 and len(set(results)) == 1


def test_planes_already_read_for_the_motion_gate_give_the_same_jpeg(frame, turbo) -> None:
    assert turbo.encode(frame, 80, frame.to_ndarray()) == turbo.encode(frame, 80)
