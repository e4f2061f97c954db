"""Smoke test of bench/system/e2e_load.py: one camera for a few seconds through the real stack
(nats-server, PostgreSQL, every service as a process, the real models and clip) with --json.
It checks the script runs and its summary is complete and consistent, not how fast anything is
(figures belong to the full run: docs/BENCHMARKS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {"offered_fps", "carried_fps", "violation_p50_s", "violation_p95_s", "stack_cpu_cores",
                "cameras_per_core", "models_alone_fps"}


@pytest.mark.timeout(900)
def test_e2e_load_smoke_prints_a_json_summary(shared_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench/system/e2e_load.py"), "--smoke", "--json", "--shared", str(shared_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=880, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout)  # stdout is the JSON document alone; the tables went to stderr
    assert "| figure | pipeline | baseline (same run) | ratio |" in done.stderr
    assert summary["fps_per_camera"] == 5 and summary["baselines"]["models_alone_fps"] > 0
    (run,) = summary["runs"]
    assert SUMMARY_KEYS <= set(run), SUMMARY_KEYS - set(run)
    assert run["cameras"] == 1 and run["offered_fps"] == 5.0
    assert 0 < run["carried_fps"] <= 5.0 * 1.5, run  # detections arrived, at no more than the camera's pace
    assert run["models_alone_fps"] == summary["baselines"]["models_alone_fps"]  # measured in this same run
    assert run["models_alone_cpu_per_frame_s"] > 0 and run["detect_cpu_per_frame_s"] > 0
    assert run["stack_cpu_cores"] > 0 and run["cameras_per_core"] > 0
    assert set(run["cpu_cores_by_process"]) >= {"ingest", "detect", "track", "registry", "portal", "nats-server"}
    (camera,) = run["per_camera"]
    assert run["per_camera"][camera]["detected"] > 0
    if run["violations"]:
        assert 0 <= run["violation_p50_s"] <= run["violation_p95_s"]
    else:
        assert run["violation_p50_s"] is None and run["violation_p95_s"] is None
