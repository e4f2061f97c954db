"""`make run` on a machine with only the repository: it starts what it can and says what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def stack_env(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "MODELS_DIR", "CAMERAS_FILE", "ROADWATCH_BIND")}
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


def run_env_file(tmp_path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp_path / "var" / "run.env").read_text().splitlines())


def test_make_run_is_local_by_default_and_each_service_has_its_own_nats_user(tmp_path: Path) -> None:
    result = stack_env(tmp_path)
    assert result.returncode == 0, result.stderr
    env = run_env_file(tmp_path)
    assert env["ROADWATCH_BIND"] == "127.0.0.1" and env["HTTP_HOST"] == "127.0.0.1"
    assert "listening on      127.0.0.1 only" in result.stdout and "WARNING" not in result.stdout
    passwords = dict(line.split("=", 1) for line in (tmp_path / "var" / "nats-users").read_text().splitlines())
    for service in ("ingest", "detect", "track", "registry", "portal", "notify"):
        assert env[f"NATS_URL_{service.upper()}"] == f"nats://{service}:{passwords[service]}@127.0.0.1:{env['NATS_PORT']}"
        assert passwords[service] not in result.stdout + result.stderr, "the banner never shows a password"
    assert (tmp_path / "var" / "nats-users").stat().st_mode & 0o077 == 0
    assert (tmp_path / "var" / "run.env").stat().st_mode & 0o077 == 0
    # A second start keeps the passwords (the JetStream store and the services' URLs stay valid).
    assert stack_env(tmp_path).returncode == 0
    again = run_env_file(tmp_path)["NATS_URL_DETECT"]
    assert again.rsplit(":", 1)[0] == env["NATS_URL_DETECT"].rsplit(":", 1)[0]  # the port may move off a taken 4222


def test_another_address_only_when_set_and_the_banner_warns(tmp_path: Path) -> None:
    result = stack_env(tmp_path, ROADWATCH_BIND="0.0.0.0")
    assert result.returncode == 0, result.stderr
    env = run_env_file(tmp_path)
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert env["NATS_URL_PORTAL"].endswith(f"@127.0.0.1:{env['NATS_PORT']}"), "a wildcard bind is reached on loopback"
    assert "WARNING           listening on 0.0.0.0 (ROADWATCH_BIND)" in result.stdout
    assert "give anyone police access" in result.stdout


def test_a_bad_bind_address_is_refused_by_name(tmp_path: Path) -> None:
    result = stack_env(tmp_path, ROADWATCH_BIND="my laptop")
    assert result.returncode == 2
    assert "ROADWATCH_BIND='my laptop' is not an IP address" in result.stderr
