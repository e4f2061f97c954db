"""The parts of a scene file as msgspec Structs: what each key may hold, and the rules within a part.

Rules that span parts (references between sections, points inside the frame) are the Scene's
(scenes.py); the `incidents:` block is in incident_scene.py. Every Struct forbids unknown keys and
every rule raises `FieldError` naming the field at fault, so a mistake is reported as
`file:line: field: reason`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.subjects import TOKEN
from services.runtime.config import FieldError, Key
from services.track import geometry
from services.track.geometry import Point
from services.track.signals import LAMP_PHASE, LAYOUTS

VEHICLE_CLASSES = ("car", "motorcycle", "bus", "truck", "bicycle", "other")
SIGNAL_SOURCES = ("controller", "vision")

Id = Annotated[str, Meta(pattern=TOKEN.pattern)]  # lowercase letters, digits, '-' or '_' inside
Positive = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]
Cosine = Annotated[float, Meta(ge=-1, lt=0)]  # below 0: an angle over 90 degrees
Polygon = Annotated[tuple[Point, ...], Meta(min_length=3)]
Line = tuple[Point, Point]
Direction = tuple[float, float]  # [dx, dy]; read as given, kept as a unit vector
Names = Annotated[tuple[str, ...], Meta(min_length=1)]
VehicleClass = Literal[VEHICLE_CLASSES]  # type: ignore[valid-type]
Lamp = Literal[tuple(LAMP_PHASE)]  # type: ignore[valid-type]
Layout = Literal[LAYOUTS]  # type: ignore[valid-type]


class Part(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A part of a scene file: unknown keys are errors."""


def check_line(line: Line | None, field: str) -> None:
    if line is not None and line[0] == line[1]:
        raise FieldError(field, "the two points of a line must differ")


def unit(part: Part, field: str = "direction") -> None:
    """The part's direction as a unit vector (image coordinates)."""
    dx, dy = getattr(part, field)
    if dx == 0 and dy == 0:
        raise FieldError(field, "direction [dx, dy] must not be [0, 0]")
    msgspec.structs.force_setattr(part, field, geometry.unit(dx, dy))


def unique_ids(items: tuple[Part, ...], field: str) -> None:
    ids = [item.id for item in items]  # type: ignore[attr-defined]
    for n, id_ in enumerate(ids):
        if id_ in ids[:n]:
            raise FieldError((field, n, "id"), f"duplicate id {id_!r}")


def known_names(names: tuple[str, ...], known: Collection[str], field: tuple[Key, ...], what: str) -> None:
    """Every name refers to a known one, once."""
    for i, name in enumerate(names):
        if name not in known:
            raise FieldError(field + (i,), f"unknown {what} {name!r} ({what}s: {', '.join(sorted(known)) or 'none'})")
        if name in names[:i]:
            raise FieldError(field + (i,), f"{what} {name!r} is listed twice")


class Location(Part):
    latitude: Annotated[float, Meta(ge=-90, le=90)]
    longitude: Annotated[float, Meta(ge=-180, le=180)]
    address: str = ""
    commune_code: str = ""


class Area(Part):
    """A polygon with an id: a lane, a zone. A bow-tie makes 'inside' ambiguous, so it is refused
    rather than guessed."""

    id: Id
    polygon: Polygon

    def __post_init__(self) -> None:
        if (crossing := geometry.self_intersection(self.polygon)) is not None:
            i, j = crossing
            raise FieldError("polygon", f"polygon intersects itself (edge {i}-{i + 1} crosses edge {j}-"
                                        f"{(j + 1) % len(self.polygon)})")
        if geometry.polygon_area(self.polygon) < 1.0:
            raise FieldError("polygon", "polygon has no area")


class Lane(Area):
    direction: Direction  # unit vector of legal travel, image coordinates
    allowed: Annotated[frozenset[VehicleClass], Meta(min_length=1)]

    def __post_init__(self) -> None:
        super().__post_init__()
        unit(self)


class StopLine(Part):
    id: Id
    line: Line

    def __post_init__(self) -> None:
        check_line(self.line, "line")


class NoStoppingZone(Area):
    max_dwell_s: Positive


class SpeedTrap(Part):
    id: Id
    entry: Line
    exit: Line
    distance_m: Positive
    limit_kmh: Positive
    tolerance_kmh: NonNegative

    def __post_init__(self) -> None:
        check_line(self.entry, "entry")
        check_line(self.exit, "exit")
        if geometry.segment_intersection(self.entry, self.exit) is not None:
            raise FieldError("exit", "the entry and exit lines cross each other")


class SignalHead(Part):
    id: Id
    region: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 of the lamps (vision only)
    layout: Layout = "vertical"  # vertical: lamps top to bottom; horizontal: left to right
    lamps: Annotated[tuple[Lamp, ...], Meta(min_length=1)] = ()  # in layout order; controller: red, amber, green

    def __post_init__(self) -> None:
        known_names(self.lamps, LAMP_PHASE, ("lamps",), "lamp")


class Signal(Part):
    source: Literal[SIGNAL_SOURCES]  # type: ignore[valid-type]
    heads: Annotated[tuple[SignalHead, ...], Meta(min_length=1)]
    intersection: Id | None = None
    hold_s: NonNegative = 1.5  # vision: keep the lit lamp through LED flicker and occlusion
    min_phase_s: NonNegative = 0.3  # vision: a new lamp must be read this long before it is the phase

    def __post_init__(self) -> None:
        if self.source == "controller" and self.intersection is None:
            raise FieldError("intersection", "is required when the source is controller (phases arrive on "
                                             "traffic.signal.phase.v1.<intersection>)")
        unique_ids(self.heads, "heads")
        for n, head in enumerate(self.heads):
            if self.source == "vision" and head.region is None:
                raise FieldError(("heads", n, "region"), "is required when the source is vision (where the lamps "
                                                         "are in the image)")
            if self.source == "vision" and not head.lamps:
                raise FieldError(("heads", n, "lamps"), "is required when the source is vision: the lamps in order "
                                 "(top to bottom, or left to right), e.g. [red, amber, green], or [green_arrow] for an arrow")
            if not head.lamps:
                msgspec.structs.force_setattr(head, "lamps", ("red", "amber", "green"))
            if head.region is not None:
                x1, y1, x2, y2 = head.region
                along = (y2 - y1) if head.layout == "vertical" else (x2 - x1)
                if along < 2 * len(head.lamps):
                    raise FieldError(("heads", n, "region"), f"region is {along} px along its {head.layout} layout: "
                                                             f"too small for {len(head.lamps)} lamp(s)")


class CountLine(Part):
    """A line vehicles are counted at, both ways apart: `forward` is the declared direction (the
    way traffic should go), or without one the normal (y2 - y1, x1 - x2) of the line drawn from
    its point 1 to its point 2 (for a line drawn left to right: up the image); `backward` the
    other way."""

    id: Id
    line: Line
    direction: Direction | None = None

    def __post_init__(self) -> None:
        check_line(self.line, "line")
        if self.direction is not None:
            (x1, y1), (x2, y2) = self.line
            dx, dy = self.direction
            if (dx, dy) != (0, 0) and abs((x2 - x1) * dy - (y2 - y1) * dx) < 1e-9:
                raise FieldError("direction", "direction runs along the line: it must say which way vehicles cross it")
            unit(self)


class Movement(Part):
    """Lanes whose traffic one signal head governs. When a lane has several movements (straight
    and right from the same lane), all but one have an `exit` line: crossing it later tells which
    movement the vehicle made; a vehicle that crosses no exit made the one without."""

    id: Id
    lanes: Names
    head: str
    exit: Line | None = None

    def __post_init__(self) -> None:
        check_line(self.exit, "exit")


class RuleParams(Part):
    wrong_way_frames: Annotated[int, Meta(ge=1)] = 6  # consecutive frames moving against the lane
    wrong_way_cos: Cosine = -0.5  # cosine of the angle to the lane direction at or below which it is "against"
    wrong_lane_frames: Annotated[int, Meta(ge=1)] = 6  # consecutive frames in a lane that does not allow the class
    min_speed_px_s: NonNegative = 20.0  # slower than this the direction of travel is noise
    stopped_speed_px_s: NonNegative = 8.0  # slower than this a vehicle counts as stopped
    red_grace_s: NonNegative = 0.0  # red younger than this does not count (the amber was just missed)
