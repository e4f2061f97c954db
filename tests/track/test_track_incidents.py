"""Incidents on scripted tracks: the real tracker and incident detector (CameraTracker), fed
scripted detections frame by frame as the track service feeds it, with the signal phases a
controller would send.

The development clips show no pedestrian on the carriageway, no vehicle against the traffic and
no congestion (eval/truth/*.incidents.json), and their only standing vehicles wait at a red
light; so every type is exercised here on scripted tracks, the red-light queue included, and
again on the clips' real detections in test_track_incidents_clips.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from proto import codec
from proto.v1.common import Box
from proto.v1.detection import DetectedObject, DetectionMade, FrameRef
from proto.v1.incident import IncidentCleared, IncidentDetected, IncidentUpdated
from services.replay.cli import Table
from services.replay.run import Replay
from services.track import scenes
from services.track.camera import CameraTracker
from services.track.incidents import IncidentDraft

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
CLASSES = frozenset({"car", "motorcycle", "bus", "truck", "bicycle", "person"})
FPS = 5.0

SCENE = """
camera: inc-cam
name: "Đường thử"
location: {latitude: 21.0285, longitude: 105.8542, address: "Hà Nội"}
frame_size: [1000, 1000]
lanes:
  - id: main
    polygon: [[0, 1000], [500, 1000], [500, 0], [0, 0]]
    direction: [0, -1]
    allowed: [car, motorcycle, bus, truck, bicycle]
  - id: side
    polygon: [[500, 1000], [1000, 1000], [1000, 0], [500, 0]]
    direction: [0, -1]
    allowed: [car, motorcycle, bus, truck, bicycle]
stop_lines:
  - id: stop
    line: [[0, 300], [1000, 300]]
signal:
  source: controller
  intersection: inc-junction
  heads:
    - id: main
movements:
  - id: straight
    lanes: [main, side]
    head: main
incidents:
  linger_s: 2
  stopped_vehicle:
    after_s: 10
    clear_after_s: 1
  pedestrian_on_carriageway:
    after_s: 2
    zones:
      - id: road
        polygon: [[0, 320], [1000, 320], [1000, 1000], [0, 1000]]
  wrong_way_driving:
    segments:
      - id: road
        polygon: [[0, 0], [1000, 0], [1000, 1000], [0, 1000]]
        direction: [0, -1]
    min_distance_heights: 3
  congestion:
    lanes: [side]
    window_s: 4
    hold_s: 2
    after_s: 6
    clear_after_s: 3
    hysteresis: 0.25
    report_level: heavy
    levels:
      moderate: {occupancy: 0.04, queue_vehicles: 99, max_speed: 200}
      heavy: {occupancy: 0.08, queue_vehicles: 99, max_speed: 60}
      jammed: {occupancy: 0.14, queue_vehicles: 99, max_speed: 20}
"""

CAR = (80.0, 60.0)  # width, height of a scripted car's box
PERSON = (24.0, 70.0)


def scene(tmp_path, text: str = SCENE) -> scenes.Scene:
    path = tmp_path / "inc-cam.yaml"
    path.write_text(text, encoding="utf-8")
    return scenes.load(path)


def box(x: float, y: float, size=CAR) -> tuple[float, float, float, float]:
    """A box whose bottom centre (ground point) is (x, y)."""
    w, h = size
    return (x - w / 2, y - h, x + w / 2, y)


class Road:
    """Feeds scripted frames to a CameraTracker and keeps every incident event it emits."""

    def __init__(self, the_scene: scenes.Scene) -> None:
        self.engine = CameraTracker(the_scene, classes=CLASSES)
        self.frame = 0
        self.events: list[IncidentDraft] = []

    @property
    def t(self) -> float:
        return self.frame / FPS

    def light(self, phase: str) -> None:
        self.engine.observe_signal("main", T0.timestamp() + self.t - 0.01, phase)

    def step(self, objects: list[tuple[str, tuple]], discontinuity: str | None = None) -> list[IncidentDraft]:
        at = T0 + timedelta(seconds=self.t)
        event = DetectionMade(
            id=f"d-{self.frame}", camera_id="inc-cam", occurred_at=at,
            frame=FrameRef(stream_seq=1000 + self.frame, frame_seq=self.frame, captured_at=at, width=1000, height=1000,
                           discontinuity=discontinuity),  # type: ignore[arg-type]
            objects=tuple(DetectedObject(class_name=name, score=0.9, box=Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]))
                          for name, b in objects))
        step = self.engine.process(event)
        self.frame += 1
        self.events += step.incidents
        return step.incidents

    def run(self, seconds: float, objects) -> None:
        """`objects(t)` -> the frame's [(class, box)] for `seconds` of frames."""
        for _ in range(int(round(seconds * FPS))):
            self.step(objects(self.t))

    def finish(self) -> None:
        self.events += self.engine.finish_incidents()

    def of(self, action: str, incident_type: str | None = None) -> list:
        return [d.event for d in self.events if d.action == action and (incident_type is None or d.event.type == incident_type)]


def assert_valid(events: list[IncidentDraft]) -> None:
    """Each event survives the wire: encoded and decoded into its Struct (constraints checked)."""
    kinds = {"detected": IncidentDetected, "updated": IncidentUpdated, "cleared": IncidentCleared}
    for draft in events:
        assert codec.decode(codec.encode(draft.event), kinds[draft.action]) == draft.event


# --- stopped vehicle ---------------------------------------------------------------------------------
def test_a_car_standing_in_a_live_lane_is_one_incident_detected_then_cleared_when_it_drives_off(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(30, lambda t: [("car", box(250, 800))])  # broken down, mid-lane, light green
    detected = road.of("detected")
    assert [e.type for e in detected] == ["stopped_vehicle"], "one incident, not one per frame"
    event = detected[0]
    assert event.lane == "main" and event.vehicle_class == "car" and event.track_ids == (1,)
    assert event.duration_s >= 10 and (event.detected_at - event.occurred_at).total_seconds() == pytest.approx(event.duration_s)
    assert road.of("cleared") == []
    road.run(3, lambda t: [("car", box(250, 800 - 150 * (t - 30)))])  # drives off up the lane
    cleared = road.of("cleared")
    assert len(cleared) == 1 and cleared[0].incident_id == event.incident_id and cleared[0].reason == "resolved"
    assert len(road.of("detected")) == 1
    assert_valid(road.events)


def test_the_same_detections_give_the_same_incident_ids(tmp_path):
    ids = []
    for _ in range(2):
        road = Road(scene(tmp_path))
        road.light("green")
        road.run(15, lambda t: [("car", box(250, 800))])
        road.finish()
        ids.append([(d.action, d.event.id, d.event.incident_id) for d in road.events])
    assert ids[0] == ids[1] and len(ids[0]) == 2
    assert ids[0][1][0] == "cleared" and road.of("cleared")[0].reason == "stream_break"  # the stream ended


def test_a_queue_at_a_red_light_is_not_a_stopped_vehicle(tmp_path):
    """Three cars waiting at the red stop line for a minute: the first at the line, the others
    each within a car length behind the one ahead. Nothing is reported."""
    road = Road(scene(tmp_path))
    road.light("red")
    queue = lambda t: [("car", box(250, 360)), ("car", box(250, 450)), ("car", box(250, 540))]  # noqa: E731
    road.run(60, queue)
    assert road.events == []


def test_the_same_queue_at_a_green_light_is_its_head_standing(tmp_path):
    """The same three cars standing while the light is green: the head is a stopped vehicle,
    the two behind it are queued behind it and are not (this is what the red light changes)."""
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(20, lambda t: [("car", box(250, 360)), ("car", box(250, 450)), ("car", box(250, 540))])
    detected = road.of("detected", "stopped_vehicle")
    assert len(detected) == 1
    head = road.engine.incidents.state.incidents[0]
    assert head.detected[6] == pytest.approx(360, abs=5)  # the car at the line, not the ones behind


def test_a_red_light_does_not_excuse_a_car_standing_far_from_the_line_with_nothing_ahead(tmp_path):
    road = Road(scene(tmp_path))
    road.light("red")
    road.run(15, lambda t: [("car", box(250, 850))])
    assert [e.type for e in road.of("detected")] == ["stopped_vehicle"]


def test_the_queue_behind_a_broken_down_car_is_not_reported_the_car_is(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(20, lambda t: [("car", box(250, 700)), ("car", box(250, 790)), ("car", box(250, 880))])
    detected = road.of("detected", "stopped_vehicle")
    assert len(detected) == 1
    assert road.engine.incidents.state.incidents[0].detected[6] == pytest.approx(700, abs=5)


def test_a_light_turning_green_starts_the_clock_of_a_car_that_does_not_move_off(tmp_path):
    road = Road(scene(tmp_path))
    road.light("red")
    road.run(30, lambda t: [("car", box(250, 360))])
    assert road.events == []
    road.light("green")
    road.run(8, lambda t: [("car", box(250, 360))])
    assert road.events == []  # green for 8 s: not yet 10
    road.run(4, lambda t: [("car", box(250, 360))])
    detected = road.of("detected")
    assert len(detected) == 1 and 9.5 <= detected[0].duration_s <= 11


def test_a_stream_break_clears_the_incident_and_nothing_spans_it(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(12, lambda t: [("car", box(250, 800))])
    first = road.of("detected")
    assert len(first) == 1
    road.step([("car", box(250, 800))], discontinuity="reconnect")
    cleared = road.of("cleared")
    assert len(cleared) == 1 and cleared[0].reason == "stream_break" and cleared[0].incident_id == first[0].incident_id
    road.run(4, lambda t: [("car", box(250, 800))])
    assert len(road.of("detected")) == 1  # the clock started again at the break: 4 s is not 10
    road.run(10, lambda t: [("car", box(250, 800))])
    second = road.of("detected")
    assert len(second) == 2 and second[1].incident_id != first[0].incident_id
    assert second[1].occurred_at >= cleared[0].occurred_at


def test_a_track_lost_and_found_again_is_the_same_incident_lost_for_good_is_cleared(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(12, lambda t: [("car", box(250, 800))])
    road.run(1.8, lambda t: [])  # hidden by a passing bus: the tracker gives up after 1.5 s
    road.run(5, lambda t: [("car", box(250, 800))])  # seen again within linger_s, new track id
    assert len(road.of("detected")) == 1 and road.of("cleared") == []
    assert road.engine.incidents.state.incidents[0].track_ids[0] != road.engine.incidents.state.incidents[0].track_ids[-1]
    road.run(5, lambda t: [])  # gone
    cleared = road.of("cleared")
    assert len(cleared) == 1 and cleared[0].reason == "track_lost"


def test_a_box_too_small_to_be_a_vehicle_here_is_not_judged(tmp_path):
    """A detector artefact (a car's mirror boxed as `car`, 17 px tall, as the fine-tuned detector
    does on the Sai Gon clip) standing in a lane: not a stopped vehicle once the scene says how
    small a vehicle can be there; without `min_height_px` it would be."""
    mirror = (18.0, 17.0)
    for text, expected in ((SCENE, ["stopped_vehicle"]),
                           (SCENE.replace("    clear_after_s: 1\n", "    clear_after_s: 1\n    min_height_px: 30\n", 1), [])):
        road = Road(scene(tmp_path, text))
        road.light("green")
        road.run(15, lambda t: [("car", box(250, 800, mirror))])
        assert [e.type for e in road.of("detected")] == expected


# --- pedestrians -------------------------------------------------------------------------------------
def test_a_person_walking_across_the_carriageway_is_one_incident(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(8, lambda t: [("person", box(100 + 80 * t, 700, PERSON))])  # 80 px/s across the lanes
    detected = road.of("detected", "pedestrian_on_carriageway")
    assert len(detected) == 1 and detected[0].zone == "road" and detected[0].vehicle_class is None
    road.run(4, lambda t: [("person", box(740, 700 - 200 * (t - 8), PERSON))])  # leaves the zone (up past y=320)
    assert [c.reason for c in road.of("cleared")] == ["resolved"]
    assert_valid(road.events)


def test_a_rider_boxed_without_the_bike_waiting_at_the_red_line_is_not_a_pedestrian(tmp_path):
    road = Road(scene(tmp_path))
    road.light("red")
    road.run(20, lambda t: [("person", box(250, 340, PERSON))])
    assert road.events == []


def test_a_person_moving_along_the_lane_at_a_riders_pace_is_a_rider_not_a_pedestrian(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(6, lambda t: [("person", box(250, 950 - 90 * t, PERSON))])
    assert road.of("detected", "pedestrian_on_carriageway") == []


# --- wrong way ---------------------------------------------------------------------------------------
def test_a_car_driving_down_the_road_against_its_direction_is_one_incident(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(5, lambda t: [("car", box(250, 200 + 120 * t))])  # down the image; the road goes up
    detected = road.of("detected", "wrong_way_driving")
    assert len(detected) == 1 and detected[0].zone == "road" and detected[0].severity == "critical"
    assert float(detected[0].parameters["covered_px"]) >= 3 * CAR[1]
    road.run(4, lambda t: [])
    assert [c.reason for c in road.of("cleared", "wrong_way_driving")] == ["track_lost"]


def test_traffic_going_its_way_and_a_short_reverse_are_not_wrong_way(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(6, lambda t: [("car", box(250, 950 - 120 * t))])  # with the traffic
    road.run(1, lambda t: [("car", box(250, 230 + 100 * (t - 6)))])  # backs up 100 px (< 3 heights)
    assert road.of("detected", "wrong_way_driving") == []


# --- congestion --------------------------------------------------------------------------------------
def cars_in_side_lane(n: int, t: float, speed: float) -> list[tuple[str, tuple]]:
    """n cars in two columns of the side lane, crawling up at `speed` px/s (rows 110 px apart)."""
    out = []
    for i in range(n):
        x = 640 if i % 2 == 0 else 860
        y = 980 - 110 * (i // 2) - (speed * t) % 110
        out.append(("car", box(x, y)))
    return out


def test_congestion_is_detected_updated_on_a_level_change_and_cleared(tmp_path):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(15, lambda t: cars_in_side_lane(8, t, 15))  # dense and slow: heavy (from ~6 s), reported 6 s later
    detected = road.of("detected", "congestion")
    assert len(detected) == 1
    event = detected[0]
    assert event.lane == "side" and event.traffic is not None and event.traffic.level == "heavy"
    assert event.traffic.occupancy >= 0.08 and event.traffic.vehicles >= 7 and event.traffic.speed_unit == "px/s"
    assert event.traffic.mean_speed is not None and event.traffic.mean_speed < 60
    road.run(12, lambda t: cars_in_side_lane(14, t, 5))  # denser, nearly still: jammed
    updated = road.of("updated", "congestion")
    assert [u.change for u in updated] == ["level heavy -> jammed"] and updated[0].traffic.level == "jammed"
    assert updated[0].severity == "critical" and updated[0].incident_id == event.incident_id
    road.run(12, lambda t: cars_in_side_lane(2, t, 150))  # flowing again
    cleared = road.of("cleared", "congestion")
    assert len(cleared) == 1 and cleared[0].reason == "resolved" and cleared[0].incident_id == event.incident_id
    assert len(road.of("detected", "congestion")) == 1
    assert_valid(road.events)


def test_a_congestion_level_does_not_flap_with_measures_around_a_threshold(tmp_path):
    """Density swinging every 6 s (longer than the 4-s window) between above the heavy threshold
    and below it but within the hysteresis: once heavy, the lane stays heavy; no update flaps."""
    road = Road(scene(tmp_path))
    road.light("green")
    levels = []
    for second in range(48):
        n = 10 if (second // 6) % 2 == 0 else 6
        road.run(1, lambda t, n=n: cars_in_side_lane(n, 0, 0))
        levels.append(road.engine.incidents.state.lanes["side"].level)
    first_heavy = levels.index("heavy")
    assert set(levels[first_heavy:]) == {"heavy"}, levels
    assert road.of("updated") == [] and len(road.of("detected", "congestion")) == 1


def test_a_queue_at_a_red_light_is_not_congestion(tmp_path):
    road = Road(scene(tmp_path))
    road.light("red")
    road.run(30, lambda t: cars_in_side_lane(14, 0, 0))
    assert road.of("detected", "congestion") == []


# --- the scene's incidents block ---------------------------------------------------------------------
@pytest.mark.parametrize("old, new, field, problem, line", [
    ("    after_s: 10\n    clear_after_s: 1", "    after_s: -1", "incidents.stopped_vehicle.after_s", "expected float > 0.0", "after_s: -1"),
    ("    after_s: 10\n    clear_after_s: 1", "    after_s: 10\n    lanse: [main]", "incidents.stopped_vehicle.lanse",
     "unknown field", "lanse"),
    ("  congestion:\n    lanes: [side]", "  congestion:\n    lanes: [bus]", "incidents.congestion.lanes[0]", "unknown lane 'bus'",
     "lanes: [bus]"),
    ("    report_level: heavy", "    report_level: gridlock", "incidents.congestion.report_level", "expected one of heavy, jammed, moderate, got 'gridlock'",
     "gridlock"),
    ("      jammed: {occupancy: 0.14,", "      jammed: {occupancy: 0.01,", "incidents.congestion.levels.jammed",
     "at least as congested as heavy", "jammed:"),
    ("        direction: [0, -1]\n    min_distance", "        direction: [0, 0]\n    min_distance",
     "incidents.wrong_way_driving.segments[0].direction", "must not be [0, 0]", "[0, 0]"),
    ("        polygon: [[0, 320], [1000, 320]", "        polygon: [[0, 320], [1300, 320]",
     "incidents.pedestrian_on_carriageway.zones[0].polygon", "outside the 1000x1000 frame", "1300"),
    ("    lanes: [side]\n    window_s", "    lanes: [side, side]\n    window_s", "incidents.congestion.lanes[1]",
     "lane 'side' is listed twice", "[side, side]"),
    ("      heavy: {occupancy: 0.08, queue_vehicles: 99, max_speed: 60}\n", "", "incidents.congestion.report_level",
     "'heavy' is not one of the levels given (moderate, jammed)", "report_level: heavy"),
    ("      jammed: {occupancy: 0.14,", "      gridlock: {occupancy: 0.14,", "incidents.congestion.levels.gridlock",
     "key: invalid enum value 'gridlock'", "gridlock:"),
    ("        polygon: [[0, 320], [1000, 320], [1000, 1000], [0, 1000]]\n",
     "        polygon: [[0, 320], [1000, 320], [1000, 1000], [0, 1000]]\n      - id: road\n        polygon: [[0, 0], [9, 0], [9, 9]]\n",
     "incidents.pedestrian_on_carriageway.zones[1].id", "duplicate id 'road'", "- id: road"),
])
def test_a_bad_incidents_block_names_the_file_line_and_field(tmp_path, old, new, field, problem, line):
    assert old in SCENE
    text = SCENE.replace(old, new)
    with pytest.raises(scenes.SceneError) as info:
        scene(tmp_path, text)
    error = info.value
    assert error.field == field and problem in error.reason and error.line is not None
    assert str(error).startswith(f"{tmp_path / 'inc-cam.yaml'}:{error.line}: {field}: ")
    assert line in text.splitlines()[error.line - 1]  # the line the mistake is on


# --- roadwatch replay --------------------------------------------------------------------------------
def test_replay_reports_each_incident_event_with_its_evidence_frames(tmp_path, capsys):
    road = Road(scene(tmp_path))
    road.light("green")
    road.run(12, lambda t: [("car", box(250, 800))])
    road.run(3, lambda t: [("car", box(250, 800 - 150 * (t - 12)))])
    replay = Replay(road.engine.scene, None, road.engine, fps=FPS, epoch=T0)  # type: ignore[arg-type]
    rows = list(replay._incidents(road.events, road.frame - 1))
    assert [(r["action"], r["type"]) for r in rows] == [("detected", "stopped_vehicle"), ("cleared", "stopped_vehicle")]
    detected, cleared = rows
    assert detected["lane"] == "main" and detected["tracks"] == [1] and detected["class"] == "car"
    assert detected["started_frame"] < detected["frame"] and detected["t"] - detected["started_t"] >= 10
    assert [e["role"] for e in detected["evidence"]] == ["start", "at"] and detected["box"] == detected["evidence"][1]["box"]
    assert cleared["reason"] == "resolved" and cleared["incident_id"] == detected["incident_id"]
    assert replay._emitted["incident"] == 1  # the summary's count
    table = Table("clip.mp4", "inc-cam")
    for row in rows:
        table.add(row)
    table.summary = {"frames_processed": 1, "frames_read": 1, "fps": FPS, "detections": 1, "tracks": 1,
                     "cpu_ms_per_frame": 0, "detect_cpu_ms_per_frame": 0, "track_cpu_ms_per_frame": 0, "wall_s": 0}
    table.close()
    out = capsys.readouterr().out
    assert "stopped_vehicle detected  lane main  tracks 1 (car)" in out and "stopped_vehicle cleared (resolved)" in out


# --- plain state ------------------------------------------------------------------------------------
def test_the_detector_state_survives_a_round_trip_through_json(tmp_path):
    """The incident detector's state is plain data: encoded to JSON mid-incident and decoded back
    (as a checkpoint would), the run goes on to the same events as one never interrupted."""
    import msgspec

    from services.track.incidents import IncidentState

    def drive(checkpoint: bool) -> list[tuple[str, str]]:
        road = Road(scene(tmp_path))
        road.light("green")
        road.run(12, lambda t: [("car", box(250, 800))] + cars_in_side_lane(8, t, 15))
        if checkpoint:
            state = road.engine.incidents.state
            assert state.incidents and state.lanes["side"].samples
            road.engine.incidents.state = msgspec.json.decode(msgspec.json.encode(state), type=IncidentState)
        road.run(10, lambda t: [("car", box(250, 800 - 150 * max(0.0, t - 14)))] + cars_in_side_lane(8, t, 15))
        road.finish()
        return [(d.action, d.event.id) for d in road.events]

    uninterrupted = drive(False)
    assert {a for a, _ in uninterrupted} == {"detected", "cleared"} and len(uninterrupted) >= 3
    assert drive(True) == uninterrupted
