"""Scene files: what a camera sees (lanes, stop lines, zones, a speed trap, signal heads, count lines).

One YAML file per camera, `<camera_id>.yaml` in SCENES_DIR. The file is drawn by a person over
a frame of the camera, so every mistake is reported with the file, the line and the field, and
nothing is guessed: unknown keys are errors, a lane named in a movement must exist, a polygon
must not cross itself. A violation is a legal claim; a scene that silently means something else
than its author thought would make false ones.

Coordinates are pixels of a frame of `frame_size`; detections of another size (a camera whose
ingest downscales) are scaled to it.

A scene may hold only count lines (a counting camera): lanes, stop lines and the rest are
optional, and `location` is required only when the scene can produce violations. An optional
top-level `detection:` block belongs to the detect service and is not read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from proto.subjects import TOKEN
from services.track import geometry, incident_scene
from services.track.geometry import Point, Segment
from services.track.signals import LAMP_PHASE, LAYOUTS

VEHICLE_CLASSES = ("car", "motorcycle", "bus", "truck", "bicycle", "other")
SIGNAL_SOURCES = ("controller", "vision")


class SceneError(Exception):
    """A scene that cannot be used; `str()` is the message for the operator."""

    def __init__(self, path: str | Path, problem: str, *, field: str | None = None, line: int | None = None) -> None:
        self.path = str(path)
        self.field = field
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: " + (f"field {field!r}: " if field else "") + problem)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    address: str = ""
    commune_code: str = ""


@dataclass(frozen=True)
class Lane:
    id: str
    polygon: tuple[Point, ...]
    direction: tuple[float, float]  # unit vector of legal travel, image coordinates
    allowed: frozenset[str]


@dataclass(frozen=True)
class StopLine:
    id: str
    line: Segment


@dataclass(frozen=True)
class NoStoppingZone:
    id: str
    polygon: tuple[Point, ...]
    max_dwell_s: float


@dataclass(frozen=True)
class SpeedTrap:
    id: str
    entry: Segment
    exit: Segment
    distance_m: float
    limit_kmh: float
    tolerance_kmh: float


@dataclass(frozen=True)
class SignalHead:
    id: str
    region: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 of the lamps (vision only)
    layout: str = "vertical"  # vertical: lamps top to bottom; horizontal: left to right
    lamps: tuple[str, ...] = ("red", "amber", "green")  # in layout order (vision only)


@dataclass(frozen=True)
class CountLine:
    """A line vehicles are counted at, both ways apart: `forward` is the declared direction (the
    way traffic should go), or without one the normal (y2 - y1, x1 - x2) of the line drawn from
    its point 1 to its point 2 (for a line drawn left to right: up the image); `backward` the
    other way."""

    id: str
    line: Segment
    direction: tuple[float, float] | None = None


@dataclass(frozen=True)
class Movement:
    """Lanes whose traffic one signal head governs. When a lane has several movements (straight
    and right from the same lane), all but one have an `exit` line: crossing it later tells which
    movement the vehicle made; a vehicle that crosses no exit made the one without."""

    id: str
    lanes: tuple[str, ...]
    head: str
    exit: Segment | None = None


@dataclass(frozen=True)
class Signal:
    source: str
    intersection: str | None
    heads: tuple[SignalHead, ...]
    hold_s: float = 1.5  # vision: keep the lit lamp through LED flicker and occlusion
    min_phase_s: float = 0.3  # vision: a new lamp must be read this long before it is the phase


@dataclass(frozen=True)
class RuleParams:
    wrong_way_frames: int = 6  # consecutive frames moving against the lane
    wrong_way_cos: float = -0.5  # cosine of the angle to the lane direction at or below which it is "against"
    wrong_lane_frames: int = 6  # consecutive frames in a lane that does not allow the class
    min_speed_px_s: float = 20.0  # slower than this the direction of travel is noise
    stopped_speed_px_s: float = 8.0  # slower than this a vehicle counts as stopped
    red_grace_s: float = 0.0  # red younger than this does not count (the amber was just missed)


@dataclass(frozen=True)
class Scene:
    path: str
    camera: str
    name: str
    location: Location | None
    frame_size: tuple[int, int]
    lanes: tuple[Lane, ...] = ()
    stop_lines: tuple[StopLine, ...] = ()
    no_stopping: tuple[NoStoppingZone, ...] = ()
    speed_traps: tuple[SpeedTrap, ...] = ()
    signal: Signal | None = None
    movements: tuple[Movement, ...] = ()
    rules: RuleParams = field(default_factory=RuleParams)
    count_lines: tuple[CountLine, ...] = ()
    incidents: incident_scene.Incidents | None = None  # what track reports as incidents (incident_scene.py)

    def lane(self, lane_id: str) -> Lane:
        return next(lane for lane in self.lanes if lane.id == lane_id)

    def lane_at(self, point: Point) -> Lane | None:
        for lane in self.lanes:
            if geometry.point_in_polygon(point, lane.polygon):
                return lane
        return None

    def movements_of(self, lane_id: str) -> tuple[Movement, ...]:
        return tuple(movement for movement in self.movements if lane_id in movement.lanes)


# --- YAML with line numbers ----------------------------------------------------------------------
class _Node:
    """A value and the line it came from, so that checks deep in the tree can still name the line."""

    __slots__ = ("value", "line")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


def _convert(node: yaml.Node) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, _Node] = {}
        for key, value in node.value:
            out[str(yaml.safe_load(yaml.serialize(key)))] = _with_key_line(_convert(value), key.start_mark.line + 1)
        return _Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_convert(item) for item in node.value], line)
    return _Node(yaml.safe_load(yaml.serialize(node)), line)


def _with_key_line(node: _Node, line: int) -> _Node:
    node.line = min(node.line, line)
    return node


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, problem: str, field: str | None, node: _Node | None) -> SceneError:
        return SceneError(self.path, problem, field=field, line=node.line if node else None)

    def mapping(self, node: _Node, field: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            raise self.fail("must be a mapping", field, node)
        unknown = sorted(set(node.value) - set(allowed))
        if unknown:
            raise self.fail(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})",
                            field, node.value[unknown[0]])
        for key in required:
            if key not in node.value or node.value[key].value is None:
                raise self.fail("is required", _join(field, key), node)
        return node.value

    def sequence(self, node: _Node, field: str, min_len: int = 0) -> list[_Node]:
        if not isinstance(node.value, list):
            raise self.fail("must be a list", field, node)
        if len(node.value) < min_len:
            raise self.fail(f"needs at least {min_len} item(s), got {len(node.value)}", field, node)
        return node.value

    def number(self, node: _Node, field: str, *, low: float | None = None, low_open: bool = False) -> float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(f"must be a number, got {value!r}", field, node)
        if low is not None and (value <= low if low_open else value < low):
            raise self.fail(f"must be {'>' if low_open else '>='} {low}, got {value}", field, node)
        return float(value)

    def text(self, node: _Node, field: str) -> str:
        if not isinstance(node.value, str) or not node.value.strip():
            raise self.fail(f"must be a non-empty string, got {node.value!r}", field, node)
        return node.value

    def token(self, node: _Node, field: str) -> str:
        value = node.value
        if not isinstance(value, str) or not TOKEN.match(value):
            raise self.fail(f"{value!r} is not an id (lowercase letters, digits, '-' or '_' inside)", field, node)
        return value

    def point(self, node: _Node, field: str) -> Point:
        items = self.sequence(node, field)
        if len(items) != 2:
            raise self.fail(f"a point is [x, y], got {len(items)} number(s)", field, node)
        return (self.number(items[0], field), self.number(items[1], field))

    def segment(self, node: _Node, field: str) -> Segment:
        items = self.sequence(node, field)
        if len(items) != 2:
            raise self.fail(f"a line is two points [[x1, y1], [x2, y2]], got {len(items)} point(s)", field, node)
        a, b = self.point(items[0], f"{field}[0]"), self.point(items[1], f"{field}[1]")
        if a == b:
            raise self.fail("the two points of a line must differ", field, node)
        return (a, b)

    def polygon(self, node: _Node, field: str) -> tuple[Point, ...]:
        items = self.sequence(node, field, 3)
        points = tuple(self.point(item, f"{field}[{i}]") for i, item in enumerate(items))
        crossing = geometry.self_intersection(points)
        if crossing is not None:
            i, j = crossing
            raise self.fail(f"polygon intersects itself (edge {i}-{i + 1} crosses edge {j}-{(j + 1) % len(points)})",
                            field, node)
        if geometry.polygon_area(points) < 1.0:
            raise self.fail("polygon has no area", field, node)
        return points

    def unique_ids(self, items: list[_Node], field: str) -> list[str]:
        seen: list[str] = []
        for i, item in enumerate(items):
            mapping = item.value if isinstance(item.value, dict) else {}
            if "id" not in mapping:
                raise self.fail("is required", f"{field}[{i}].id", item)
            value = self.token(mapping["id"], f"{field}[{i}].id")
            if value in seen:
                raise self.fail(f"duplicate id {value!r}", f"{field}[{i}].id", mapping["id"])
            seen.append(value)
        return seen


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


# --- the scene -------------------------------------------------------------------------------------
def load(path: str | Path, *, camera: str | None = None) -> Scene:
    """Read and check one scene file; raises SceneError naming the file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SceneError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SceneError(path, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                         line=mark.line + 1 if mark else None) from None
    if root is None:
        raise SceneError(path, "file is empty")
    r = _Reader(path)
    top = r.mapping(_convert(root), "", ("camera", "name", "location", "frame_size", "lanes", "stop_lines",
                                          "no_stopping", "speed_traps", "signal", "movements", "rules",
                                          "count_lines", "detection", "incidents"),
                    ("camera", "frame_size"))
    camera_id = r.token(top["camera"], "camera")
    if camera is not None and camera_id != camera:
        raise r.fail(f"is {camera_id!r} but the file is for camera {camera!r}", "camera", top["camera"])
    name = r.text(top["name"], "name") if "name" in top else camera_id

    location = _location(r, top["location"]) if "location" in top else None
    if "detection" in top and not isinstance(top["detection"].value, dict):
        raise r.fail("must be a mapping (settings for the detect service)", "detection", top["detection"])

    size_items = r.sequence(top["frame_size"], "frame_size")
    if len(size_items) != 2:
        raise r.fail("is [width, height]", "frame_size", top["frame_size"])
    frame_size = (int(r.number(size_items[0], "frame_size", low=1)), int(r.number(size_items[1], "frame_size", low=1)))

    lanes = _lanes(r, top)
    lane_ids = {lane.id for lane in lanes}
    stop_lines = tuple(
        StopLine(id=i, line=r.segment(r.mapping(node, f"stop_lines[{n}]", ("id", "line"), ("id", "line"))["line"],
                                      f"stop_lines[{n}].line"))
        for n, (i, node) in enumerate(_items(r, top, "stop_lines"))
    )
    zones = []
    for n, (zone_id, node) in enumerate(_items(r, top, "no_stopping")):
        m = r.mapping(node, f"no_stopping[{n}]", ("id", "polygon", "max_dwell_s"), ("id", "polygon", "max_dwell_s"))
        zones.append(NoStoppingZone(zone_id, r.polygon(m["polygon"], f"no_stopping[{n}].polygon"),
                                    r.number(m["max_dwell_s"], f"no_stopping[{n}].max_dwell_s", low=0, low_open=True)))
    traps = []
    for n, (trap_id, node) in enumerate(_items(r, top, "speed_traps")):
        f = f"speed_traps[{n}]"
        keys = ("id", "entry", "exit", "distance_m", "limit_kmh", "tolerance_kmh")
        m = r.mapping(node, f, keys, keys)
        entry, exit_ = r.segment(m["entry"], f"{f}.entry"), r.segment(m["exit"], f"{f}.exit")
        if geometry.segment_intersection(entry, exit_) is not None:
            raise r.fail("the entry and exit lines cross each other", f"{f}.exit", m["exit"])
        traps.append(SpeedTrap(trap_id, entry, exit_,
                               r.number(m["distance_m"], f"{f}.distance_m", low=0, low_open=True),
                               r.number(m["limit_kmh"], f"{f}.limit_kmh", low=0, low_open=True),
                               r.number(m["tolerance_kmh"], f"{f}.tolerance_kmh", low=0)))

    signal = _signal(r, top, frame_size) if "signal" in top else None
    movements = _movements(r, top, lane_ids, {h.id for h in signal.heads} if signal else set())
    if movements and signal is None:
        raise r.fail("movements need a signal section to name their heads", "movements", top["movements"])
    if stop_lines and signal is None:
        raise r.fail("stop lines need a signal section (red_light cannot be judged without it)", "stop_lines",
                     top["stop_lines"])
    rules = _rules(r, top["rules"]) if "rules" in top else RuleParams()
    count_lines = _count_lines(r, top)
    _inside_frame(r, top, frame_size, lanes, stop_lines, zones, traps, count_lines)
    judged = [key for key in ("lanes", "stop_lines", "no_stopping", "speed_traps") if _items(r, top, key)]
    if judged and location is None:
        raise r.fail(f"is required when the scene has {', '.join(judged)} (violations name their place)",
                     "location", top[judged[0]])
    incidents = None
    if "incidents" in top:
        incidents = incident_scene.read(r, top["incidents"], tuple(lane.id for lane in lanes), frame_size)
        if location is None:
            raise r.fail("is required when the scene has incidents (incidents name their place)", "location",
                         top["incidents"])
    return Scene(str(path), camera_id, name, location, frame_size, lanes, stop_lines, tuple(zones), tuple(traps),
                 signal, movements, rules, count_lines, incidents)


def _location(r: _Reader, node: _Node) -> Location:
    loc = r.mapping(node, "location", ("latitude", "longitude", "address", "commune_code"), ("latitude", "longitude"))
    latitude = r.number(loc["latitude"], "location.latitude")
    longitude = r.number(loc["longitude"], "location.longitude")
    if not -90 <= latitude <= 90:
        raise r.fail(f"must be within -90..90, got {latitude}", "location.latitude", loc["latitude"])
    if not -180 <= longitude <= 180:
        raise r.fail(f"must be within -180..180, got {longitude}", "location.longitude", loc["longitude"])
    return Location(latitude, longitude, str(loc["address"].value or "") if "address" in loc else "",
                    str(loc["commune_code"].value or "") if "commune_code" in loc else "")


def _count_lines(r: _Reader, top: dict[str, _Node]) -> tuple[CountLine, ...]:
    lines = []
    for n, (line_id, node) in enumerate(_items(r, top, "count_lines")):
        f = f"count_lines[{n}]"
        m = r.mapping(node, f, ("id", "line", "direction"), ("id", "line"))
        segment = r.segment(m["line"], f"{f}.line")
        direction = None
        if "direction" in m and m["direction"].value is not None:
            dx, dy = r.point(m["direction"], f"{f}.direction")
            (x1, y1), (x2, y2) = segment
            if dx == 0 and dy == 0:
                raise r.fail("direction [dx, dy] must not be [0, 0]", f"{f}.direction", m["direction"])
            if abs((x2 - x1) * dy - (y2 - y1) * dx) < 1e-9:
                raise r.fail("direction runs along the line: it must say which way vehicles cross it",
                             f"{f}.direction", m["direction"])
            direction = geometry.unit(dx, dy)
        lines.append(CountLine(line_id, segment, direction))
    return tuple(lines)


def _items(r: _Reader, top: dict[str, _Node], key: str) -> list[tuple[str, _Node]]:
    if key not in top or top[key].value is None:
        return []
    items = r.sequence(top[key], key)
    return list(zip(r.unique_ids(items, key), items))


def _lanes(r: _Reader, top: dict[str, _Node]) -> tuple[Lane, ...]:
    lanes = []
    for n, (lane_id, node) in enumerate(_items(r, top, "lanes")):
        f = f"lanes[{n}]"
        m = r.mapping(node, f, ("id", "polygon", "direction", "allowed"), ("id", "polygon", "direction", "allowed"))
        polygon = r.polygon(m["polygon"], f"{f}.polygon")
        dx, dy = r.point(m["direction"], f"{f}.direction")
        if dx == 0 and dy == 0:
            raise r.fail("direction [dx, dy] must not be [0, 0]", f"{f}.direction", m["direction"])
        allowed = r.sequence(m["allowed"], f"{f}.allowed", 1)
        classes = []
        for i, item in enumerate(allowed):
            if item.value not in VEHICLE_CLASSES:
                raise r.fail(f"{item.value!r} is not a vehicle class ({', '.join(VEHICLE_CLASSES)})",
                             f"{f}.allowed[{i}]", item)
            classes.append(item.value)
        lanes.append(Lane(lane_id, polygon, geometry.unit(dx, dy), frozenset(classes)))
    return tuple(lanes)


def _signal(r: _Reader, top: dict[str, _Node], frame_size: tuple[int, int]) -> Signal:
    m = r.mapping(top["signal"], "signal", ("source", "intersection", "heads", "hold_s", "min_phase_s"),
                  ("source", "heads"))
    source = m["source"].value
    if source not in SIGNAL_SOURCES:
        raise r.fail(f"{source!r} is not one of {', '.join(SIGNAL_SOURCES)}", "signal.source", m["source"])
    intersection = r.token(m["intersection"], "signal.intersection") if "intersection" in m else None
    if source == "controller" and intersection is None:
        raise r.fail("is required when the source is controller (phases arrive on "
                     "traffic.signal.phase.v1.<intersection>)", "signal.intersection", top["signal"])
    items = r.sequence(m["heads"], "signal.heads", 1)
    heads = []
    for n, (head_id, node) in enumerate(zip(r.unique_ids(items, "signal.heads"), items)):
        f = f"signal.heads[{n}]"
        hm = r.mapping(node, f, ("id", "region", "layout", "lamps"), ("id",))
        region = None
        if "region" in hm:
            values = [r.number(v, f"{f}.region") for v in r.sequence(hm["region"], f"{f}.region")]
            if len(values) != 4:
                raise r.fail("is [x1, y1, x2, y2]", f"{f}.region", hm["region"])
            x1, y1, x2, y2 = (int(v) for v in values)
            if not (0 <= x1 < x2 <= frame_size[0] and 0 <= y1 < y2 <= frame_size[1]):
                raise r.fail(f"[{x1}, {y1}, {x2}, {y2}] is not a box inside the {frame_size[0]}x{frame_size[1]} frame",
                             f"{f}.region", hm["region"])
            region = (x1, y1, x2, y2)
        elif source == "vision":
            raise r.fail("is required when the source is vision (where the lamps are in the image)", f"{f}.region", node)
        layout = hm["layout"].value if "layout" in hm else "vertical"
        if layout not in LAYOUTS:
            raise r.fail(f"{layout!r} is not one of {', '.join(LAYOUTS)}", f"{f}.layout", hm["layout"])
        if "lamps" in hm:
            lamps = []
            for i, item in enumerate(r.sequence(hm["lamps"], f"{f}.lamps", 1)):
                if item.value not in LAMP_PHASE:
                    raise r.fail(f"{item.value!r} is not a lamp ({', '.join(LAMP_PHASE)})", f"{f}.lamps[{i}]", item)
                if item.value in lamps:
                    raise r.fail(f"lamp {item.value!r} is listed twice", f"{f}.lamps[{i}]", item)
                lamps.append(item.value)
        elif source == "vision":
            raise r.fail("is required when the source is vision: the lamps in order (top to bottom, or left to "
                         "right), e.g. [red, amber, green], or [green_arrow] for an arrow", f"{f}.lamps", node)
        else:
            lamps = ["red", "amber", "green"]
        if region is not None:
            x1, y1, x2, y2 = region
            along = (y2 - y1) if layout == "vertical" else (x2 - x1)
            if along < 2 * len(lamps):
                raise r.fail(f"region is {along} px along its {layout} layout: too small for {len(lamps)} lamp(s)",
                             f"{f}.region", hm["region"])
        heads.append(SignalHead(head_id, region, layout, tuple(lamps)))
    hold_s = r.number(m["hold_s"], "signal.hold_s", low=0) if "hold_s" in m else 1.5
    min_phase_s = r.number(m["min_phase_s"], "signal.min_phase_s", low=0) if "min_phase_s" in m else 0.3
    return Signal(source, intersection, tuple(heads), hold_s, min_phase_s)


def _movements(r: _Reader, top: dict[str, _Node], lane_ids: set[str], head_ids: set[str]) -> tuple[Movement, ...]:
    movements = []
    default_of: dict[str, str] = {}  # lane -> its movement without an exit line
    for n, (movement_id, node) in enumerate(_items(r, top, "movements")):
        f = f"movements[{n}]"
        m = r.mapping(node, f, ("id", "lanes", "head", "exit"), ("id", "lanes", "head"))
        exit_ = r.segment(m["exit"], f"{f}.exit") if "exit" in m else None
        lanes = []
        for i, item in enumerate(r.sequence(m["lanes"], f"{f}.lanes", 1)):
            if item.value not in lane_ids:
                raise r.fail(f"unknown lane {item.value!r} (lanes: {', '.join(sorted(lane_ids)) or 'none'})",
                             f"{f}.lanes[{i}]", item)
            if exit_ is None:
                if item.value in default_of:
                    raise r.fail(f"lane {item.value!r} is already in movement {default_of[item.value]!r}, which has "
                                 "no exit line either: give one of them an exit", f"{f}.lanes[{i}]", item)
                default_of[item.value] = movement_id
            lanes.append(item.value)
        head = m["head"].value
        if head not in head_ids:
            raise r.fail(f"unknown signal head {head!r} (heads: {', '.join(sorted(head_ids)) or 'none'})",
                         f"{f}.head", m["head"])
        movements.append(Movement(movement_id, tuple(lanes), head, exit_))
    return tuple(movements)


def _rules(r: _Reader, node: _Node) -> RuleParams:
    defaults = RuleParams()
    names = tuple(defaults.__dataclass_fields__)
    m = r.mapping(node, "rules", names)
    values: dict[str, Any] = {}
    for key, value in m.items():
        if key in ("wrong_way_frames", "wrong_lane_frames"):
            number = r.number(value, f"rules.{key}", low=1)
            if number != int(number):
                raise r.fail(f"must be a whole number of frames, got {number}", f"rules.{key}", value)
            values[key] = int(number)
        elif key == "wrong_way_cos":
            number = r.number(value, f"rules.{key}", low=-1)
            if number >= 0:
                raise r.fail(f"must be below 0 (an angle over 90 degrees), got {number}", f"rules.{key}", value)
            values[key] = number
        else:
            values[key] = r.number(value, f"rules.{key}", low=0)
    return RuleParams(**{**{k: getattr(defaults, k) for k in names}, **values})


def _inside_frame(r, top, frame_size, lanes, stop_lines, zones, traps, count_lines=()) -> None:
    """A point outside the frame is almost always a typo (swapped x/y, a frame of another size)."""
    width, height = frame_size
    groups = [("lanes", [lane.polygon for lane in lanes]), ("stop_lines", [s.line for s in stop_lines]),
              ("no_stopping", [z.polygon for z in zones]), ("speed_traps", [t.entry + t.exit for t in traps]),
              ("count_lines", [c.line for c in count_lines])]
    for key, shapes in groups:
        for n, points in enumerate(shapes):
            for x, y in points:
                if not (0 <= x <= width and 0 <= y <= height):
                    item = top[key].value[n]
                    raise r.fail(f"point [{x:g}, {y:g}] is outside the {width}x{height} frame", f"{key}[{n}]", item)


def load_dir(directory: str | Path) -> dict[str, Scene]:
    """Every `<camera_id>.yaml` in the folder; the first bad file stops the service."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SceneError(directory, "is not a folder of scene files")
    scenes = {}
    for path in sorted(directory.glob("*.yaml")):
        scenes[path.stem] = load(path, camera=path.stem)
    return scenes
