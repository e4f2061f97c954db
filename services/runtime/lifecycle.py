"""Stop on SIGTERM/SIGINT: a set Event that consumers check between batches."""

from __future__ import annotations

import asyncio
import logging
import signal

log = logging.getLogger(__name__)


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
