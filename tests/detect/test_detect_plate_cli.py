"""`roadwatch plate --countries`: the formats a camera expects decide whether a plate is repaired."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def roadwatch(*args: str, models_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MODELS_DIR": str(models_dir), **env})


def test_a_slovak_plate_is_read_as_slovak_and_kept_as_read_by_a_vietnamese_camera(shared_dir: Path, models_dir: Path):
    image = str(shared_dir / "data" / "plates" / "openalpr_eu_test_021.jpg")  # RK-855AP
    slovak = roadwatch("plate", image, "--json", "--countries", "sk,cz", models_dir=models_dir)
    assert slovak.returncode == 0, slovak.stderr
    read = json.loads(slovak.stdout)["plates"][0]
    assert (read["text"], read["format_valid"], read["country"]) == ("RK-855AP", True, "sk")
    local = roadwatch("plate", image, "--json", models_dir=models_dir, PLATE_COUNTRIES="vn")
    read = json.loads(local.stdout)["plates"][0]
    assert (read["text"], read["format_valid"], read["country"]) == ("RK855AP", False, "sk")
    human = roadwatch("plate", image, models_dir=models_dir, PLATE_COUNTRIES="vn")
    assert "a plate of sk, not expected: kept as read" in human.stdout


def test_unknown_country_exits_2_naming_the_variable(models_dir: Path):
    done = roadwatch("plate", "x.jpg", "--countries", "vn,zz", models_dir=models_dir)
    assert done.returncode == 2
    assert "PLATE_COUNTRIES" in done.stderr and "zz" in done.stderr
