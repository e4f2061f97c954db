"""Scene files: the two worked examples load; a bad file is refused naming file, line and field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.track import scenes
from track_samples import SCENE, write_scene


def error_for(tmp_path, text: str) -> scenes.SceneError:
    with pytest.raises(scenes.SceneError) as caught:
        scenes.load(write_scene(tmp_path, text))
    return caught.value


def test_the_vietnamese_scenes_load(repo_dir):
    loaded = scenes.load_dir(repo_dir / "deploy/local/scenes")
    assert set(loaded) >= {"demo-haiphong", "demo-saigon"}
    hp = loaded["demo-haiphong"]
    assert hp.frame_size == (1006, 720) and hp.signal is not None and hp.signal.source == "vision"
    assert [m.id for m in hp.movements_of("right")] == ["straight", "right-turn"]
    assert hp.location.address.startswith("Ngã tư")


def test_unknown_lane_in_a_movement(tmp_path):
    text = SCENE.replace("    lanes: [bus-lane]\n", "    lanes: [bus-lan]\n")
    err = error_for(tmp_path, text)
    assert err.field == "movements[1].lanes[0]"
    assert "unknown lane 'bus-lan'" in str(err) and "test-cam.yaml:" in str(err)
    assert err.line == text.splitlines().index("    lanes: [bus-lan]") + 1


def test_self_intersecting_polygon(tmp_path):
    text = SCENE.replace("[[0, 800], [500, 800], [500, 900], [0, 900]]", "[[0, 800], [500, 900], [500, 800], [0, 900]]")
    err = error_for(tmp_path, text)
    assert err.field == "no_stopping[0].polygon" and "intersects itself" in err.reason
    assert err.line == next(i for i, line in enumerate(text.splitlines(), 1) if "[500, 900], [500, 800]" in line)


def test_missing_distance(tmp_path):
    text = SCENE.replace("    distance_m: 20\n", "")
    err = error_for(tmp_path, text)
    assert err.field == "speed_traps[0]" and err.reason == "required field distance_m is missing"
    assert str(err).startswith(str(tmp_path / "test-cam.yaml") + ":")


@pytest.mark.parametrize("old, new, field, words", [
    ("    max_dwell_s: 10\n", "    max_dwell_s: -1\n", "no_stopping[0].max_dwell_s", "expected float > 0.0, got -1"),
    ("    allowed: [bus]\n", "    allowed: [tank]\n", "lanes[1].allowed[0]", "expected one of bicycle, bus, car, motorcycle, other, truck, got 'tank'"),
    ("    head: bus\n", "    head: tram\n", "movements[1].head", "unknown signal head"),
    ("  intersection: test-junction\n", "", "signal.intersection", "required when the source is controller"),
    ("    direction: [0, -1]\n    allowed: [bus]", "    direction: [0, 0]\n    allowed: [bus]", "lanes[1].direction", "[0, 0]"),
    ("frame_size: [1000, 1000]", "frame_size: [800, 1000]", "lanes[1]", "outside the 800x1000 frame"),
    ("  wrong_lane_frames: 3\n", "  wrong_lane_frame: 3\n", "rules.wrong_lane_frame", "unknown field"),
    ("  - id: bus-lane\n", "  - id: main\n", "lanes[1].id", "duplicate id 'main'"),
])
def test_other_mistakes_are_named(tmp_path, old, new, field, words):
    assert old in SCENE
    err = error_for(tmp_path, SCENE.replace(old, new))
    assert err.field == field and words in str(err) and err.line is not None


def test_camera_must_match_the_file_name(tmp_path):
    path = write_scene(tmp_path, SCENE, name="other-cam.yaml")
    with pytest.raises(scenes.SceneError, match="for camera 'other-cam'"):
        scenes.load_dir(tmp_path)
    assert path.exists()


def test_not_yaml(tmp_path):
    err = error_for(tmp_path, "camera: [unclosed\n")
    assert "not valid YAML" in str(err) and err.line is not None


def test_service_exits_2_naming_the_bad_scene(tmp_path, repo_dir):
    write_scene(tmp_path, SCENE.replace("    lanes: [bus-lane]\n", "    lanes: [bus-lan]\n"))
    result = subprocess.run([sys.executable, "-m", "services.cli", "track"], cwd=repo_dir, capture_output=True,
                            text=True, timeout=60, env={"SCENES_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
                                                        "NATS_URL": "nats://127.0.0.1:1"})
    assert result.returncode == 2
    assert "test-cam.yaml:" in result.stderr and "movements[1].lanes[0]" in result.stderr
    assert "unknown lane 'bus-lan'" in result.stderr


def test_service_exits_2_on_a_bad_setting(repo_dir):
    result = subprocess.run([sys.executable, "-m", "services.cli", "track"], cwd=repo_dir, capture_output=True,
                            text=True, timeout=60, env={"PARTITION_INDEX": "3", "PARTITION_COUNT": "2",
                                                        "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "PARTITION_INDEX" in result.stderr


# --- signal heads by lamp position, count lines, counting-only scenes -------------------------------
VISION = SCENE.replace("""signal:
  source: controller
  intersection: test-junction
  heads:
    - id: main
    - id: bus
""", """signal:
  source: vision
  heads:
    - id: main
      region: [900, 10, 930, 100]
      layout: vertical
      lamps: [red, amber, green]
    - id: bus
      region: [940, 10, 970, 40]
      lamps: [green_arrow]
""")

COUNTING = """# a counting camera: no lanes, no stop line, no location
camera: test-cam
name: "Quốc lộ (đếm xe)"
frame_size: [640, 360]
detection:
  confidence: 0.3
count_lines:
  - id: main
    line: [[0, 250], [640, 250]]
    direction: [0, 1]
  - id: both
    line: [[0, 150], [640, 150]]
"""


def test_vision_heads_declare_their_lamps_in_order(tmp_path):
    scene = scenes.load(write_scene(tmp_path, VISION))
    main, bus = scene.signal.heads
    assert (main.layout, main.lamps) == ("vertical", ("red", "amber", "green"))
    assert (bus.layout, bus.lamps) == ("vertical", ("green_arrow",))


def test_a_scene_with_only_count_lines_is_valid(tmp_path):
    scene = scenes.load(write_scene(tmp_path, COUNTING))
    assert scene.lanes == () and scene.stop_lines == () and scene.location is None and scene.signal is None
    main, both = scene.count_lines
    assert main.line == ((0.0, 250.0), (640.0, 250.0)) and main.direction == (0.0, 1.0)
    assert both.direction is None


@pytest.mark.parametrize("text, old, new, field, words", [
    (VISION, "      lamps: [red, amber, green]\n", "", "signal.heads[0].lamps", "is required when the source is vision"),
    (VISION, "lamps: [red, amber, green]", "lamps: [red, orange, green]", "signal.heads[0].lamps[1]",
     "expected one of amber, amber_arrow, green, green_arrow, red, red_arrow, got 'orange'"),
    (VISION, "lamps: [red, amber, green]", "lamps: [red, red]", "signal.heads[0].lamps[1]", "listed twice"),
    (VISION, "lamps: [red, amber, green]", "lamps: []", "signal.heads[0].lamps", "length >= 1"),
    (VISION, "layout: vertical", "layout: diagonal", "signal.heads[0].layout",
     "expected one of horizontal, vertical, got 'diagonal'"),
    (VISION, "region: [940, 10, 970, 40]\n      lamps: [green_arrow]",
     "region: [940, 10, 970, 11]\n      lamps: [green_arrow]", "signal.heads[1].region", "too small"),
    (COUNTING, "    direction: [0, 1]\n", "    direction: [1, 0]\n", "count_lines[0].direction", "runs along the line"),
    (COUNTING, "    direction: [0, 1]\n", "    direction: [0, 0]\n", "count_lines[0].direction", "must not be [0, 0]"),
    (COUNTING, "[[0, 150], [640, 150]]", "[[0, 150], [700, 150]]", "count_lines[1]", "outside the 640x360 frame"),
    (COUNTING, "[[0, 150], [640, 150]]", "[[0, 150]]", "count_lines[1].line", "expected array of length 2, got 1"),
    (COUNTING, "  - id: both\n", "  - id: main\n", "count_lines[1].id", "duplicate id 'main'"),
    (COUNTING, "    direction: [0, 1]\n", "    direction: [0, 1]\n    dir: [0, 1]\n", "count_lines[0].dir", "unknown field"),
    (COUNTING, "detection:\n  confidence: 0.3\n", "detection: 0.3\n", "detection", "expected object | null, got float"),
    (COUNTING + "lanes:\n  - {id: a, polygon: [[0, 0], [100, 0], [100, 100]], direction: [0, 1], allowed: [car]}\n",
     "", "", "location", "is required when the scene has lanes"),
])
def test_bad_lamps_and_count_lines_are_named(tmp_path, text, old, new, field, words):
    bad = text.replace(old, new) if old else text
    assert bad != text or not old
    err = error_for(tmp_path, bad)
    assert err.field == field and words in err.reason, str(err)
    assert str(err).startswith(f"{tmp_path / 'test-cam.yaml'}:{err.line}: {field}: ")
    assert err.line is not None and 1 <= err.line <= len(bad.splitlines())
