"""Hotlist matching as pure functions: active entries, corrections, stable ids per passage."""

from __future__ import annotations

from datetime import timedelta

from services.registry import hotlist
from registry_samples import AT, detection

STOLEN = hotlist.Entry(id=1, plate="30A12345", plate_display="30A-123.45", reason="xe bị mất cắp", agency="police",
                       valid_from=AT - timedelta(days=1), valid_to=None)
EXPIRED = hotlist.Entry(id=2, plate="29B112345", plate_display="29-B1 123.45", reason="truy nã", agency="police",
                        valid_from=AT - timedelta(days=10), valid_to=AT - timedelta(days=1))


def test_hit_on_exact_and_corrected_reads_only_while_active() -> None:
    wanted = hotlist.Hotlist([STOLEN, EXPIRED])
    (hit,) = hotlist.hits(detection("30A-123.45", "51F-999.99"), wanted, 60)
    assert (hit.plate, hit.reason, hit.agency, hit.camera_id, hit.detection_id) == ("30A12345", "xe bị mất cắp", "police", "cam-07", "d-1")
    assert hit.read.text == "30A-123.45" and hit.frame_stream_seq == 1
    assert len(hotlist.hits(detection("3OA-l23.4S"), wanted, 60)) == 0  # 'l' is not a known confusion
    assert len(hotlist.hits(detection("3OA-123.4S"), wanted, 60)) == 1  # O->0, S->5 by position
    assert hotlist.hits(detection("29-B1 123.45"), wanted, 60) == []  # entry no longer valid
    assert hotlist.hits(detection("30A-123.45", at=AT - timedelta(days=2)), wanted, 60) == []  # not yet valid


def test_same_passage_same_id_new_passage_new_id() -> None:
    wanted = hotlist.Hotlist([STOLEN])
    first = hotlist.hits(detection("30A-123.45", id="d-1", seq=1), wanted, 60)[0]
    next_frame = hotlist.hits(detection("30A-123.45", id="d-2", seq=2, at=AT + timedelta(seconds=0.2)), wanted, 60)[0]
    later = hotlist.hits(detection("30A-123.45", id="d-9", seq=9, at=AT + timedelta(minutes=5)), wanted, 60)[0]
    other_camera = hotlist.hits(detection("30A-123.45", camera="cam-08"), wanted, 60)[0]
    assert first.id == next_frame.id
    assert len({first.id, later.id, other_camera.id}) == 3


def test_recent_is_bounded() -> None:
    recent = hotlist.Recent(size=2)
    for hit_id in ("a", "b", "c"):
        assert not recent.seen(hit_id)
        recent.add(hit_id)
    assert recent.seen("c") and recent.seen("b") and not recent.seen("a")
