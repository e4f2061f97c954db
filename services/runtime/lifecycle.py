"""A service's life: stop on SIGTERM/SIGINT, supervise its tasks, turn the end into an exit code.

Every services/<name>/main.py has the same two functions: `run(config, ..., stop=None,
ready=None) -> int` (settings → AsyncExitStack(NATS, HTTP, pool/models) → consumers → wait for
stop → drain) and `main(argv) -> int`, which hands its service to `main` here (its sub-tools by
name, else settings → files → run).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from services.runtime import logs, settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
S = TypeVar("S", bound=settings.ServiceSettings)


def stop_event() -> asyncio.Event:
    """An Event set by SIGTERM or SIGINT. Repeats are ignored while draining: process runners
    (honcho, a terminal's Ctrl-C plus the runner's SIGTERM) often send two, and the drain must
    finish; Kubernetes' SIGKILL after the grace period remains the hard stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.info("already stopping", extra={"fields": {"signal": name}})
            return
        log.info("stopping", extra={"fields": {"signal": name}})
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return stop


async def until_stopped(stop: asyncio.Event, tasks: Iterable[asyncio.Task]) -> int:
    """Wait for the stop, or for a task to end first (a crash: the others are stopped too); then
    let every task finish. EXIT_FAILED when one failed, so that the supervisor restarts us."""
    tasks = list(tasks)
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    await waiting
    failed = False
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("task failed", exc_info=result)
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


def configure(service: str, settings_type: type[S]) -> S:
    """The service's settings from the environment (a bad variable exits 2 naming it), and its
    JSON logs at the level they set."""
    config = settings.load(settings_type, service=service)
    logs.setup(service, config.log_level)
    return config


def run(service: str, service_run: Coroutine[Any, Any, int | None]) -> int:
    """asyncio.run() of a service's run() as its exit code; NATS or PostgreSQL still unreachable
    after the start-up wait is said in one line, not a traceback."""
    try:
        return asyncio.run(service_run) or EXIT_OK
    except ConnectionError as exc:
        print(f"roadwatch {service}: {exc}", file=sys.stderr)
        return EXIT_FAILED


Tool = Callable[[list[str]], int]


def main(service: str, settings_type: type[S], argv: list[str] | None,
         start: Callable[[S], Coroutine[Any, Any, int | None]],
         tools: Mapping[str, Tool] | Tool | None = None) -> int:
    """A service's `main(argv)`. With arguments: the sub-tool they name (`tool`), or `tools` itself
    when it is one function taking them all (detect's images). Without: the settings (`configure`:
    a bad variable exits 2 naming it), then `start(config)`, which loads the service's files
    (a refused file exits 2 naming it: SystemExit) and returns the service's run(), and the exit
    code of that run (`run`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        return tools(argv) if callable(tools) else tool(service, argv, tools or {})
    config = configure(service, settings_type)
    return run(service, start(config))


def tool(service: str, argv: list[str], tools: Mapping[str, Tool]) -> int:
    """`roadwatch <service> TOOL ARGS...`: the tool's exit code, or EXIT_USAGE naming the tools."""
    found = tools.get(argv[0])
    if found is None:
        expected = f"expected: {', '.join(tools)}, or" if tools else "the service takes"
        print(f"roadwatch {service}: unknown tool {argv[0]!r} ({expected} no argument to run the service)",
              file=sys.stderr)
        return EXIT_USAGE
    return int(found(argv[1:]) or 0)
