"""Subjects follow traffic.<noun>.<past-verb>.v1.<camera>[.<kind>] and fall in exactly one stream."""

from __future__ import annotations

import re

import pytest

from proto import streams, subjects
from proto.v1 import MESSAGES


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


@pytest.mark.parametrize(
    "subject",
    [
        subjects.frame_captured("cam-07"),
        subjects.detection_made("cam-07"),
        subjects.violation_detected("cam-07", "red_light"),
        subjects.violation_identified("cam-07", "red_light"),
        subjects.violation_unidentified("cam-07", "speeding"),
        subjects.hotlist_hit("cam-07"),
        subjects.case_reviewed("cam-07", "confirmed"),
        subjects.case_resolved("cam-07"),
        subjects.notice_sent("cam-07", "email"),
        subjects.notice_failed("cam-07", "sms"),
        subjects.vehicles_counted("cam-07"),
        subjects.camera_status("cam-07"),
        subjects.signal_phase("lach-tray"),
        subjects.dlq("detect"),
        subjects.audit_anchored("portal"),
        subjects.incident_detected("cam-07", "stopped_vehicle"),
        subjects.incident_updated("cam-07", "congestion"),
        subjects.incident_cleared("cam-07", "wrong_way_driving"),
        subjects.model_promoted("vehicle"),
    ],
)
def test_each_subject_is_kept_by_exactly_one_stream(subject: str) -> None:
    owners = [s.name for s in streams.ALL if any(_matches(p, subject) for p in s.subjects)]
    assert len(owners) == 1, (subject, owners)


def test_message_table_names_the_stream_that_keeps_it() -> None:
    for message in MESSAGES:
        example = message.subject.format(
            camera_id="cam-07", type="red_light", decision="confirmed", channel="email",
            intersection_id="x-1", service="detect", chain="portal", incident_type="congestion",
            model="vehicle",
        )
        assert any(_matches(p, example) for p in streams.BY_NAME[message.stream].subjects), message.name


@pytest.mark.parametrize("bad", ["cam.07", "Cam-07", "cam 07", "", "cam-*", "cam->", "-cam"])
def test_bad_camera_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="camera id"):
        subjects.frame_captured(bad)


def test_consumers_filter_within_their_stream() -> None:
    for consumer in streams.CONSUMERS:
        stream = streams.BY_NAME[consumer.stream]
        for subject_filter in consumer.filter_subjects:
            assert subject_filter in stream.subjects or any(
                _matches(p, subject_filter.replace(">", "x")) for p in stream.subjects
            ), (consumer.name, subject_filter)


def test_message_table_subjects_are_those_the_subject_functions_build() -> None:
    """The table's subject templates are written out for the schemas and AsyncAPI: they must say
    what proto.subjects builds (placeholders in the order of the function's arguments)."""
    examples = {"camera_id": "cam-07", "type": "red_light", "decision": "confirmed", "channel": "email",
                "intersection_id": "x-1", "service": "detect", "chain": "portal", "incident_type": "congestion",
                "model": "vehicle"}
    for message in MESSAGES:
        build = subjects.dlq if message.name == "dead_letter" else getattr(subjects, message.name)
        values = [examples[name] for name in re.findall(r"\{(\w+)\}", message.subject)]
        assert build(*values) == message.subject.format(**examples), message.name
