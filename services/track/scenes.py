"""Scene files: what a camera sees (lanes, stop lines, zones, a speed trap, signal heads, count lines).

One YAML file per camera, `<camera_id>.yaml` in SCENES_DIR. The file is drawn by a person over
a frame of the camera, so every mistake is reported with the file, the line and the field, and
nothing is guessed: unknown keys are errors, a lane named in a movement must exist, a polygon
must not cross itself. A violation is a legal claim; a scene that silently means something else
than its author thought would make false ones. The file is decoded by services/runtime/config.py
into msgspec Structs: the parts in scene_types.py, the `incidents:` block in incident_scene.py,
and here the Scene with the rules across parts.

Coordinates are pixels of a frame of `frame_size`; detections of another size (a camera whose
ingest downscales) are scaled to it.

A scene may hold only count lines (a counting camera): lanes, stop lines and the rest are
optional, and `location` is required only when the scene can produce violations. An optional
top-level `detection:` block belongs to the detect service and is not read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Annotated

import msgspec
from msgspec import Meta

from services.runtime import config
from services.runtime.config import FieldError, Key, Text
from services.track import geometry
from services.track.geometry import Point
from services.track.incident_scene import TYPES, Incidents
from services.track.scene_types import (SIGNAL_SOURCES, VEHICLE_CLASSES, CountLine, Id, Lane, Location, Movement,  # noqa: F401
                                        NoStoppingZone, Part, RuleParams, Signal, SignalHead, SpeedTrap, StopLine,
                                        known_names, unique_ids)


class SceneError(config.ConfigFileError):
    """A scene that cannot be used; `str()` is the message for the operator: `file:line: field: reason`."""


class SceneFile(Part, kw_only=True):
    camera: Id
    frame_size: tuple[Annotated[int, Meta(ge=1)], Annotated[int, Meta(ge=1)]]
    name: Text = ""  # default: the camera id
    location: Location | None = None  # required when the scene can make violations or incidents
    lanes: tuple[Lane, ...] = ()
    stop_lines: tuple[StopLine, ...] = ()
    no_stopping: tuple[NoStoppingZone, ...] = ()
    speed_traps: tuple[SpeedTrap, ...] = ()
    signal: Signal | None = None
    movements: tuple[Movement, ...] = ()
    rules: RuleParams = RuleParams()
    count_lines: tuple[CountLine, ...] = ()
    incidents: Incidents | None = None  # what track reports as incidents (incident_scene.py)
    detection: dict[str, Any] | None = None  # the detect service's settings (services/detect/regions.py)

    def __post_init__(self) -> None:
        if not self.name:
            msgspec.structs.force_setattr(self, "name", self.camera)
        for key in ("lanes", "stop_lines", "no_stopping", "speed_traps", "count_lines", "movements"):
            unique_ids(getattr(self, key), key)
        self._inside_frame()
        self._signal_and_movements()
        if self.incidents is not None:
            self._incidents(self.incidents)

    def _inside_frame(self) -> None:
        """A point outside the frame is almost always a typo (swapped x/y, a frame of another size)."""
        width, height = self.frame_size
        incidents = self.incidents or Incidents()
        zones = incidents.pedestrian_on_carriageway.zones if incidents.pedestrian_on_carriageway else ()
        segments = incidents.wrong_way_driving.segments if incidents.wrong_way_driving else ()
        groups: list[tuple[tuple[Key, ...], list[tuple[Point, ...]]]] = [
            (("lanes",), [lane.polygon for lane in self.lanes]), (("stop_lines",), [s.line for s in self.stop_lines]),
            (("no_stopping",), [z.polygon for z in self.no_stopping]),
            (("speed_traps",), [t.entry + t.exit for t in self.speed_traps]),
            (("count_lines",), [c.line for c in self.count_lines]),
            (("incidents", "pedestrian_on_carriageway", "zones"), [z.polygon for z in zones]),
            (("incidents", "wrong_way_driving", "segments"), [s.polygon for s in segments])]
        for field, shapes in groups:
            for n, points in enumerate(shapes):
                for x, y in points:
                    if not (0 <= x <= width and 0 <= y <= height):
                        at = field + (n,) + (("polygon",) if field[0] == "incidents" else ())
                        raise FieldError(at, f"point [{x:g}, {y:g}] is outside the {width}x{height} frame")
        for n, head in enumerate(self.signal.heads if self.signal else ()):
            if head.region is not None:
                x1, y1, x2, y2 = head.region
                if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                    raise FieldError(("signal", "heads", n, "region"), f"[{x1}, {y1}, {x2}, {y2}] is not a box inside "
                                                                       f"the {width}x{height} frame")

    def _signal_and_movements(self) -> None:
        lane_ids = {lane.id for lane in self.lanes}
        head_ids = {head.id for head in self.signal.heads} if self.signal else set()
        default_of: dict[str, str] = {}  # lane -> its movement without an exit line
        for n, movement in enumerate(self.movements):
            known_names(movement.lanes, lane_ids, ("movements", n, "lanes"), "lane")
            for i, lane in enumerate(movement.lanes if movement.exit is None else ()):
                if lane in default_of:
                    raise FieldError(("movements", n, "lanes", i), f"lane {lane!r} is already in movement "
                                     f"{default_of[lane]!r}, which has no exit line either: give one of them an exit")
                default_of[lane] = movement.id
            if movement.head not in head_ids:
                raise FieldError(("movements", n, "head"), f"unknown signal head {movement.head!r} "
                                                           f"(heads: {', '.join(sorted(head_ids)) or 'none'})")
        if self.movements and self.signal is None:
            raise FieldError("movements", "movements need a signal section to name their heads")
        if self.stop_lines and self.signal is None:
            raise FieldError("stop_lines", "stop lines need a signal section (red_light cannot be judged without it)")

    def _incidents(self, incidents: Incidents) -> None:
        if not any(getattr(incidents, key) is not None for key in TYPES):
            raise FieldError("incidents", f"names no incident type ({', '.join(TYPES)})")
        lane_ids = tuple(lane.id for lane in self.lanes)
        for key in ("stopped_vehicle", "congestion"):
            if (part := getattr(incidents, key)) is None:
                continue
            if not part.lanes and not lane_ids:
                raise FieldError(("incidents", key), "the scene has no lanes to watch")
            known_names(part.lanes, lane_ids, ("incidents", key, "lanes"), "lane")
            if not part.lanes:
                msgspec.structs.force_setattr(part, "lanes", lane_ids)


class Scene(SceneFile, kw_only=True):
    """A checked scene file and where it was read from."""

    path: str = ""

    def lane(self, lane_id: str) -> Lane:
        return next(lane for lane in self.lanes if lane.id == lane_id)

    def lane_at(self, point: Point) -> Lane | None:
        return next((lane for lane in self.lanes if geometry.point_in_polygon(point, lane.polygon)), None)

    def movements_of(self, lane_id: str) -> tuple[Movement, ...]:
        return tuple(movement for movement in self.movements if lane_id in movement.lanes)


def load(path: str | Path, *, camera: str | None = None) -> Scene:
    """Read and check one scene file; raises SceneError naming the file, line and field."""
    parsed, doc = config.load(path, SceneFile, error=SceneError)
    if camera is not None and parsed.camera != camera:
        raise SceneError.at(doc, ("camera",), f"is {parsed.camera!r} but the file is for camera {camera!r}")
    judged = [key for key in ("lanes", "stop_lines", "no_stopping", "speed_traps", "incidents") if getattr(parsed, key)]
    if judged and parsed.location is None:  # named at the first section that needs it
        raise SceneError(path, f"is required when the scene has {', '.join(judged)} (violations and incidents name "
                               "their place)", field="location", line=doc.line((judged[0],)))
    return Scene(**msgspec.structs.asdict(parsed), path=str(path))


def load_dir(directory: str | Path) -> dict[str, Scene]:
    """Every `<camera_id>.yaml` in the folder; the first bad file stops the service."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SceneError(directory, "is not a folder of scene files")
    return {path.stem: load(path, camera=path.stem) for path in sorted(directory.glob("*.yaml"))}
