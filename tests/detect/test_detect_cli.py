"""`roadwatch detect` and `roadwatch plate` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def roadwatch(*args: str, models_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MODELS_DIR": str(models_dir)})


def test_detect_json_lines(shared_dir: Path, models_dir: Path, tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    image = shared_dir / "data" / "street" / "vn_cam_video1_117.jpg"
    done = roadwatch("detect", str(image), str(broken), "--json", models_dir=models_dir)
    assert done.returncode == 1  # one image could not be read
    first, second = [json.loads(line) for line in done.stdout.splitlines()]
    assert first["image"] == str(image)
    classes = [v["class"] for v in first["vehicles"]]
    assert classes.count("motorcycle") >= 4 and "car" in classes
    assert all(len(v["box"]) == 4 and 0 < v["score"] <= 1 for v in first["vehicles"])
    assert second == {"image": str(broken), "error": f"cannot read {broken} as an image"}


def test_plate_json_lines(shared_dir: Path, models_dir: Path):
    plates = shared_dir / "data" / "plates"
    done = roadwatch("plate", str(plates / "vn_3CarLongPlate539.jpg"), str(plates / "vn_ndata400.jpg"), "--json",
                     models_dir=models_dir)
    assert done.returncode == 0, done.stderr
    car, bike = [json.loads(line) for line in done.stdout.splitlines()]
    assert set(car) == {"image", "plates"}
    read = car["plates"][0]
    assert (read["text"], read["layout"], read["format_valid"]) == ("51F-065.32", "one_line", True)
    assert {"text", "raw", "confidence", "box", "corners", "layout", "format_valid"} <= set(read)
    assert bike["plates"][0]["text"] == "29-E1 159.34"
    assert bike["plates"][0]["layout"] == "two_line"


def test_missing_models_dir_exits_2(tmp_path: Path):
    done = roadwatch("plate", "x.jpg", models_dir=tmp_path / "nowhere")
    assert done.returncode == 2
    assert "MODELS_DIR=" in done.stderr and "is not a directory" in done.stderr


def test_detect_with_a_scene_uses_its_plan(models_dir: Path, video_frame, tmp_path: Path):
    import cv2
    import numpy as np

    from services.detect.regions import load_plan

    image = tmp_path / "hp11.png"
    cv2.imwrite(str(image), video_frame("vn_haiphong_intersection.mp4", 11))
    scene = REPO / "deploy" / "local" / "scenes" / "demo-haiphong.yaml"
    with_scene = roadwatch("detect", str(image), "--scene", str(scene), "--json", models_dir=models_dir)
    bare = roadwatch("detect", str(image), "--json", models_dir=models_dir)
    assert with_scene.returncode == 0 and bare.returncode == 0, with_scene.stderr + bare.stderr
    sliced, whole = json.loads(with_scene.stdout)["vehicles"], json.loads(bare.stdout)["vehicles"]
    assert len(sliced) > len(whole)
    assert any(v["class"] == "motorcycle" and v["riders"] >= 1 for v in sliced)
    plan = load_plan(scene)
    boxes = np.array([v["box"] for v in sliced], dtype=np.float32)
    assert plan.inside_roi(boxes).all()


def test_detect_with_a_bad_scene_exits_2_naming_file_line_and_field(models_dir: Path, shared_dir: Path, tmp_path: Path):
    scene = tmp_path / "cam-07.yaml"
    scene.write_text("camera: cam-07\nframe_size: [1006, 720]\ndetection:\n  overlap: 2\n", encoding="utf-8")
    image = shared_dir / "data" / "street" / "vn_cam_video1_117.jpg"
    done = roadwatch("detect", str(image), "--scene", str(scene), models_dir=models_dir)
    assert done.returncode == 2
    assert f"{scene}:4: detection.overlap: " in done.stderr


def test_service_with_a_bad_scene_stops_at_start(models_dir: Path, tmp_path: Path):
    (tmp_path / "cam-07.yaml").write_text("camera: cam-07\nframe_size: [1006, 720]\ndetection:\n  roi: [[0, 0]]\n",
                                          encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "services.detect.main"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MODELS_DIR": str(models_dir), "SCENES_DIR": str(tmp_path),
                                            "NATS_URL": "nats://127.0.0.1:1"})
    assert done.returncode == 2
    assert f"{tmp_path / 'cam-07.yaml'}:4: detection.roi: " in done.stderr
