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


# --- the reviewer of the full run (plain functions: no servers) ------------------------------------
PLATES = {"car": ["15A-100.01", "15A-100.02"], "motorcycle": ["15-B1 100.01", "15-B1 100.02"]}


def case(n: int, state: str = "unidentified", vehicle_class: str = "car", **kw) -> dict:
    return {"case_id": f"CASE-2026-{n:06d}", "state": state, "vehicle_class": vehicle_class, **kw}


def test_the_reviewer_reads_a_plate_of_its_own_for_each_unidentified_case() -> None:
    """One plate for every unidentified case made every case after the first a repeat of it."""
    officer = video_run.Reviewer(PLATES)
    assert officer.step(case(1)) == ("review", {"decision": "confirmed", "plate": "15A-100.01"})
    assert officer.step(case(2, vehicle_class="motorcycle")) == (
        "review", {"decision": "confirmed", "plate": "15-B1 100.01"})
    assert officer.step(case(3)) == ("review", {"decision": "confirmed", "plate": "15A-100.02"})
    assert officer.step(case(1))[1]["plate"] == "15A-100.01"  # asked again: the same reading
    assert officer.step(case(4, "identified")) == ("review", {"decision": "confirmed"})
    assert officer.step(case(5, "notified")) is None


def test_the_reviewer_merges_a_repeat_and_gives_up_on_a_refusal_instead_of_retrying_it_forever() -> None:
    from services.portal import actions

    officer = video_run.Reviewer(PLATES, attempts=2)
    merge = ("merge", {"into": "CASE-2026-000001", "reason": "cùng một lần vi phạm (đoạn phim lặp lại)"})
    refusal = actions._possible_repeat("CASE-2026-000002", "CASE-2026-000001")
    assert officer.answered("CASE-2026-000002", "review", refusal.status, {"error": refusal.message}) == merge
    assert officer.step(case(3, "identified", duplicate_of="CASE-2026-000001")) == merge
    assert officer.step(case(4, "confirmed", duplicate_of="CASE-2026-000001", notice_hold="possible_duplicate")) == merge
    assert officer.step(case(5, "confirmed")) is None  # notify has it
    # Another refusal: a pause before the next try, then given up and reported.
    assert officer.answered("CASE-2026-000006", "review", 409, {"error": "đang ở trạng thái 'Đã loại bỏ'"}) is None
    assert officer.step(case(6)) is None and not officer.refused
    assert officer.answered("CASE-2026-000006", "review", 409, {"error": "đang ở trạng thái 'Đã loại bỏ'"}) is None
    assert "refused 2 times" in officer.refused["CASE-2026-000006"]
    officer.not_before.clear()
    assert officer.step(case(6)) is None


def test_the_reviewers_plates_are_registered_ones_of_each_kind_with_the_same_channels(tmp_path: Path) -> None:
    extract = tmp_path / "registry.csv"
    extract.write_text(
        "plate,vehicle_type,owner_email,owner_phone\n"
        "30K-558.78,car,a@example.vn,0900000001\n"  # a demo plate: identified cases carry it
        "15A-200.01,car,b@example.vn,0900000002\n"
        "15A-200.02,car,,0900000003\n"  # no e-mail: another set of channels
        "15-B1 200.01,motorcycle,c@example.vn,0900000004\n"
        "15A-200.03,truck,d@example.vn,0900000005\n", encoding="utf-8")
    assert video_run.review_plates(extract) == {"car": ["15A-200.01"], "motorcycle": ["15-B1 200.01"]}


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
