"""The smoke fine-tune: a few iterations on a handful of real frames, then the export must load in
onnxruntime and decode with the services' YOLOX decoder, in the shared model's format.

Torch lives only in training/.venv (`make finetune-smoke` or `make finetune` creates it); the
services' environment never installs it, so without that virtualenv this test is skipped.
The training runs in a subprocess with training/.venv's Python; the checks run here.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from services.detect.vehicles import decode_yolox, letterbox, read_class_names

REPO = Path(__file__).resolve().parents[2]
TRAIN_PY = REPO / "training" / ".venv" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not TRAIN_PY.exists(),
    reason="training/.venv is absent (torch is kept out of the services' environment); "
           "`make finetune-smoke` creates it and runs this test",
)


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(TRAIN_PY), "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("finetune")
    _run(["training.pseudolabel", "--split", str(REPO / "training" / "split.json"), "--shared", str(shared_dir),
          "--out", str(out / "data"), "--limit", "3"], REPO)
    log = _run(["training.train", "--recipe", str(REPO / "training" / "recipe.json"),
                "--onnx", str(shared_dir / "models" / "yolox_nano.onnx"), "--data", str(out / "data"),
                "--out", str(out / "run"), "--epochs", "1", "--iters-per-epoch", "2", "--batch", "2"], REPO)
    (out / "train.log").write_text(log)
    return out


def test_torch_model_reproduces_the_shared_onnx(shared_dir: Path) -> None:
    out = _run(["training.check_weights", "--onnx", str(shared_dir / "models" / "yolox_nano.onnx"),
                "--video", str(shared_dir / "data" / "video" / "vn_saigon_intersection.mp4"), "--frame", "30"], REPO)
    diff = float(out.split("= ")[1].split()[0])
    assert diff < 1e-3, out


def test_pseudo_labels_are_fused_vehicles_away_from_the_eval_frames(smoke_run: Path) -> None:
    doc = json.loads((smoke_run / "data" / "labels.json").read_text())
    assert doc["classes"] == ["motorcycle", "bicycle", "car", "bus", "truck"]
    assert len(doc["images"]) == 3
    truth = json.loads((REPO / "eval" / "truth" / "vn_haiphong_intersection.json").read_text())
    eval_frames = [f["frame"] for f in truth["frames"]]
    for name, lab in doc["images"].items():
        clip, frame = lab["source"].split("#")
        assert clip == "vn_haiphong_intersection.mp4"
        assert min(abs(int(frame) - e) for e in eval_frames) > 6, name
        assert (smoke_run / "data" / "images" / name).is_file()
        classes = [b[4] for b in lab["boxes"]]
        # an intersection frame: cars and ridden motorbikes, every box inside the 1006x720 frame
        assert classes.count(2) >= 3 and classes.count(0) >= 3, (name, classes)
        for x1, y1, x2, y2, *_ in lab["boxes"]:
            assert 0 <= x1 < x2 <= 1006 and 0 <= y1 < y2 <= 720


def test_training_logs_finite_losses(smoke_run: Path) -> None:
    log = (smoke_run / "train.log").read_text()
    assert "data: 3 images" in log
    assert "epoch 1 done" in log and "nan" not in log.lower()


def test_export_loads_and_decodes_with_the_service_decoder(smoke_run: Path, shared_dir: Path) -> None:
    model = smoke_run / "run" / "model.onnx"
    names = read_class_names(smoke_run / "run" / "classes.names")
    assert names == ["motorcycle", "bicycle", "car", "bus", "truck"]
    assert model.stat().st_size <= 10 * 1024 * 1024
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "images" and list(inp.shape) == [1, 3, 416, 416]
    assert out.name == "output" and list(out.shape) == [1, 3549, 5 + len(names)]
    # a real frame of the clip, letterboxed as the service does for `yolox` (top-left, 114, BGR 0-255)
    cap = cv2.VideoCapture(str(shared_dir / "data" / "video" / "vn_haiphong_intersection.mp4"))
    for _ in range(21):
        ok, frame = cap.read()
    cap.release()
    assert ok
    canvas, lb = letterbox(frame, (416, 416), centred=False, fill=114)
    outputs = session.run(None, {"images": canvas.transpose(2, 0, 1)[None].astype(np.float32)})
    boxes, scores, classes = decode_yolox(outputs, (416, 416), 0.3)
    assert np.isfinite(boxes).all() and ((scores >= 0.3) & (scores <= 1)).all()
    # two iterations from the stock weights keep what the COCO rows saw: the waiting cars
    found = [names[c] for c in classes]
    assert found.count("car") >= 2, found
    boxes = boxes / lb.scale
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 0] < frame.shape[1]).all()
