"""README.md's configuration table is generated from the Settings classes and cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import localstack
from services.runtime import settings_doc
from services.runtime.settings import describe


def test_the_readme_table_is_the_generated_one() -> None:
    assert settings_doc.main(["--check"]) == 0, "run `make settings-doc` and commit README.md"


def test_every_setting_says_what_it_is_for() -> None:
    classes = [settings_doc._load(f"services.{name}.settings:Settings") for name in settings_doc.SERVICES]
    for cls in [*classes, localstack.LocalSettings]:
        silent = [variable for variable, _, comment in describe(cls) if not comment]
        assert not silent, f"{cls.__module__}: give these fields a comment: {', '.join(silent)}"


def test_defaults_are_the_same_on_every_machine() -> None:
    table = settings_doc.table()
    assert str(settings_doc.REPO) not in table
    assert "| `WORKERS` | `available_cores()` |" in table  # computed at start, not this machine's cores
    assert "| `CONSUMER_NAME` | `notify` |" in table and "| `ROADWATCH_PG_FAST` | `false` |" in table


def test_check_fails_on_a_stale_table_and_the_rewrite_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{settings_doc.BEGIN}\n| `OLD` | x | y |\n{settings_doc.END}\n\nafter\n")
    assert settings_doc.main(["--check", "--readme", str(readme)]) == 1
    assert "stale" in capsys.readouterr().err
    assert settings_doc.main(["--readme", str(readme)]) == 0
    assert settings_doc.main(["--check", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "`OLD`" not in text and text.startswith("# title\n") and text.endswith("\nafter\n")
    readme.write_text("no markers\n")
    assert settings_doc.main(["--check", "--readme", str(readme)]) == 2
