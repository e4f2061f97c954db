"""`make eval-video`'s scoring (pure) and one small run of it on a real clip and truth."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # eval/ is a directory of scripts, not an installed package

from eval import eval_video, metrics  # noqa: E402


TRUTH = Path(__file__).parents[2] / "eval" / "truth"


def v(box, difficult=False, riders=0):
    return {"box": box, "class": "motorcycle", "difficult": difficult, "riders": riders}


def test_vehicles_match_one_to_one_and_ignore_regions_and_difficult_ones_are_apart() -> None:
    truth = [v([0, 0, 10, 10], riders=2), v([20, 0, 30, 10]), v([100, 100, 104, 104], difficult=True)]
    detections = [[0, 0, 10, 10], [1, 0, 11, 10], [100, 100, 104, 104], [200, 200, 210, 210], [50, 50, 60, 60]]
    score = metrics.score_frame(truth, [[195, 195, 215, 215]], detections, 0.5)
    # Two boxes on the first vehicle: one hit, one false; the second vehicle missed; the difficult
    # one found (and not a false detection); the box in the ignore region neither right nor wrong.
    assert (score.truth, score.found, score.difficult, score.difficult_found) == (2, 1, 1, 1)
    assert (score.detections, score.correct) == (4, 2)
    assert (score.riders, score.riders_found) == (2, 2)
    assert score.recall == 0.5 and score.precision == 0.5
    # IoU 1/3: a match at 0.3, not at 0.5.
    assert metrics.score_frame([v([0, 0, 10, 10])], [], [[5, 0, 15, 10]], 0.3).found == 1
    assert metrics.score_frame([v([0, 0, 10, 10])], [], [[5, 0, 15, 10]], 0.5).found == 0


def test_events_match_within_half_a_second_and_60_px_one_to_one() -> None:
    truth = [{"line": "a", "t": 1.0, "x": 100}, {"line": "a", "t": 1.1, "x": 400}, {"line": "a", "t": 5.0, "x": 100}]
    found = [
        {"line": "a", "t": 1.05, "x": 395},  # the second one (x tells the simultaneous ones apart)
        {"line": "a", "t": 1.3, "x": 130},  # the first one
        {"line": "a", "t": 1.2, "x": 110},  # the first one again: a duplicate
        {"line": "b", "t": 5.0, "x": 100},  # another line: false
        {"line": "a", "t": 5.6, "x": 100},  # too late: false
    ]
    score = metrics.score_events(truth, found, "line")
    assert (score.found, score.missed, score.false, score.duplicate) == (2, 1, 2, 1)
    assert {(t["x"], f["x"]) for t, f in score.pairs} == {(100, 110), (400, 395)}  # the nearest pair is kept


def test_id_switches_and_fragments_from_a_truth_track() -> None:
    track = [{"frame": 0, "box": [0, 0, 10, 10]}, {"frame": 8, "box": [80, 0, 90, 10]}]
    frames = {0: [(1, (0, 0, 10, 10))], 4: [(2, (40, 0, 50, 10))], 8: [(1, (80, 0, 90, 10)), (3, (0, 50, 10, 60))],
              12: [(1, (120, 0, 130, 10))]}  # frame 12 is past the truth track's end
    ids = metrics.identity([track], frames)
    assert (ids.vehicles, ids.fragments, ids.switches) == (1, 2, 2)  # 1 -> 2 -> 1
    assert metrics.interpolate_box(track, 4) == [40, 0, 50, 10]


def test_incidents_match_by_type_time_and_place_and_a_false_one_on_a_red_queue_is_named() -> None:
    truth = {"types_checked": ["stopped_vehicle", "congestion"],
             "incidents": [{"type": "stopped_vehicle", "from_frame": 100, "to_frame": 300, "box": [0, 0, 100, 100]}],
             "not_incidents": [{"what": "red_light_queue", "lane": "left", "from_frame": 0, "to_frame": 50,
                                "vehicles": [{"box": [500, 500, 600, 600]}]}]}
    found = [
        {"type": "stopped_vehicle", "frame": 150, "started_frame": 120, "box": [5, 5, 100, 100]},  # the one
        {"type": "stopped_vehicle", "frame": 200, "started_frame": 180, "box": [0, 0, 95, 95]},  # reported twice
        {"type": "stopped_vehicle", "frame": 40, "started_frame": 10, "box": [505, 500, 600, 600]},  # red queue
        {"type": "stopped_vehicle", "frame": 400, "started_frame": 350, "box": [0, 0, 100, 100]},  # after it ended
        {"type": "wrong_way_driving", "frame": 150, "started_frame": 140, "box": [0, 0, 100, 100]},  # not checked
        {"type": "stopped_vehicle", "frame": 30, "started_frame": 20, "box": [598, 520, 612, 534]},  # its mirror
    ]
    score = metrics.score_incidents(truth, found)
    assert (score.truth, score.found, score.duplicate) == (1, 1, 1)
    assert [e["frame"] for e in score.false] == [40, 400, 30]
    assert [e["frame"] for e in score.at_red_queue] == [40, 30]
    assert metrics.score_incidents(truth, []).missed == truth["incidents"]


def test_eval_video_on_one_clip_writes_the_table(shared_dir: Path, tmp_path: Path, capsys) -> None:
    """Small: one clip, 2 fps, one variant; the truth a labeller would write for two frames."""
    truth_dir = tmp_path / "truth"
    truth_dir.mkdir()
    partial = json.loads((shared_dir / "data" / "video" / "dev_vehicle_truth_partial.json").read_text())
    frames = [f for f in partial["frames"] if f["clip"] == "vn_haiphong_intersection.mp4"][:2]
    (truth_dir / "vn_haiphong_intersection.json").write_text(json.dumps({
        "clip": "vn_haiphong_intersection.mp4", "scene": "deploy/local/scenes/demo-haiphong.yaml",
        "frames": [{"frame": f["frame"], "vehicles": [v(b["box"]) for b in f["boxed"]], "ignore": []} for f in frames],
        "crossings": [], "violations": [],
    }))
    incidents = TRUTH / "vn_haiphong_intersection.incidents.json"
    (truth_dir / incidents.name).write_text(incidents.read_text(encoding="utf-8"), encoding="utf-8")
    doc = tmp_path / "ACCURACY.md"
    doc.write_text(f"# Accuracy\n\nintro\n\n{eval_video.BEGIN}\nold\n{eval_video.END}\n\nafter\n")
    assert eval_video.main(["--shared", str(shared_dir), "--truth-dir", str(truth_dir), "--fps", "2",
                            "--variant", "full", "--clip", "vn_haiphong_intersection", "--write", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Accuracy\n\nintro\n") and text.endswith("\nafter\n") and "old" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    bare = next(line for line in rows if line.startswith("| bare yolox_nano"))
    full = next(line for line in rows if line.startswith("| full |") and "%" in line)
    replayed = next(line for line in rows if line.startswith("| full | 2 |"))
    n = sum(len(f["boxed"]) for f in frames)
    # Every boxed vehicle of the partial truth is one a detector found: the bare model finds most.
    recall = int(bare.split("|")[4].split("(")[1].split("/")[0])
    assert f"/{n})" in bare and recall >= n // 2
    assert full.count("%") == 4 and replayed.split("|")[3].strip() == "15"  # 7.08 s at 2 fps
    assert re.fullmatch(r"0 / 0 / \d+ / 0", replayed.split("|")[4].strip())  # no truth crossing: any found is false
    # No incident on the clip (eval/truth/vn_haiphong_intersection.incidents.json): the cars at the
    # red light are not reported.
    assert replayed.split("|")[6].strip() == "0 / 0 / 0 / 0; at red queue 0"
    assert "0 incidents and 7 vehicles waiting at a red light" in text
    assert capsys.readouterr().out.count("| full | 2 |") == 1


def test_a_clip_that_cannot_be_evaluated_is_named_and_the_run_fails(shared_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "gone.json").write_text(json.dumps({"clip": "gone.mp4", "scene": None, "frames": []}))
    assert eval_video.main(["--shared", str(shared_dir), "--truth-dir", str(tmp_path), "--clip", "gone"]) == 1
    captured = capsys.readouterr()
    assert f"Not evaluated: {tmp_path / 'gone.json'}: clip {shared_dir / 'data' / 'video' / 'gone.mp4'} not found" \
        in captured.out and "not evaluated: gone.mp4" in captured.err
