"""`roadwatch replay` on the Hải Phòng clip, as a user runs it: JSON lines of the documented
shapes, the crossings and violations a person labelled, an annotated clip; bad input exits 2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import av
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # eval/ is a directory of scripts, not an installed package

from eval import metrics  # noqa: E402
from services.ingest.sampler import FpsSampler  # noqa: E402
from services.replay.cli import Table  # noqa: E402
from services.track import scenes  # noqa: E402

SCENE = REPO / "deploy" / "local" / "scenes" / "demo-haiphong.yaml"
TRUTH = REPO / "eval" / "truth" / "vn_haiphong_intersection.json"
CLIP = "vn_haiphong_intersection.mp4"
FPS = 5
VIOLATION_TYPES = {"red_light", "wrong_way", "wrong_lane", "no_stopping", "speeding"}
CLASSES = {"car", "motorcycle", "bus", "truck", "bicycle", "other"}


def replay(*args: str, shared: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELS_DIR": str(shared / "models")}
    return subprocess.run([sys.executable, "-m", "services.cli", "replay", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def haiphong(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One replay of the clip at 5 fps with --json and --annotate, shared by the tests below."""
    out = tmp_path_factory.mktemp("replay") / "annotated.mp4"
    video = shared_dir / "data" / "video" / CLIP
    # The clip is spliced at frame 64 (eval/truth says so): marked as the break it is.
    done = replay(str(video), "--scene", str(SCENE), "--fps", str(FPS), "--break-at", "64", "--json", "--annotate", str(out),
                  shared=shared_dir)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    return {"events": events, "annotated": out, "video": video}


def sampled_frames(video: Path, fps: float) -> list[int]:
    """Decode indexes of the frames ingest's sampler keeps, from the file's own timestamps."""
    sampler, kept = FpsSampler(fps), []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        first = None
        for index, frame in enumerate(container.decode(stream)):
            t = float(frame.pts * stream.time_base)
            first = t if first is None else first
            if sampler.take(t - first):
                kept.append(index)
    return kept


def of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["kind"] == kind]


def test_json_lines_have_the_documented_shapes(haiphong) -> None:
    events = haiphong["events"]
    scene = scenes.load(SCENE)
    assert {e["kind"] for e in events} <= {"crossing", "violation", "signal", "count", "incident", "summary"}
    # The cars and motorbikes standing in the approach all wait at the red light
    # (eval/truth/vn_haiphong_intersection.incidents.json): no incident.
    assert of(events, "incident") == [] and events[-1]["incidents"] == 0
    assert [e["kind"] for e in events].count("summary") == 1 and events[-1]["kind"] == "summary"
    summary = events[-1]
    processed = sampled_frames(haiphong["video"], FPS)
    assert summary["frames_read"] == 142 and summary["frames_processed"] == len(processed) == 36
    assert summary["fps"] == FPS and summary["tracks"] > 0 and summary["detections"] > 0
    assert 0 < summary["detect_cpu_ms_per_frame"] <= summary["cpu_ms_per_frame"]

    stop_lines = {s.id for s in scene.stop_lines}
    for c in of(events, "crossing"):
        assert set(c) >= {"line", "t", "frame", "class", "track", "x"}
        assert c["line"] in stop_lines and c["class"] in CLASSES and isinstance(c["track"], int)
        assert c["frame"] in processed  # the first processed frame beyond the line
        assert 0 <= c["t"] <= c["frame"] / 20.09 + 0.01  # interpolated: at or before that frame
    for v in of(events, "violation"):
        assert set(v) >= {"type", "t", "frame", "track", "class", "plate", "measured"}
        assert v["type"] in VIOLATION_TYPES and v["class"] in CLASSES and v["frame"] in processed
        assert v["plate"] is None or isinstance(v["plate"], str)
        assert isinstance(v["measured"]["value"], (int, float)) and v["measured"]["unit"] in ("s", "km/h", "frames")
        assert all(f["frame"] in processed for f in v["evidence"])
        if v["type"] == "red_light":
            # A red-light run is a crossing of that stop line by that track, at that moment.
            assert any(c["track"] == v["track"] and c["line"] == v["element"] and abs(c["t"] - v["t"]) < 1e-3
                       for c in of(events, "crossing")), v
    signals = of(events, "signal")
    assert {s["head"] for s in signals} == {h.id for h in scene.signal.heads}  # type: ignore[union-attr]
    for s in signals:
        assert s["state"] in ("red", "amber", "green", "off", "unknown") and 0 <= s["from_t"] <= s["to_t"] <= 7.1
    # The main head is red through the whole clip (the scene file and the truth say so); at the
    # splice (frame 64, --break-at) what was read before is forgotten: unknown until read again.
    main = [s for s in signals if s["head"] == "main"]
    assert [s["state"] for s in main] == ["red", "unknown", "red"]
    assert main[0]["from_t"] == 0.0 and main[0]["to_frame"] == 64 and main[1]["from_frame"] == 64
    assert main[1]["to_t"] - main[1]["from_t"] < 1.0 and main[2]["to_t"] > 6.9


def test_the_annotated_clip_has_every_processed_frame(haiphong) -> None:
    with av.open(str(haiphong["annotated"])) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) == 36 and (frames[0].width, frames[0].height) == (1006, 720)
    assert float(stream.average_rate) == pytest.approx(FPS)


def test_the_readable_table_lists_every_event_and_the_summary(haiphong) -> None:
    table = Table("clip.mp4", "demo-haiphong")
    for event in haiphong["events"]:
        table.add(event)
    out = io.StringIO()
    with redirect_stdout(out):
        table.close()
    lines = out.getvalue().splitlines()
    kinds = {"crossing", "violation", "signal", "count", "incident"}  # a count row has no time or frame
    assert len([line for line in lines if kinds & set(line.split()[:3])]) == len(haiphong["events"]) - 1
    assert "36 of 142 frames at 5 fps" in lines[-1]


def _truth() -> dict:
    if not TRUTH.is_file():
        pytest.skip(f"{TRUTH.relative_to(REPO)} is not in this checkout yet (written by the labellers)")
    return json.loads(TRUTH.read_text(encoding="utf-8"))


def test_what_replay_finds_is_in_the_truth(haiphong) -> None:
    """No false and no duplicate crossing or violation, against what a person labelled."""
    truth = _truth()
    crossings = metrics.score_events(truth["crossings"], of(haiphong["events"], "crossing"), "line")
    violations = metrics.score_events(truth["violations"], of(haiphong["events"], "violation"), "type")
    assert (crossings.false, crossings.duplicate) == (0, 0), of(haiphong["events"], "crossing")
    assert (violations.false, violations.duplicate) == (0, 0), of(haiphong["events"], "violation")
    # Measured at 5 fps: 4 of the 5 crossings and 2 of the 3 red-light runs, none false.
    assert crossings.found >= 4 and violations.found >= 2


@pytest.mark.xfail(strict=True, reason="target of issue 15: every labelled crossing and red-light run at 5 fps; "
                                       "the rider crossing at frame 60 is seen for three frames past the line before "
                                       "the splice at 64, and her box ends short of the line in the frames sampled at "
                                       "5 fps (see docs/ACCURACY.md)")
def test_replay_finds_every_labelled_crossing_and_violation(haiphong) -> None:
    truth = _truth()
    crossings = metrics.score_events(truth["crossings"], of(haiphong["events"], "crossing"), "line")
    violations = metrics.score_events(truth["violations"], of(haiphong["events"], "violation"), "type")
    assert crossings.missed == 0, [t for t in truth["crossings"] if all(t is not p[0] for p in crossings.pairs)]
    assert violations.missed == 0, [t for t in truth["violations"] if all(t is not p[0] for p in violations.pairs)]


# --- bad input ---------------------------------------------------------------------------------------
def _no_traceback(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


def test_a_missing_video_exits_2_with_the_path(shared_dir: Path, tmp_path: Path) -> None:
    done = replay(str(tmp_path / "nope.mp4"), "--scene", str(SCENE), shared=shared_dir)
    _no_traceback(done)
    assert f"cannot read video {tmp_path / 'nope.mp4'}: no such file" in done.stderr


def test_a_file_that_is_not_a_video_exits_2(shared_dir: Path) -> None:
    done = replay(str(SCENE), "--scene", str(SCENE), shared=shared_dir)
    _no_traceback(done)
    assert f"cannot read video {SCENE}: cannot open" in done.stderr


def test_a_bad_scene_exits_2_with_file_line_and_field(shared_dir: Path, tmp_path: Path) -> None:
    scene = tmp_path / "cam.yaml"
    scene.write_text(SCENE.read_text(encoding="utf-8").replace("direction: [0, -1]", "direction: [0, -1]\n    speed: 3", 1),
                     encoding="utf-8")
    line = scene.read_text(encoding="utf-8").splitlines().index("    speed: 3") + 1
    done = replay(str(shared_dir / "data" / "video" / CLIP), "--scene", str(scene), shared=shared_dir)
    _no_traceback(done)
    assert f"invalid scene: {scene}:{line}" in done.stderr and "speed" in done.stderr


def test_a_missing_scene_and_a_bad_fps_exit_2(shared_dir: Path, tmp_path: Path) -> None:
    video = str(shared_dir / "data" / "video" / CLIP)
    done = replay(video, "--scene", str(tmp_path / "none.yaml"), shared=shared_dir)
    _no_traceback(done)
    assert "none.yaml" in done.stderr
    done = replay(video, "--scene", str(SCENE), "--fps", "0", shared=shared_dir)
    _no_traceback(done)
    assert "--fps must be above 0" in done.stderr
