"""The README's configuration table, generated from the Settings classes so that it cannot drift.

`python -m services.runtime.settings_doc` (`make settings-doc`) rewrites the part of README.md
between the two markers; `--check` only says whether it is stale (exit 1). A variable's meaning
is the comment beside (or above) its field: change it there, not in the README.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path

from services.runtime.settings import DatabaseSettings, describe, ranges

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BEGIN = "<!-- settings-doc:begin (generated from the Settings classes by `make settings-doc`; edit their comments) -->"
END = "<!-- settings-doc:end -->"
SERVICES = ("ingest", "detect", "track", "registry", "portal", "notify")
LOCAL = "services.localstack:LocalSettings"
HEADER = "| variable | default | meaning |\n|---|---|---|"


def _load(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(shown: str) -> str:
    if shown == "required":
        return "(required)"
    return f"`{_cell(shown)}`" if shown else "empty"


def _rows(rows: Iterable[tuple[str, str, str]]) -> list[str]:
    return [f"| `{variable}` | {_default(shown)} | {_cell(comment)} |" for variable, shown, comment in rows]


def table(root: Path = REPO) -> str:
    """The generated Markdown, markers excluded."""
    classes = {name: _load(f"services.{name}.settings:Settings") for name in SERVICES}
    shared = DatabaseSettings.__struct_fields__  # ServiceSettings' fields, then the database's
    described = {name: {row[0]: row for row in describe(cls, root=root)} for name, cls in classes.items()}
    meanings = {variable: comment for variable, _, comment in describe(DatabaseSettings, root=root, bounds=False)}
    limits = {name: ranges(cls) for name, cls in classes.items()}
    common = []
    for field in shared:
        variable = field.upper()
        having = [name for name in SERVICES if variable in described[name]]
        defaults: dict[str, list[str]] = {}
        for name in having:
            defaults.setdefault(described[name][variable][1], []).append(name)
        if len(defaults) == 1:
            shown = _default(next(iter(defaults)))
        else:
            shown = ", ".join(f"{' and '.join(names)} {_default(value)}" for value, names in defaults.items())
        notes = [] if len(having) == len(SERVICES) else [f"{', '.join(having)} only"]
        bounds: dict[str, list[str]] = {}
        for name in having:
            bounds.setdefault(limits[name].get(field, ""), []).append(name)
        if len(bounds) == 1:
            notes += [text for text in bounds if text]
        else:
            notes += [f"{' and '.join(names)} {text or 'any'}" for text, names in bounds.items()]
        scope = f" ({'; '.join(notes)})" if notes else ""
        common.append(f"| `{variable}` | {shown} | {_cell(meanings[variable])}{scope} |")
    parts = ["**Every service** (`services/runtime/settings.py`)", "", HEADER, *common]
    for name, cls in classes.items():
        own = [row for row in describe(cls, root=root) if row[0].lower() not in shared]
        parts += ["", f"**{name}** (`services/{name}/settings.py`, `services/{name}/README.md`)", "", HEADER,
                  *_rows(own)]
    parts += ["", "**`make run` only** (`services/localstack.py`: `roadwatch stack-env`, `localnats`, `localdb`)", "",
              HEADER, *_rows(describe(_load(LOCAL), root=root))]
    return "\n".join(parts)


def render(readme: str, generated: str) -> str:
    """README text with the generated table between the markers (ValueError when they are missing)."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {BEGIN!r} ... {END!r}")
    return readme[:start + len(BEGIN)] + "\n" + generated + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.runtime.settings_doc", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md's table is stale; write nothing")
    parser.add_argument("--readme", type=Path, default=README, help="default: the repository's README.md")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    try:
        wanted = render(current, table())
    except ValueError as exc:
        print(f"settings-doc: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if wanted != current:
            print(f"settings-doc: the configuration table in {args.readme} is stale: run `make settings-doc`",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted, encoding="utf-8")
        print(f"settings-doc: {args.readme} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
