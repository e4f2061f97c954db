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
    assert err.field == "no_stopping[0].polygon" and "intersects itself" in err.problem
    assert err.line == next(i for i, line in enumerate(text.splitlines(), 1) if "[500, 900], [500, 800]" in line)


def test_missing_distance(tmp_path):
    text = SCENE.replace("    distance_m: 20\n", "")
    err = error_for(tmp_path, text)
    assert err.field == "speed_traps[0].distance_m" and err.problem == "is required"
    assert str(err).startswith(str(tmp_path / "test-cam.yaml") + ":")


@pytest.mark.parametrize("old, new, field, words", [
    ("    max_dwell_s: 10\n", "    max_dwell_s: -1\n", "no_stopping[0].max_dwell_s", "must be >"),
    ("    allowed: [bus]\n", "    allowed: [tank]\n", "lanes[1].allowed[0]", "not a vehicle class"),
    ("    head: bus\n", "    head: tram\n", "movements[1].head", "unknown signal head"),
    ("  intersection: test-junction\n", "", "signal.intersection", "required when the source is controller"),
    ("    direction: [0, -1]\n    allowed: [bus]", "    direction: [0, 0]\n    allowed: [bus]", "lanes[1].direction", "[0, 0]"),
    ("frame_size: [1000, 1000]", "frame_size: [800, 1000]", "lanes[1]", "outside the 800x1000 frame"),
    ("  wrong_lane_frames: 3\n", "  wrong_lane_frame: 3\n", "rules", "unknown key(s) wrong_lane_frame"),
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
