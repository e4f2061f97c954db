"""The pure parts of model promotion and shadow: which version a rollback returns to, and how
a candidate's vehicles are compared with the live model's on one frame."""

from __future__ import annotations

from datetime import datetime, timezone

from proto.v1.model import ModelPromoted
from services.detect.model_store import in_service_stack
from services.detect.pipeline import Vehicle
from services.detect.shadow import compare


def event(action: str, version: int) -> ModelPromoted:
    return ModelPromoted(id=f"e-{action}-{version}", occurred_at=datetime(2026, 12, 4, tzinfo=timezone.utc),
                         name="vehicle", version=version, sha256="0" * 64, action=action, by="t")  # type: ignore[arg-type]


def test_each_rollback_steps_back_one_promotion() -> None:
    promote, rollback = (lambda v: event("promote", v)), (lambda v: event("rollback", v))
    assert in_service_stack([promote(1), promote(2), promote(3)]) == [1, 2, 3]
    assert in_service_stack([promote(1), promote(2), promote(3), rollback(2)]) == [1, 2]
    assert in_service_stack([promote(1), promote(2), promote(3), rollback(2), rollback(1)]) == [1]
    # Promoting an older version again is a promotion like any other: a rollback undoes it.
    assert in_service_stack([promote(1), promote(2), promote(1), rollback(2)]) == [1, 2]
    assert in_service_stack([]) == []


def v(name: str, box: tuple[float, float, float, float], riders: int = 0) -> Vehicle:
    return Vehicle(name, 0.9, box, riders)


def test_agreement_pairs_vehicles_one_to_one_at_iou_half_whatever_their_class() -> None:
    live = (v("car", (0, 0, 100, 100)), v("truck", (200, 0, 300, 100)), v("person", (400, 0, 420, 60)),
            v("motorcycle", (500, 0, 540, 80), riders=1))
    candidate = (v("car", (5, 5, 105, 105)),  # IoU 0.82 with the live car, but the box below fits it better
                 v("car", (200, 0, 300, 100)),  # the live truck, named car: still the same vehicle
                 v("motorcycle", (560, 0, 600, 80)),  # beside the live motorbike: IoU 0
                 v("car", (0, 0, 100, 100)))  # the live car exactly: paired; one to one, the other box stays unpaired
    compared = compare(live, candidate)
    assert (compared.live, compared.candidate, compared.matched) == (3, 4, 2)  # the person is no vehicle
    assert compared.agreement == 2 / (3 + 4 - 2)
    assert compared.live_classes == {"car": 1, "truck": 1, "person": 1, "motorcycle": 1}
    assert compared.candidate_classes == {"car": 3, "motorcycle": 1}
    assert compare((), ()).agreement == 1.0
    assert compare(live, ()).agreement == 0.0
