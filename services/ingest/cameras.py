"""The cameras file: which cameras exist, where they are and how to read them.

The file is the operator's only interface to this service, so every mistake in it is reported
with the file, the line and the field (`cameras[1].fps`), and nothing is guessed: unknown keys
are errors (a typo such as `jpeg_qualty` would otherwise silently fall back to a default).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec
from msgspec import Meta

from proto.subjects import TOKEN
from services.runtime import config
from services.runtime.config import Text

SourceKind = Literal["rtsp", "mjpeg", "file", "folder"]
MAX_FPS = 30.0


class CamerasError(config.ConfigFileError):
    """A cameras file that cannot be used; `str()` is the message shown to the operator."""


class Location(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    latitude: Annotated[float, Meta(ge=-90, le=90)]
    longitude: Annotated[float, Meta(ge=-180, le=180)]
    address: str = ""
    commune_code: Annotated[str, Meta(description="a quoted string (a commune code may start with 0)")] = ""


class Motion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Frame-difference gate: skip still frames, but send one every `keepalive_s` anyway."""

    enabled: bool = True
    # Fraction of the small grey copy's pixels that must change for a frame to count as motion.
    min_changed: Annotated[float, Meta(gt=0, le=1)] = 0.003
    # Per-pixel grey-level difference (0-255) that counts as a change; above sensor noise.
    pixel_threshold: Annotated[int, Meta(ge=1, le=255)] = 25
    keepalive_s: Annotated[float, Meta(gt=0, le=3600)] = 5.0


class _Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A camera as the file gives it (see cameras.example.yaml)."""

    id: Annotated[str, Meta(pattern=TOKEN.pattern, max_length=64, description=(
        "lowercase letters and digits with '-' or '_' inside, at most 64 characters "
        "(it becomes a NATS subject token)"))]
    name: Text
    url: Text
    scene: Text
    location: Location
    fps: Annotated[float, Meta(gt=0, le=MAX_FPS)] = 5.0
    jpeg_quality: Annotated[int, Meta(ge=1, le=100)] = 80
    motion: Motion | bool | None = None  # true: Motion() with its defaults
    loop: bool = True  # file and folder sources start again at the end
    realtime: bool = True  # file and folder sources are paced to their own frame rate
    image_fps: Annotated[float, Meta(gt=0, le=1000)] | None = None  # frame rate of a folder of images (default: fps)
    max_width: Annotated[int, Meta(ge=16)] | None = None  # downscale wider frames before JPEG encoding
    # Files and folders: the capture time of the first frame (a recording's own start), so that
    # every play of the clip stamps the same times, hence the same frame and violation ids.
    start_at: Annotated[datetime, Meta(tz=True, description=(
        "a time with its UTC offset, e.g. 2026-11-28T07:00:00+07:00"))] | None = None


class Camera(_Entry, frozen=True, kw_only=True):
    """A camera ready to read: local paths resolved, the kind of source known."""

    kind: SourceKind
    motion: Motion = Motion(enabled=False)
    start_at: float | None = None  # Unix seconds; None: when the play starts

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cameras: list[_Entry] | None = None


def redact_url(url: str) -> str:
    """Hide credentials: RTSP URLs usually carry the camera's password, and URLs end up in logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def source(url: str, base: Path) -> tuple[str, SourceKind]:
    """The URL to read, a local path resolved against `base` (a trailing slash kept), and its kind:
    rtsp(s):// → RTSP, http(s):// → MJPEG, anything else is a local path: a folder if it is one."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps", "http", "https"):
        return url, "rtsp" if scheme.startswith("rtsp") else "mjpeg"
    if scheme not in ("", "file"):
        raise ValueError(f"unsupported URL scheme {scheme!r} (use rtsp://, http(s):// for MJPEG, or a file/folder path)")
    raw = url[len("file://"):] if scheme == "file" else url
    if not raw:
        raise ValueError("empty path")
    path = raw if os.path.isabs(raw) else str((base / os.path.expanduser(raw)).resolve())
    path += "/" if raw.endswith("/") and not path.endswith("/") else ""
    return path, "folder" if path.endswith("/") or os.path.isdir(path) else "file"


def load(path: str | Path) -> list[Camera]:
    """Read and validate the whole file; raise CamerasError on the first problem found."""
    return _cameras(config.read(path, error=CamerasError), Path(path).resolve().parent)


def parse(text: str, path: str | Path = "<cameras>") -> list[Camera]:
    """Validate a cameras document; relative file and folder paths are relative to the file's folder."""
    base = Path(path).resolve().parent if str(path) != "<cameras>" else Path.cwd()
    return _cameras(config.parse_text(text, path, error=CamerasError), base)


def _cameras(doc: config.Document, base: Path) -> list[Camera]:
    entries = config.convert(doc, _File, error=CamerasError).cameras or []
    config.unique(doc, [(("cameras", i, "id"), entry.id) for i, entry in enumerate(entries)],
                  "duplicate id (first defined at line {line})", error=CamerasError)
    cameras: list[Camera] = []
    for index, entry in enumerate(entries):
        def fail(field: str, reason: str) -> config.ConfigFileError:
            return CamerasError.at(doc, ("cameras", index, field), reason)

        try:
            url, kind = source(entry.url, base)
        except ValueError as exc:
            raise fail("url", str(exc)) from None
        if entry.image_fps is not None and kind != "folder":
            raise fail("image_fps", "only applies to a folder of images")
        if entry.start_at is not None and kind not in ("file", "folder"):
            raise fail("start_at", "only applies to a video file or a folder of images")
        motion = entry.motion if isinstance(entry.motion, Motion) else Motion(enabled=bool(entry.motion))
        start_at = entry.start_at.timestamp() if entry.start_at else None
        cameras.append(Camera(**msgspec.structs.asdict(entry) | {"url": url, "kind": kind, "motion": motion,
                                                                 "start_at": start_at}))
    return cameras
