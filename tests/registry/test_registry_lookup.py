"""The lookup decision as a pure function: exact, near, ambiguous, missing, cloned."""

from __future__ import annotations

from proto import ids, subjects
from proto.v1 import ViolationIdentified, ViolationUnidentified
from services.registry import lookup
from registry_samples import read, registration, violation

CAR = registration("30A12345", "30A-123.45")


def decide(v, registry):
    candidates = lookup.plates_to_look_up(v)
    found = {}
    for plate in (c.plate for c in candidates):
        entries = registry.get(plate, [])
        entries = entries if isinstance(entries, list) else [entries]
        if entries:
            found[plate] = entries
    return lookup.identify(v, candidates, found)


def test_exact_match() -> None:
    v = violation(read("30A-123.45"))
    result = decide(v, {"30A12345": CAR})
    assert isinstance(result, ViolationIdentified)
    assert (result.match, result.matched_plate, result.mismatches) == ("exact", "30A12345", ())
    assert result.owner.name == "Nguyễn Văn An" and result.vehicle.plate_printed == "30A-123.45"
    assert result.id == ids.event_id("identified", "v-1") and result.violation == v
    assert lookup.subject_for(result) == subjects.violation_identified("cam-07", "red_light")


def test_exact_beats_a_near_match() -> None:
    registry = {"29B812345": registration("29B812345", "29-B8 123.45", "motorcycle"),
                "29BB12345": registration("29BB12345", "29BB-123.45")}
    result = decide(violation(read("29BB-123.45")), registry)
    assert (result.match, result.matched_plate) == ("exact", "29BB12345")


def test_near_match_is_flagged_not_promoted_silently() -> None:
    result = decide(violation(read("3OA-I23.4S", valid=False)), {"30A12345": CAR})
    assert isinstance(result, ViolationIdentified)
    assert result.match == "near" and result.matched_plate == "30A12345"
    assert result.violation.plate.text == "3OA-I23.4S"  # the read travels unchanged beside the match


def test_two_equally_near_plates_stay_unidentified_with_both_candidates() -> None:
    # Read 29-B? where ? is an ambiguous 8/B, with both 29-B8... and 29BB... not read exactly.
    registry = {"29B812345": registration("29B812345", "29-B8 123.45", "motorcycle"),
                "29BB12345": registration("29BB12345", "29BB-123.45")}
    # "29B8I2345": position 4 I->1 gives 29B812345 (1 correction); "29BBI2345" would need 2 reads.
    one = decide(violation(read("29B8I2345", valid=False), vehicle_class="motorcycle"), registry)
    assert (one.match, one.matched_plate) == ("near", "29B812345")
    # The OCR offers both as alternatives of an unregistered read: no basis to choose.
    alternatives = (("29-B8 123.45", 0.3), ("29BB-123.45", 0.3))
    both = decide(violation(read("29-B3 123.45", alternatives=alternatives)), registry)
    assert isinstance(both, ViolationUnidentified)
    assert both.reason == "no_record" and set(both.candidates) == {"29-B8 123.45", "29BB-123.45"}


def test_alternative_of_the_ocr_is_a_near_match() -> None:
    result = decide(violation(read("30A-123.46", alternatives=(("30A-123.45", 0.2),))), {"30A12345": CAR})
    assert (result.match, result.matched_plate) == ("near", "30A12345")


def test_no_read_no_record_and_invalid_format() -> None:
    assert decide(violation(None), {"30A12345": CAR}).reason == "no_read"
    assert decide(violation(read("", valid=False)), {}).reason == "no_read"
    missing = decide(violation(read("30A-999.99")), {"30A12345": CAR})
    assert isinstance(missing, ViolationUnidentified) and missing.reason == "no_record" and missing.candidates == ()
    assert missing.id == ids.event_id("unidentified", "v-1")
    assert lookup.subject_for(missing) == subjects.violation_unidentified("cam-07", "red_light")
    assert decide(violation(read("ABC", valid=False)), {}).reason == "invalid_format"


def test_type_and_colour_disagreement_flags_a_possible_clone() -> None:
    bike_on_car_plate = decide(violation(read("30A-123.45"), vehicle_class="motorcycle"), {"30A12345": CAR})
    assert bike_on_car_plate.mismatches == ("vehicle_type",)
    red_white_car = decide(violation(read("30A-123.45"), colour="red"), {"30A12345": CAR})
    assert red_white_car.mismatches == ("colour",)
    # What a camera cannot tell apart is not a mismatch.
    van = registration("30A12345", "30A-123.45", "van", "silver")
    assert decide(violation(read("30A-123.45"), vehicle_class="car", colour="grey"), {"30A12345": van}).mismatches == ()
    assert decide(violation(read("30A-123.45"), vehicle_class="other", colour="other"), {"30A12345": CAR}).mismatches == ()


def test_registrations_sharing_a_bare_plate_are_told_apart_by_what_the_camera_saw() -> None:
    # A car's 29B-112.34 and an older motorbike's 29-B1 1234 are both 29B11234.
    car = registration("29B11234", "29B-112.34", "bus")
    bike = registration("29B11234", "29-B1 1234", "motorcycle")
    registry = {"29B11234": [car, bike]}
    on_bike = decide(violation(read("29-B1 1234"), vehicle_class="motorcycle"), registry)
    assert on_bike.match == "exact" and on_bike.vehicle.plate_printed == "29-B1 1234" and on_bike.mismatches == ()
    on_bus = decide(violation(read("29B-112.34"), vehicle_class="bus"), registry)
    assert on_bus.vehicle.plate_printed == "29B-112.34"
    # Class unknown: the plate's layout decides.
    by_layout = decide(violation(read("29-B1 1234"), vehicle_class="other"), registry)
    assert by_layout.vehicle.plate_printed == "29-B1 1234"
    # Nothing to tell them apart: not identified, both offered to the officer.
    two_bikes = {"29B11234": [bike, registration("29B11234", "29-B1 1234", "motorcycle")]}
    undecided = decide(violation(read("29-B1 1234"), vehicle_class="motorcycle"), two_bikes)
    assert isinstance(undecided, ViolationUnidentified) and undecided.candidates == ("29-B1 1234", "29-B1 1234")


def test_owner_reply_uses_the_written_layout() -> None:
    import json

    from services.registry import owners

    car = registration("29B11234", "29B-112.34", "bus")
    bike = registration("29B11234", "29-B1 1234", "motorcycle")
    found = {"29B11234": [car, bike]}
    _, plate, two_line = owners.parse(b'{"plate": "29-B1 1234"}')
    body, named = owners.reply(plate, two_line, found, {})
    assert named and json.loads(body)["vehicle"]["plate_printed"] == "29-B1 1234"
    _, plate, two_line = owners.parse(b'{"plate": "29B11234"}')
    body, named = owners.reply(plate, two_line, found, {})
    assert not named and json.loads(body)["near"] == ["29B-112.34", "29-B1 1234"]
