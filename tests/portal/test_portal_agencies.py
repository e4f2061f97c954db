"""The agencies file: the example loads; each mistake is named by file, line and field, and the
portal refuses to start on it (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.portal import agencies
from services.portal.settings import EXAMPLE_AGENCIES

GOOD = """\
reject_reasons:
  - code: not_a_violation
    label: "Không vi phạm"
agencies:
  - id: hp-csgt
    name: "Phòng CSGT"
    role: police
    phone: "0225 3842 455"
    users:
      - id: csgt-a
        name: "Cán bộ A"
        token_sha256: %s
  - id: ca-phuong
    name: "Công an phường"
    role: commune_police
    communes: ["11311"]
""" % agencies.hash_token("secret-a")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agencies.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_loads_every_role():
    directory = agencies.load(EXAMPLE_AGENCIES)
    assert {a.role for a in directory.agencies} == set(agencies.ROLES)
    user = directory.user_for_token("demo-police")
    assert user is not None and user.role == "police" and user.agency.id == "hp-csgt"
    assert directory.user_for_token("demo-police ") is None and directory.user_for_token("") is None
    assert "demo-police" not in Path(EXAMPLE_AGENCIES).read_text(encoding="utf-8").split("#")[0]


def test_good_file(tmp_path):
    directory = agencies.load(write(tmp_path, GOOD))
    assert directory.user_for_token("secret-a").name == "Cán bộ A"
    assert directory.reason_label("not_a_violation") == "Không vi phạm"
    assert directory.resolving_unit("11311").id == "hp-csgt"


@pytest.mark.parametrize("change, line, field, words", [
    (("role: police", "role: sheriff"), 7, "agencies[0].role", "expected one of citizen, commune_police"),
    (("    phone:", "    fax:"), 8, "agencies[0].fax", "unknown field"),
    (('communes: ["11311"]', 'communes: ["113"]'), 16, "agencies[1].communes[0]", "5-digit"),
    (('communes: ["11311"]', "communes: [11311]"), 16, "agencies[1].communes[0]", "(quote it), got 11311"),
    (('communes: ["11311"]', "communes: []"), 16, "agencies[1].communes", "communes it covers"),
    (("        token_sha256: ", "        token_sha256: abc"), 12, "agencies[0].users[0].token_sha256", "64 lowercase hex"),
    (("  - id: ca-phuong", "  - id: hp-csgt"), 13, "agencies[1].id", "listed twice"),
    (("    label: \"Không vi phạm\"\n", ""), 2, "reject_reasons[0]", "required field label is missing"),
    (('    name: "Phòng CSGT"', '    name: " "'), 6, "agencies[0].name", "expected a non-empty text"),
    (("        name: \"Cán bộ A\"", "        name: [\"Cán bộ A\""), 12, None, "not valid YAML"),
    ((GOOD, "agency: []\n"), 1, "agency", "unknown field"),
    ((GOOD, ""), 1, None, "the file is empty"),
])
def test_mistakes_are_named(tmp_path, change, line, field, words):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(agencies.AgencyFileError) as caught:
        agencies.load(path)
    error = caught.value
    assert (error.line, error.field) == (line, field), str(error)
    assert words in error.reason and str(error).startswith(f"{path}:{line}: ")


def test_a_token_given_to_two_users_is_refused(tmp_path):
    second = GOOD.replace("    communes:", "    users:\n      - {id: csgt-b, name: B, token_sha256: %s}\n    communes:"
                          % agencies.hash_token("secret-a"))
    with pytest.raises(agencies.AgencyFileError, match=r":17: agencies\[1\]\.users\[0\]\.token_sha256: the same token"):
        agencies.load(write(tmp_path, second))


def run_portal(repo_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "portal"], cwd=repo_dir, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(repo_dir), **env})


def test_portal_exits_2_on_a_bad_agencies_file(tmp_path, repo_dir):
    path = write(tmp_path, GOOD.replace("role: police", "role: sheriff"))
    result = run_portal(repo_dir, {"DATABASE_URL": "postgresql://127.0.0.1:1/x", "NATS_URL": "nats://127.0.0.1:1",
                                   "AGENCIES_FILE": str(path)})
    assert result.returncode == 2
    assert f"{path}:7: agencies[0].role" in result.stderr


@pytest.mark.parametrize("variable, value", [("TIMEZONE", "Mars/Olympus"), ("AGENCIES_FILE", "/nonexistent.yaml"),
                                             ("PUBLIC_RATE_PER_MINUTE", "0"), ("DATABASE_URL", "mysql://x")])
def test_portal_exits_2_on_a_bad_setting(repo_dir, variable, value):
    env = {"DATABASE_URL": "postgresql://127.0.0.1:1/x", variable: value}
    result = run_portal(repo_dir, env)
    assert result.returncode == 2 and variable in result.stderr, result.stderr


def test_token_command_prints_a_matching_digest(repo_dir):
    result = subprocess.run([sys.executable, "-m", "services.cli", "portal", "token"], cwd=repo_dir,
                            capture_output=True, text=True, timeout=60)
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    token = lines["token (give to the user, once)"].strip()
    assert agencies.hash_token(token) == lines["token_sha256 (put in the agencies file)"].strip()
