"""Helpers shared by the ingest tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import time
from pathlib import Path


# --- cameras files ----------------------------------------------------------------------------------
def camera_yaml(camera_id: str, url: str, *, fps: float = 4, **extra: object) -> str:
    lines = [f"  - id: {camera_id}", f"    name: Test camera {camera_id}", f"    url: {url}", f"    fps: {fps}",
             f"    scene: scenes/{camera_id}.yaml",
             "    location: {latitude: 20.8449, longitude: 106.6881, address: 'Hải Phòng', commune_code: '11311'}"]
    lines += [f"    {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def cameras_file(path: Path, *entries: str) -> Path:
    path.write_text("cameras:\n" + "".join(entries), encoding="utf-8")
    return path


class Collector:
    """Every message on a subject, with the time it arrived."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, object]] = []

    async def receive(self, msg) -> None:
        self.messages.append((time.time(), msg))

    def since(self, start: float) -> list:
        return [msg for at, msg in self.messages if at >= start]
