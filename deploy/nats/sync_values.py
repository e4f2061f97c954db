"""Copy deploy/nats/accounts.conf into values.yaml (configMap.merge.data."accounts.conf").

The Helm chart can only mount what its values carry, and the tests run nats-server on
accounts.conf: this keeps the two the same. Run after editing accounts.conf:
    .venv/bin/python deploy/nats/sync_values.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "      accounts.conf: |\n"
INDENT = " " * 8


def render(values: str, accounts: str) -> str:
    head, sep, rest = values.partition(KEY)
    if not sep:
        raise SystemExit(f"values.yaml has no line {KEY.strip()!r}")
    lines = rest.splitlines(keepends=True)
    end = 0
    while end < len(lines) and (lines[end].startswith(INDENT) or not lines[end].strip()):
        end += 1
    block = "".join(INDENT + line if line.strip() else "\n" for line in accounts.splitlines(keepends=True))
    return head + sep + block + "".join(lines[end:])


def main() -> int:
    path = HERE / "values.yaml"
    new = render(path.read_text(), (HERE / "accounts.conf").read_text())
    if "--check" in sys.argv:
        return 0 if new == path.read_text() else 1
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
