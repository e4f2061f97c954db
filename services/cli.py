"""The `roadwatch` command: `roadwatch <service>` runs a service, other words run tools.

Each entry names the module and function to import lazily, so that a tool does not pay for
the imports of every service (onnxruntime, PyAV) at start.
"""

from __future__ import annotations

import importlib
import sys

SERVICES = ("ingest", "detect", "track", "registry", "portal", "notify")

# word -> (module:function, one-line help). Services first, then tools.
COMMANDS: dict[str, tuple[str, str]] = {
    **{name: (f"services.{name}.main:main", f"run the {name} service") for name in SERVICES},
    # `roadwatch detect IMAGE...` and `roadwatch registry import|synth ...` are handled by the
    # service's own main(argv): with arguments it runs the tool instead of the service.
    "migrate": ("services.runtime.migrations:main", "apply the versioned SQL migrations of every schema"),
    "plate": ("services.detect.cli:plate_main", "read already-cropped plate images (roadwatch plate IMAGE... [--json])"),
    "replay": ("services.replay.cli:main", "a video file through detect and track, no bus (roadwatch replay VIDEO --scene S.yaml)"),
    "audit": ("services.portal.audit:main", "check the portal's hash-chained audit log (roadwatch audit verify)"),
    "localdb": ("services.firstrun:localdb_main", "make run's database: given or embedded PostgreSQL, migrated, demo registry"),
    "localnats": ("services.firstrun:localnats_main", "make run's nats-server (JetStream in var/nats)"),
    "stack-env": ("services.firstrun:stack_env_main", "check the demo configuration, write var/run.env and var/Procfile (make run)"),
}


def usage() -> str:
    width = max(len(word) for word in COMMANDS)
    lines = ["usage: roadwatch COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {word:<{width}}  {text}" for word, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    word, rest = argv[0], argv[1:]
    if word not in COMMANDS:
        print(f"roadwatch: unknown command {word!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, _, function_name = COMMANDS[word][0].partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
