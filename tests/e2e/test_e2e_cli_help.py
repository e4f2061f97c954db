"""`roadwatch VERB --help` answers for every verb, and a service's help lists its own settings.

The commands run as a user would type them (a subprocess), so that a verb which starts its
service instead of answering --help shows up as a timeout, not as a pass.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from services import cli
from services.runtime.settings import env_name

REPO = Path(__file__).resolve().parents[2]


def roadwatch(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NATS_URL": "nats://127.0.0.1:9"}  # nothing to connect to
    return subprocess.run([sys.executable, "-m", "services.cli", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_top_level_help_lists_every_verb() -> None:
    done = roadwatch("--help")
    assert done.returncode == 0, done.stderr
    for word in cli.VERBS:
        assert f"    {word}" in done.stdout


@pytest.mark.parametrize("word", list(cli.VERBS))
def test_every_verb_answers_help(word: str) -> None:
    done = roadwatch(word, "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"usage: roadwatch {word}" in done.stdout
    assert "unknown" not in (done.stdout + done.stderr).lower()


@pytest.mark.parametrize("service", cli.SERVICES)
def test_a_service_help_lists_each_of_its_settings_with_its_default(service: str) -> None:
    settings = importlib.import_module(f"services.{service}.settings").Settings
    done = roadwatch(service, "-h")
    assert done.returncode == 0, done.stderr
    for field in msgspec.structs.fields(settings):
        variable = env_name(field.name)
        if field.default is not msgspec.NODEFAULT and not isinstance(field.default, (list, tuple)):
            shown = str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
            assert f"  {variable}={shown}\n" in done.stdout, variable
        else:
            assert f"  {variable}" in done.stdout, variable
    assert "  HTTP_HOST=127.0.0.1\n" in done.stdout
    assert "address the HTTP port binds" in done.stdout  # the comment beside the field


def test_service_tools_keep_their_own_help() -> None:
    done = roadwatch("registry", "import", "--help")
    assert done.returncode == 0 and "usage: roadwatch registry import" in done.stdout
    assert "--max-errors" in done.stdout
    done = roadwatch("migrate", "--help")
    assert done.returncode == 0 and "--dry-run" in done.stdout


def test_wrong_words_are_usage_errors() -> None:
    done = roadwatch("bogus")
    assert done.returncode == 2 and "invalid choice: 'bogus'" in done.stderr
    done = roadwatch("track", "--what")
    assert done.returncode == 2 and "unexpected arguments '--what'" in done.stderr
    done = roadwatch("registry", "frobnicate")
    assert done.returncode == 2 and "unknown tool 'frobnicate'" in done.stderr
