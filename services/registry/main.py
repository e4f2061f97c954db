"""`roadwatch registry`: the service; `roadwatch registry import|synth ...`: its tools."""

from __future__ import annotations

import sys

TOOLS = {
    "import": "services.registry.importer",
    "synth": "services.registry.synth",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TOOLS:
        import importlib

        return importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
    if argv:
        print(f"roadwatch registry: unknown tool {argv[0]!r} (expected: {', '.join(TOOLS)}, "
              "or no argument to run the service)", file=sys.stderr)
        return 2
    from services.registry import service

    return service.main()
