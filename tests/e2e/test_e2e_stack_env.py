"""`make run` on a machine with only the repository: it starts what it can and says what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def stack_env(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "MODELS_DIR", "CAMERAS_FILE")}
    return subprocess.run([sys.executable, "-m", "services.cli", "stack-env", str(tmp_path / "var")], cwd=REPO,
                          env={**env, **overrides}, capture_output=True, text=True, timeout=60)


def procfile_names(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "var" / "Procfile").read_text().splitlines()
    return [line.split(":", 1)[0] for line in lines if line and not line.startswith("#")]


def test_without_models_or_clips_the_rest_still_starts_and_the_gaps_are_named(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text((REPO / "deploy/local/cameras.yaml").read_text().replace("../../../shared", str(tmp_path / "nowhere")))
    result = stack_env(tmp_path, MODELS_DIR=str(tmp_path / "no-models"), CAMERAS_FILE=str(cameras))
    assert result.returncode == 0, result.stderr
    assert procfile_names(tmp_path) == ["nats", "postgres", "mail", "ingest", "track", "registry", "portal", "notify"]
    assert "detect is not started" in result.stderr and "yolox_nano.onnx" in result.stderr and "ch_PP-OCRv4_rec_infer.onnx" in result.stderr
    assert "README's Models table" in result.stderr and "MODELS_DIR=" in result.stderr
    assert "demo-haiphong" in result.stderr and "will report offline" in result.stderr
    assert "http://127.0.0.1:8080" in result.stdout and "demo-police" in result.stdout
    env = dict(line.split("=", 1) for line in (tmp_path / "var" / "run.env").read_text().splitlines())
    assert env["EMBEDDED_PG"] == "1" and env["DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")


def test_a_broken_cameras_file_drops_ingest_and_says_where(tmp_path: Path, shared_dir: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - id: Bad.Id\n    name: x\n")
    result = stack_env(tmp_path, MODELS_DIR=str(shared_dir / "models"), CAMERAS_FILE=str(cameras))
    assert result.returncode == 0, result.stderr
    assert "ingest" not in procfile_names(tmp_path) and "detect" in procfile_names(tmp_path)
    assert "ingest is not started" in result.stderr and "cameras.yaml" in result.stderr


def test_with_the_shared_folder_everything_starts(tmp_path: Path, shared_dir: Path) -> None:
    result = stack_env(tmp_path, MODELS_DIR=str(shared_dir / "models"))
    assert result.returncode == 0 and result.stderr == ""
    assert procfile_names(tmp_path) == ["nats", "postgres", "mail", "ingest", "detect", "track", "registry", "portal", "notify"]
