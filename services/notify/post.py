"""Paper letters: each goes to a spool directory as `<notice id>.pdf` for the print room.
Written under a temporary name and renamed, so the printer never picks up half a file and a
repeated write replaces the same file instead of adding a second letter."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from services.notify.outcome import DeliveryError


def _write(directory: Path, notice_id: str, document: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{notice_id}.pdf"
    temporary = directory / f".{notice_id}.pdf.tmp"
    with temporary.open("wb") as out:
        out.write(document)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, final)
    return final


async def spool(directory: str, notice_id: str, document: bytes | None) -> Path:
    if not document:
        raise DeliveryError("no letter to print", permanent=True)
    try:
        return await asyncio.to_thread(_write, Path(directory), notice_id, document)
    except OSError as exc:
        raise DeliveryError(f"cannot write to the print spool {directory}: {exc}") from exc
