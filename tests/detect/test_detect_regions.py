"""The scene's `detection:` block: reading, errors with file/line/field, the slice plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.detect.regions import PlanBook, RegionError, load_plan
from services.track import scenes

REPO = Path(__file__).resolve().parents[2]
HEAD = "camera: cam-07\nframe_size: [1006, 720]\nlocation: {latitude: 20.8, longitude: 106.6}\n"


def write(tmp_path: Path, body: str, name: str = "cam-07.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + body, encoding="utf-8")
    return path


def test_demo_scenes_have_a_plan_and_still_load_in_track():
    for name in ("demo-haiphong", "demo-saigon"):
        path = REPO / "deploy" / "local" / "scenes" / f"{name}.yaml"
        plan = load_plan(path, camera=name)
        assert plan is not None and plan.roi is not None and plan.full_frame
        assert scenes.load(path, camera=name).camera == name  # track accepts the block


def test_no_block_means_the_whole_frame_path(tmp_path: Path):
    assert load_plan(write(tmp_path, "")) is None


def test_auto_tiles_cover_the_roi_box_at_the_model_input_size(tmp_path: Path):
    plan = load_plan(write(tmp_path, "detection:\n  roi: [[0, 60], [1006, 30], [1006, 500], [0, 500]]\n  overlap: 0.2\n"))
    assert plan is not None and plan.slices == "auto"
    tiles = plan.tiles((416, 416))
    assert all((x2 - x1, y2 - y1) == (416, 416) for x1, y1, x2, y2 in tiles)
    # every pixel of the roi's bounding box is in a tile
    covered = np.zeros((720, 1006), dtype=bool)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] = True
    assert covered[30:500, 0:1006].all()
    # neighbours share at least the overlap asked for
    xs = sorted({t[0] for t in tiles})
    assert all(b - a <= 416 * 0.8 for a, b in zip(xs, xs[1:])) and len(xs) == 3
    # a bigger tile means fewer, shrunk tiles
    assert len(load_plan(write(tmp_path, "detection:\n  tile: 624\n")).tiles((416, 416))) < len(tiles) + 3


def test_roi_keeps_boxes_standing_on_the_road(tmp_path: Path):
    plan = load_plan(write(tmp_path, "detection:\n  roi: [[0, 100], [500, 100], [500, 720], [0, 720]]\n"))
    boxes = np.array([[10, 50, 60, 150], [10, 10, 60, 60], [440, 400, 540, 500], [480, 400, 560, 500]], dtype=np.float32)
    assert plan.inside_roi(boxes).tolist() == [True, False, True, False]  # by the bottom centre


def test_plan_scales_to_a_downscaled_frame(tmp_path: Path):
    plan = load_plan(write(tmp_path, "detection:\n  roi: [[0, 100], [1006, 100], [1006, 720], [0, 720]]\n"
                                     "  slices: [[0, 0, 503, 360]]\n"))
    half = plan.scaled_to(503, 360)
    assert half.roi[0] == (0.0, 50.0) and half.tiles((416, 416)) == ((0, 0, 252, 180),)


@pytest.mark.parametrize(
    "body, field, line, problem",
    [
        ("detection:\n  roi: [[0, 0], [10, 0]]\n", "detection.roi", 5, "expected array of length >= 3"),
        ("detection:\n  roi: [[0, 0], [100, 100], [100, 0], [0, 100]]\n", "detection.roi", 5, "intersects itself"),
        ("detection:\n  roi: [[0, 0], [2000, 0], [0, 100]]\n", "detection.roi[1]", 5, "outside the 1006x720 frame"),
        ("detection:\n  overlap: lots\n", "detection.overlap", 5, "expected float, got str"),
        ("detection:\n  overlap: 0.95\n", "detection.overlap", 5, "<= 0.8"),
        ("detection:\n  full_frame: true\n  slice: auto\n", "detection.slice", 6, "unknown field"),
        ("detection:\n  slices:\n    - [0, 0, 400, 400]\n    - [500, 300, 400, 700]\n", "detection.slices[1]", 7,
         "is not a box"),
        ("detection:\n  slices: half\n", "detection.slices", 5, "expected one of auto, none, got 'half'"),
        ("detection:\n  min_score: {car: 1.5}\n", "detection.min_score.car", 5, "expected float < 1.0, got 1.5"),
        ("detection:\n  slices: none\n  full_frame: false\n", "detection.full_frame", 6, "there must be slices"),
        ("detection:\n  roi: [[0, 0], [10, 0], [10, x]]\n", "detection.roi[2][1]", 5, "expected float, got str"),
    ],
)
def test_bad_block_names_file_line_and_field(tmp_path: Path, body: str, field: str, line: int, problem: str):
    path = write(tmp_path, body)
    with pytest.raises(RegionError) as caught:
        load_plan(path)
    error = caught.value
    assert (error.field, error.line) == (field, line), str(error)
    assert problem in error.reason
    assert str(error).startswith(f"{path}:{line}: {field}: ")


def test_unknown_class_in_min_score_is_refused_at_start(tmp_path: Path):
    write(tmp_path, "detection:\n  min_score: {motorcycle: 0.25, tuktuk: 0.3}\n")
    with pytest.raises(RegionError, match="tuktuk") as caught:
        PlanBook.from_dir(tmp_path, ["person", "car", "motorcycle"])
    assert caught.value.field == "detection.min_score" and caught.value.line == 5


def test_plan_book_checks_every_scene_and_the_camera_name(tmp_path: Path):
    write(tmp_path, "detection:\n  slices: auto\n")
    (tmp_path / "cam-08.yaml").write_text("camera: cam-08\nframe_size: [640, 480]\n", encoding="utf-8")
    book = PlanBook.from_dir(tmp_path, ["car"])
    assert book.for_camera("cam-07") is not None and book.for_camera("cam-08") is None
    assert book.for_camera("cam-99") is None
    write(tmp_path, "detection: {}\n", name="cam-09.yaml")  # says camera cam-07
    with pytest.raises(RegionError, match="cam-09"):
        PlanBook.from_dir(tmp_path, ["car"])
    with pytest.raises(RegionError, match="not a directory"):
        PlanBook.from_dir(tmp_path / "nowhere")


def test_missing_frame_size_is_named(tmp_path: Path):
    path = tmp_path / "cam-07.yaml"
    path.write_text("camera: cam-07\ndetection:\n  slices: auto\n", encoding="utf-8")
    with pytest.raises(RegionError, match="frame_size"):
        load_plan(path)


def test_rows_of_tiles_grow_from_far_to_near(tmp_path: Path):
    plan = load_plan(write(tmp_path, "detection:\n  roi: [[0, 25], [1006, 25], [1006, 720], [0, 720]]\n"
                                     "  tile: [300, 900]\n"))
    tiles = plan.tiles((416, 416))
    rows = sorted({(t[1], t[3] - t[1]) for t in tiles})
    sizes = [size for _, size in rows]
    assert sizes[0] == 300 and sizes == sorted(sizes) and sizes[-1] > 416
    assert all(t[2] - t[0] == t[3] - t[1] for t in tiles)  # square, so the model sees them undistorted
    covered = np.zeros((720, 1006), dtype=bool)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] = True
    assert covered[25:720].all()
    with pytest.raises(RegionError, match="far, near") as caught:
        load_plan(write(tmp_path, "detection:\n  tile: [300, 600, 900]\n"))
    assert (caught.value.field, caught.value.line) == ("detection.tile", 5)
