"""The portal's consumers decode each message by its subject (plain functions, no I/O)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from proto.v1 import BY_NAME
from services.portal import handlers
from services.runtime import bus

GOLDEN = Path(__file__).resolve().parents[1] / "proto" / "golden"

DECODERS = {
    handlers.decode_violation: ("violation_identified", "violation_unidentified"),
    handlers.decode_notice: ("notice_sent", "notice_failed", "notice_held"),
    handlers.decode_telemetry: ("vehicles_counted", "camera_status", "signal_phase"),
    handlers.decode_incident: ("incident_detected", "incident_updated", "incident_cleared"),
}


def _msg(name: str) -> SimpleNamespace:
    subject = BY_NAME[name].subject.format(camera_id="cam-01", type="red_light", channel="email", decision="confirmed",
                                           intersection_id="nga-tu-1", incident_type="congestion")
    return SimpleNamespace(subject=subject, data=(GOLDEN / name / "001.json").read_bytes())


@pytest.mark.parametrize(("decode", "name"), [(d, n) for d, names in DECODERS.items() for n in names])
def test_each_subject_decodes_to_its_type(decode, name):
    assert type(decode(_msg(name))) is BY_NAME[name].type


@pytest.mark.parametrize("decode", list(DECODERS))
def test_a_subject_of_another_consumer_is_invalid(decode):
    with pytest.raises(bus.Invalid, match="unexpected subject"):
        decode(_msg("case_reviewed"))
