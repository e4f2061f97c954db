"""The `roadwatch` command: `roadwatch <verb> [ARGS...]`, one argparse subcommand per verb.

`roadwatch <service>` runs a service (its settings are environment variables, listed by
`roadwatch <service> --help`, read off its Settings class); other verbs run tools. A verb's
target is imported only when the verb runs, so that a tool does not pay for the imports of
every service (onnxruntime, PyAV) at start. A new verb is one entry in TOOL_VERBS (or LOCAL_VERBS).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    target: str  # "module:function", called with the verb's remaining arguments
    help: str  # one line, for `roadwatch --help`
    settings: str = ""  # "module:Class" whose fields are the verb's environment settings (listed by --help)
    tools: str = ""  # usage of the service's own sub-tools (their arguments pass through)
    own_help: bool = False  # a tool with its own argparse: `--help` is its own
    arguments: str = ""  # metavar of the positional arguments a tool without its own parser takes


SERVICES = ("ingest", "detect", "track", "registry", "portal", "notify")
SERVICE_TOOLS = {
    "ingest": "roadwatch ingest check [CAMERAS_FILE]   validate a cameras file and list its cameras",
    "detect": "roadwatch detect IMAGE... [--json]     find vehicles and read plates in images (--help after IMAGE)",
    "registry": "roadwatch registry import FILE...     import a registry extract (roadwatch registry import --help)\n"
                "roadwatch registry synth [OPTIONS]    write a synthetic registry (roadwatch registry synth --help)",
    "portal": "roadwatch portal token                 make an API token and its SHA-256 for the agencies file\n"
              "roadwatch portal report [OPTIONS]     the coordination report, as roadwatch report (--help)",
}
LOCAL_SETTINGS = "services.localstack:LocalSettings"  # make run's own settings (stack-env, localnats, localdb)
TOOL_VERBS = {  # verb: (target, help); each has its own argparse, whose --help is its own
    "migrate": ("services.runtime.migrations:main", "apply the versioned SQL migrations of every schema"),
    "plate": ("services.detect.cli:plate_main", "read already-cropped plate images (roadwatch plate IMAGE... [--json])"),
    "replay": ("services.replay.cli:main",
               "a video file through detect and track, no bus (roadwatch replay VIDEO --scene S.yaml)"),
    "model": ("services.detect.model_cli:main",
              "detector models as versioned artefacts (roadwatch model add|list|shadow|promote|rollback)"),
    "report": ("services.portal.report:main",
               "the coordination report of an agency for a period, PDF and CSV, optionally mailed "
               "(roadwatch report --from D --to D --agency ID [--send])"),
    "dataset": ("services.portal.dataset:main",
                "export reviewed cases as training data (police token; audited): roadwatch dataset export"),
    "audit": ("services.portal.audit:main", "check the portal's hash-chained audit log (roadwatch audit verify)"),
}
LOCAL_VERBS = {  # verb: (target, help, arguments); make run's steps, with LOCAL_SETTINGS
    "localdb": ("services.firstrun:localdb_main",
                "make run's database: given or embedded PostgreSQL, migrated, demo registry", ""),
    "localnats": ("services.firstrun:localnats_main",
                  "make run's nats-server: the accounts of deploy/nats/accounts.conf, JetStream in var/nats", ""),
    "stack-env": ("services.firstrun:stack_env_main",
                  "check the demo configuration, write var/run.env and var/Procfile (make run)", "VAR_DIR"),
}

VERBS: dict[str, Verb] = {
    **{name: Verb(f"services.{name}.main:main", f"run the {name} service",
                  settings=f"services.{name}.settings:Settings", tools=SERVICE_TOOLS.get(name, ""))
       for name in SERVICES},
    **{word: Verb(target, text, own_help=True) for word, (target, text) in TOOL_VERBS.items()},
    **{word: Verb(target, text, settings=LOCAL_SETTINGS, arguments=arguments)
       for word, (target, text, arguments) in LOCAL_VERBS.items()},
}


def _load(target: str):
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _verb_parser(subparsers, word: str, verb: Verb) -> argparse.ArgumentParser:
    kwargs = dict(help=verb.help, description=verb.help, formatter_class=argparse.RawDescriptionHelpFormatter)
    if verb.own_help:
        parser = subparsers.add_parser(word, add_help=False, **kwargs)
        parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return parser
    epilog = []
    if verb.tools:
        epilog.append("sub-tools (their arguments pass through):\n" + _indent(verb.tools))
    parser = subparsers.add_parser(word, epilog="\n\n".join(epilog) or None, **kwargs)
    if verb.tools:
        parser.add_argument("args", nargs=argparse.REMAINDER, metavar="TOOL ...", help="a sub-tool and its arguments")
    elif verb.arguments:
        parser.add_argument("args", nargs="?", metavar=verb.arguments, help="(default: var)")
    return parser


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roadwatch", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="roadwatch: traffic cameras to evidence-backed violation cases.",
        epilog="`roadwatch VERB --help` describes a verb; for a service it lists its environment settings.")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs")
    for word, verb in VERBS.items():
        _verb_parser(subparsers, word, verb)
    return parser


def _with_settings(parser: argparse.ArgumentParser, verb: Verb) -> None:
    """Add the service's settings to its help (imported here: only a service's --help pays for it)."""
    from services.runtime.settings import help_text

    settings = help_text(_load(verb.settings))
    parser.epilog = settings + ("\n\n" + parser.epilog if parser.epilog else "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] == "help":
        parser.print_help()
        return 0
    word = argv[0]
    verb = VERBS.get(word)
    if verb is not None and verb.settings and any(arg in ("-h", "--help") for arg in argv[1:2]):
        _with_settings(parser._subparsers._group_actions[0].choices[word], verb)  # noqa: SLF001
    try:
        namespace, unknown = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    if namespace.verb is None:
        parser.print_help()
        return 0
    verb = VERBS[namespace.verb]
    given = getattr(namespace, "args", None)
    rest = unknown + ([given] if isinstance(given, str) else list(given or []))
    if unknown and not (verb.own_help or verb.tools):
        parser._subparsers._group_actions[0].choices[namespace.verb].print_usage(sys.stderr)  # noqa: SLF001
        print(f"roadwatch {namespace.verb}: unexpected arguments {' '.join(unknown)!r}", file=sys.stderr)
        return 2
    result = _load(verb.target)(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
