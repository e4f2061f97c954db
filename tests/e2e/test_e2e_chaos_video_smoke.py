"""Smoke version of `make chaos-video` (chaos/video_run.py): the real Hải Phòng clip through ingest,
detect and track, played with a fixed recording time, once undisturbed and once with nats-server
killed (-9) and restarted mid-clip: the same frames, detections and violations, by id.

Each test stays under a minute on this machine: the undisturbed run is a module fixture (first
test), the faulted run the second. The long run (every fault, registry to notify) is
`make chaos-video`.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from chaos import video_run  # noqa: E402


@pytest.fixture(scope="module")
def clip(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("clip") / "haiphong-x1.mp4"
    seconds = video_run.repeat_clip(shared_dir / video_run.CLIP, path, 1)
    args = video_run.parse(["--smoke", "--shared", str(shared_dir)])
    start_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10)
    return args, path, seconds, start_at


@pytest.fixture(scope="module")
def undisturbed(clip) -> video_run.Run:
    args, path, seconds, start_at = clip
    return asyncio.run(video_run.one_run("undisturbed", None, args, path, seconds, start_at))


def test_the_undisturbed_clip_gives_a_violation_per_red_light_runner(undisturbed: video_run.Run) -> None:
    assert not undisturbed.notes, undisturbed.notes
    assert undisturbed.frames == undisturbed.detections >= 25  # 7.1 s at 4 fps: every frame detected
    assert len(undisturbed.violations) >= 1 and len(set(undisturbed.violations)) == len(undisturbed.violations)


def test_a_nats_restart_mid_clip_changes_no_violation(clip, undisturbed: video_run.Run) -> None:
    args, path, seconds, start_at = clip
    faulted = asyncio.run(video_run.one_run("nats restart", "nats", args, path, seconds, start_at))
    row, failures = video_run.compare(undisturbed, faulted, full=False)
    assert failures == []
    assert faulted.frames == undisturbed.frames and faulted.detections == undisturbed.detections
    assert faulted.violations == undisturbed.violations  # the same ids, in the same order
    assert row[4:8] == [len(undisturbed.violations), 0, 0, 0]  # same id; same event, new id; missing; extra
    assert faulted.fault_s >= args.down_s


def test_a_violation_judged_again_under_a_new_id_fails_the_run() -> None:
    """The same red-light run (type, rule, time) under another id is no loss, but two cases: told
    apart in the table, and a failure."""
    reference = video_run.Run(name="undisturbed", fault=None, violations=["a", "b"],
                              events={"a": ("red_light", "stop", 10.0), "b": ("red_light", "stop", 20.0)})
    renamed = video_run.Run(name="kill -9 track", fault="track", violations=["a", "c"],
                            events={"a": ("red_light", "stop", 10.0), "c": ("red_light", "stop", 20.2)})
    row, failures = video_run.compare(reference, renamed, full=False)
    assert row[4:8] == [1, 1, 0, 0]  # same id; same event, new id; missing; extra
    assert failures == ["kill -9 track: 1 violations judged again under a new id, e.g. ['b']"]
    assert video_run.compare(reference, reference, full=False)[1] == []
