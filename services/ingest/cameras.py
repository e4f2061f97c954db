"""The cameras file: which cameras exist, where they are and how to read them.

The file is the operator's only interface to this service, so every mistake in it is reported
with the file, the camera, the field, the problem and the line, and nothing is guessed: unknown
keys are errors (a typo such as `jpeg_qualty` would otherwise silently fall back to a default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml

from proto.subjects import TOKEN

SourceKind = Literal["rtsp", "mjpeg", "file", "folder"]


class CamerasError(Exception):
    """A cameras file that cannot be used; `str()` is the message shown to the operator."""

    def __init__(self, path: str | Path, problem: str, *, camera: str | None = None, field: str | None = None,
                 line: int | None = None) -> None:
        self.path = str(path)
        self.camera = camera
        self.field = field
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        parts = [where]
        if camera is not None:
            parts.append(f"camera {camera!r}")
        if field is not None:
            parts.append(f"field {field!r}")
        super().__init__(": ".join(parts) + f": {problem}")


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    address: str = ""
    commune_code: str = ""


@dataclass(frozen=True, slots=True)
class Motion:
    """Frame-difference gate: skip still frames, but send one every `keepalive_s` anyway."""

    enabled: bool = False
    # Fraction of the small grey copy's pixels that must change for a frame to count as motion.
    min_changed: float = 0.003
    # Per-pixel grey-level difference (0-255) that counts as a change; above sensor noise.
    pixel_threshold: int = 25
    keepalive_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Camera:
    id: str
    name: str
    url: str
    kind: SourceKind
    fps: float
    jpeg_quality: int
    location: Location
    scene: str
    motion: Motion
    loop: bool = True  # file and folder sources start again at the end
    realtime: bool = True  # file and folder sources are paced to their own frame rate
    image_fps: float | None = None  # frame rate of a folder of images (default: fps)
    max_width: int | None = None  # downscale wider frames before JPEG encoding
    # Files and folders: the capture time of the first frame (a recording's own start), so that
    # every play of the clip stamps the same times, hence the same frame and violation ids.
    start_at: float | None = None  # Unix seconds; None: when the play starts

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)


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


# The keys a camera may have: anything else is a typo to report, not to ignore.
_CAMERA_FIELDS = {
    "id", "name", "url", "fps", "jpeg_quality", "location", "scene", "motion", "loop", "realtime",
    "image_fps", "max_width", "start_at",
}
_LOCATION_FIELDS = {"latitude", "longitude", "address", "commune_code"}
_MOTION_FIELDS = {"enabled", "min_changed", "pixel_threshold", "keepalive_s"}
MAX_FPS = 30.0


class _Lines:
    """Line numbers of every value in the document, by path, from the YAML node tree."""

    def __init__(self, node: yaml.Node | None) -> None:
        self._lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self._lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    self._lines[path + (key_node.value,)] = key_node.start_mark.line + 1
                    self._walk(value_node, path + (key_node.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, path + (index,))

    def of(self, *path: Any) -> int | None:
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get(())


def classify_url(url: str) -> SourceKind:
    """rtsp(s):// → RTSP, http(s):// → MJPEG, anything else is a local path: a folder if it is one."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if scheme in ("http", "https"):
        return "mjpeg"
    if scheme not in ("", "file"):
        raise ValueError(f"unsupported URL scheme {scheme!r} (use rtsp://, http(s):// for MJPEG, or a file/folder path)")
    path = url[len("file://"):] if scheme == "file" else url
    if not path:
        raise ValueError("empty path")
    return "folder" if path.endswith("/") or os.path.isdir(path) else "file"


def load(path: str | Path) -> list[Camera]:
    """Read and validate the whole file; raise CamerasError on the first problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CamerasError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CamerasError(path, f"cannot read: {exc}") from None
    return parse(text, path)


def parse(text: str, path: str | Path = "<cameras>") -> list[Camera]:
    """Validate a cameras document; relative file and folder paths are relative to the file's folder."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise CamerasError(path, f"not valid YAML: {problem}", line=line) from None
    lines = _Lines(node)
    base = Path(path).resolve().parent if str(path) != "<cameras>" else Path.cwd()

    if not isinstance(data, dict):
        raise CamerasError(path, "the file must be a mapping with a 'cameras' list", line=lines.of())
    unknown = set(data) - {"cameras"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise CamerasError(path, "unknown top-level key (expected only 'cameras')", field=key, line=lines.of(key))
    items = data.get("cameras")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise CamerasError(path, "must be a list of cameras", field="cameras", line=lines.of("cameras"))

    cameras: list[Camera] = []
    seen: dict[str, int | None] = {}
    for index, item in enumerate(items):
        camera = _camera(item, index, path, lines, base)
        if camera.id in seen:
            raise CamerasError(path, f"duplicate id (first defined at line {seen[camera.id]})", camera=camera.id,
                               field="id", line=lines.of("cameras", index, "id"))
        seen[camera.id] = lines.of("cameras", index, "id")
        cameras.append(camera)
    return cameras


def _camera(item: Any, index: int, path: str | Path, lines: _Lines, base: Path) -> Camera:
    at = ("cameras", index)
    label = f"#{index + 1}"
    if not isinstance(item, dict):
        raise CamerasError(path, "each camera must be a mapping", camera=label, line=lines.of(*at))
    raw_id = item.get("id")
    if isinstance(raw_id, str) and TOKEN.match(raw_id) and len(raw_id) <= 64:
        label = raw_id

    def fail(field: str, problem: str, *sub: Any) -> CamerasError:
        return CamerasError(path, problem, camera=label, field=field, line=lines.of(*at, *sub) or lines.of(*at))

    for key in item:
        if key not in _CAMERA_FIELDS:
            raise fail(str(key), f"unknown field (allowed: {', '.join(sorted(_CAMERA_FIELDS))})", key)
    for key in ("id", "name", "url", "location", "scene"):
        if key not in item or item[key] is None:
            raise fail(key, "required field is missing")

    if not isinstance(raw_id, str) or not TOKEN.match(raw_id) or len(raw_id) > 64:
        raise fail("id", f"{raw_id!r} must be lowercase letters and digits with '-' or '_' inside, at most 64 "
                         "characters (it becomes a NATS subject token)", "id")
    name = _text(item["name"], lambda p: fail("name", p, "name"))
    url = _text(item["url"], lambda p: fail("url", p, "url"))
    scene = _text(item["scene"], lambda p: fail("scene", p, "scene"))
    try:
        kind = classify_url(_local(url, base))
    except ValueError as exc:
        raise fail("url", str(exc), "url") from None
    if kind in ("file", "folder"):
        url = _local(url, base)

    fps = _number(item.get("fps", 5.0), "fps", fail, low=0.0, high=MAX_FPS, low_open=True)
    quality = item.get("jpeg_quality", 80)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise fail("jpeg_quality", f"{quality!r} must be a whole number from 1 to 100", "jpeg_quality")

    location = _location(item["location"], lambda f, p: fail(f"location.{f}" if f else "location", p,
                                                                  "location", *((f,) if f else ())))
    motion = _motion(item.get("motion"), lambda f, p: fail(f"motion.{f}" if f else "motion", p,
                                                                "motion", *((f,) if f else ())))
    flags = {}
    for key in ("loop", "realtime"):
        value = item.get(key, True)
        if not isinstance(value, bool):
            raise fail(key, f"{value!r} must be true or false", key)
        flags[key] = value
    image_fps = item.get("image_fps")
    if image_fps is not None:
        if kind != "folder":
            raise fail("image_fps", "only applies to a folder of images", "image_fps")
        image_fps = _number(image_fps, "image_fps", fail, low=0.0, high=1000.0, low_open=True)
    max_width = item.get("max_width")
    if max_width is not None and (isinstance(max_width, bool) or not isinstance(max_width, int) or max_width < 16):
        raise fail("max_width", f"{max_width!r} must be a whole number of pixels, at least 16", "max_width")
    start_at = item.get("start_at")
    if start_at is not None:
        if kind not in ("file", "folder"):
            raise fail("start_at", "only applies to a video file or a folder of images", "start_at")
        if not isinstance(start_at, datetime) or start_at.tzinfo is None:
            raise fail("start_at", f"{start_at!r} must be a time with its UTC offset, e.g. 2026-11-28T07:00:00+07:00",
                       "start_at")
        start_at = start_at.timestamp()
    return Camera(id=raw_id, name=name, url=url, kind=kind, fps=fps, jpeg_quality=quality, location=location,
                  scene=scene, motion=motion, loop=flags["loop"], realtime=flags["realtime"], image_fps=image_fps,
                  max_width=max_width, start_at=start_at)


def _local(url: str, base: Path) -> str:
    """Resolve a local path against the cameras file's folder, keeping a trailing slash."""
    if "://" in url and not url.lower().startswith("file://"):
        return url
    raw = url[len("file://"):] if url.lower().startswith("file://") else url
    if not raw:
        return url
    resolved = str((base / os.path.expanduser(raw)).resolve()) if not os.path.isabs(raw) else raw
    return resolved + "/" if raw.endswith("/") and not resolved.endswith("/") else resolved


def _text(value: Any, fail) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{value!r} must be a non-empty string")
    return value.strip()


def _number(value: Any, field: str, fail, *, low: float, high: float, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        raise fail(field, f"{value!r} must be a number {bound} and at most {high:g}", field)
    return float(value)


def _location(value: Any, fail) -> Location:
    if not isinstance(value, dict):
        raise fail(None, "must be a mapping with latitude, longitude, address, commune_code")
    for key in value:
        if key not in _LOCATION_FIELDS:
            raise fail(str(key), f"unknown field (allowed: {', '.join(sorted(_LOCATION_FIELDS))})")
    coords = {}
    for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
        if key not in value:
            raise fail(key, "required field is missing")
        number = value[key]
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not -limit <= number <= limit:
            raise fail(key, f"{number!r} must be a number from {-limit:g} to {limit:g}")
        coords[key] = float(number)
    texts = {}
    for key in ("address", "commune_code"):
        text = value.get(key, "")
        if text is None:
            text = ""
        if isinstance(text, int) and not isinstance(text, bool) and key == "commune_code":
            raise fail(key, f"{text!r} must be quoted as a string (a commune code may start with 0)")
        if not isinstance(text, str):
            raise fail(key, f"{text!r} must be a string")
        texts[key] = text
    return Location(**coords, **texts)


def _motion(value: Any, fail) -> Motion:
    if value is None:
        return Motion()
    if isinstance(value, bool):
        return Motion(enabled=value)
    if not isinstance(value, dict):
        raise fail(None, "must be true/false or a mapping with enabled, min_changed, pixel_threshold, keepalive_s")
    for key in value:
        if key not in _MOTION_FIELDS:
            raise fail(str(key), f"unknown field (allowed: {', '.join(sorted(_MOTION_FIELDS))})")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", f"{enabled!r} must be true or false")
    default = Motion()
    min_changed = value.get("min_changed", default.min_changed)
    if isinstance(min_changed, bool) or not isinstance(min_changed, (int, float)) or not 0 < min_changed <= 1:
        raise fail("min_changed", f"{min_changed!r} must be a fraction above 0 and at most 1")
    pixel = value.get("pixel_threshold", default.pixel_threshold)
    if isinstance(pixel, bool) or not isinstance(pixel, int) or not 1 <= pixel <= 255:
        raise fail("pixel_threshold", f"{pixel!r} must be a whole number from 1 to 255")
    keepalive = value.get("keepalive_s", default.keepalive_s)
    if isinstance(keepalive, bool) or not isinstance(keepalive, (int, float)) or not 0 < keepalive <= 3600:
        raise fail("keepalive_s", f"{keepalive!r} must be a number of seconds above 0 and at most 3600")
    return Motion(enabled=enabled, min_changed=float(min_changed), pixel_threshold=pixel, keepalive_s=float(keepalive))
