"""Lease decisions (no I/O): spread, take-over, hand-over and giving up in time."""

from __future__ import annotations

from collections import Counter

from services.ingest.leases import Held, LeaseTable, preferred

CAMERAS = [f"cam-{i:02d}" for i in range(60)]


def test_rendezvous_spreads_cameras_and_moves_only_the_leavers() -> None:
    three = {camera: preferred(camera, ["a", "b", "c"]) for camera in CAMERAS}
    counts = Counter(three.values())
    assert set(counts) == {"a", "b", "c"} and min(counts.values()) >= 10
    two = {camera: preferred(camera, ["a", "b"]) for camera in CAMERAS}
    moved = [camera for camera in CAMERAS if three[camera] != two[camera]]
    assert moved and all(three[camera] == "c" for camera in moved)


def test_free_camera_goes_to_its_preferred_replica_first_then_to_anyone() -> None:
    live = ["a", "b"]
    mine = [c for c in CAMERAS if preferred(c, live) == "a"]
    theirs = [c for c in CAMERAS if preferred(c, live) == "b"]
    table = LeaseTable("a", ttl_s=6.0)
    table.observe(CAMERAS, owners={}, replicas=live, now=100.0)
    assert table.to_acquire(CAMERAS, 100.0) == sorted(mine)
    # b never takes its cameras (not configured there, or dying): after a TTL, a takes them.
    table.observe(CAMERAS, owners={}, replicas=live, now=106.0)
    assert table.to_acquire(CAMERAS, 106.0) == sorted(mine + theirs)


def test_held_or_owned_cameras_are_not_acquired_and_capacity_is_respected() -> None:
    table = LeaseTable("a", ttl_s=6.0, max_cameras=2)
    owners = {"cam-00": "b"}
    table.observe(CAMERAS[:5], owners=owners, replicas=["a"], now=0.0)
    table.held["cam-01"] = Held(revision=3, renewed_at=0.0)
    assert table.to_acquire(CAMERAS[:5], 0.0) == ["cam-02"]


def test_hand_over_to_a_newcomer_only_after_it_has_been_live_a_ttl() -> None:
    table = LeaseTable("a", ttl_s=6.0)
    for camera in CAMERAS:
        table.held[camera] = Held(revision=1, renewed_at=0.0)
    table.observe(CAMERAS, owners={c: "a" for c in CAMERAS}, replicas=["a"], now=0.0)
    table.observe(CAMERAS, owners={c: "a" for c in CAMERAS}, replicas=["a", "b"], now=10.0)
    assert table.to_release(CAMERAS, 12.0) == []  # b only just appeared
    released = table.to_release(CAMERAS, 16.0)
    assert released == sorted(c for c in CAMERAS if preferred(c, ["a", "b"]) == "b")
    assert 15 <= len(released) <= 45


def test_removed_cameras_are_released() -> None:
    table = LeaseTable("a", ttl_s=6.0)
    table.held["gone"] = Held(revision=1, renewed_at=0.0)
    table.observe(["kept"], owners={"gone": "a"}, replicas=["a"], now=0.0)
    assert table.to_release(["kept"], 0.0) == ["gone"]


def test_renew_at_a_third_and_give_up_at_two_thirds_of_the_ttl() -> None:
    table = LeaseTable("a", ttl_s=6.0)
    table.held["cam"] = Held(revision=1, renewed_at=10.0)
    assert table.to_renew(11.9) == [] and table.to_renew(12.0) == ["cam"]
    assert table.overdue(13.9) == [] and table.overdue(14.0) == ["cam"]
