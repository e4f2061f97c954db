"""A detected violation in, an identified or unidentified violation out: the registry's decision.

Pure: the caller looks up the candidate plates (see `plates_to_look_up`) and passes what it
found. An exact record wins. A near match (a read that differs from a registered plate only by
the usual OCR confusions) is published as `match="near"` with the registered plate beside the
read, for the reviewing officer to confirm; when two registered plates are equally near, none
is chosen and both go out as candidates of an unidentified violation. A registration whose
vehicle type or colour disagrees with what the camera saw is flagged as a possibly cloned plate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proto import ids, subjects
from proto.v1 import Owner, Vehicle, ViolationDetected, ViolationIdentified, ViolationUnidentified
from services.registry import plates

Registration = tuple[Vehicle, Owner]

# Registered types a camera's class may honestly be: detectors call a van a car or a truck,
# and a minibus a car or a bus. A motorbike on a car's plate (or the reverse) is never honest.
COMPATIBLE_TYPES: dict[str, frozenset[str]] = {
    "motorcycle": frozenset({"motorcycle"}),
    "car": frozenset({"car", "van"}),
    "truck": frozenset({"truck", "van"}),
    "bus": frozenset({"bus", "van"}),
}
# Colours a camera cannot tell apart under street light.
COLOUR_GROUPS = ({"silver", "grey", "gray"},)
UNJUDGED_COLOURS = frozenset({"", "other", "unknown"})


def plates_to_look_up(violation: ViolationDetected) -> list[plates.Candidate]:
    """The read first, then its near matches and the OCR's own alternatives."""
    read = violation.plate
    if read is None or not plates.normalise(read.text or read.raw):
        return []
    return plates.candidates(
        read.text or read.raw, read.confidence,
        tuple((alt.text, alt.confidence) for alt in read.alternatives))


def _same_colour(seen: str, registered: str) -> bool:
    seen, registered = seen.lower().strip(), registered.lower().strip()
    if seen == registered:
        return True
    return any(seen in group and registered in group for group in COLOUR_GROUPS)


def mismatches(violation: ViolationDetected, vehicle: Vehicle) -> tuple[str, ...]:
    """What the camera saw that the registration contradicts."""
    found: list[str] = []
    compatible = COMPATIBLE_TYPES.get(violation.vehicle_class)
    if compatible is not None and vehicle.vehicle_type not in compatible:
        found.append("vehicle_type")
    seen = (violation.vehicle_colour or "").lower().strip()
    if seen not in UNJUDGED_COLOURS and vehicle.colour and not _same_colour(seen, vehicle.colour):
        found.append("colour")
    return tuple(found)


def choose(violation: ViolationDetected, registrations: Sequence[Registration]) -> Registration | None:
    """The registration the camera saw among those sharing one bare plate (29B-112.34 and
    29-B1 1234 are both 29B11234): the one whose type fits the camera's class, then the one whose
    plate has the layout read. None when that still leaves several."""
    if len(registrations) == 1:
        return registrations[0]
    remaining = list(registrations)
    compatible = COMPATIBLE_TYPES.get(violation.vehicle_class)
    if compatible is not None:
        remaining = [r for r in remaining if r[0].vehicle_type in compatible] or remaining
    if len(remaining) > 1 and violation.plate is not None:
        two_line = violation.plate.layout == "two_line"
        remaining = [r for r in remaining if (" " in r[0].plate_printed) == two_line] or remaining
    return remaining[0] if len(remaining) == 1 else None


def _rank(candidate: plates.Candidate) -> tuple:
    # The camera's own best read before the OCR's alternatives, fewer corrections first.
    return (candidate.source != "read", len(candidate.substitutions), -candidate.confidence)


def identify(violation: ViolationDetected, candidates: list[plates.Candidate],
             found: Mapping[str, Sequence[Registration]]) -> ViolationIdentified | ViolationUnidentified:
    """`found` maps each candidate plate that is registered to its registrations (usually one)."""
    def unidentified(reason: str, near: tuple[str, ...] = ()) -> ViolationUnidentified:
        return ViolationUnidentified(
            id=ids.event_id("unidentified", violation.id), camera_id=violation.camera_id,
            occurred_at=violation.occurred_at, violation=violation, reason=reason, candidates=near)

    def identified(candidate: plates.Candidate, match: str, registration: Registration) -> ViolationIdentified:
        vehicle, owner = registration
        return ViolationIdentified(
            id=ids.event_id("identified", violation.id), camera_id=violation.camera_id,
            occurred_at=violation.occurred_at, violation=violation, vehicle=vehicle, owner=owner,
            match=match, matched_plate=candidate.plate, mismatches=mismatches(violation, vehicle))

    if not candidates:
        return unidentified("no_read")
    if candidates[0].exact and candidates[0].plate in found:
        registration = choose(violation, found[candidates[0].plate])
        if registration is None:  # same bare plate, nothing to tell them apart: the officer decides
            return unidentified("no_record", tuple(v.plate_printed for v, _ in found[candidates[0].plate]))
        return identified(candidates[0], "exact", registration)
    near = sorted((c for c in candidates if not c.exact and c.plate in found), key=_rank)
    if near:
        best = [c for c in near if _rank(c)[:2] == _rank(near[0])[:2]]
        registration = choose(violation, found[best[0].plate]) if len(best) == 1 else None
        if registration is not None:
            return identified(best[0], "near", registration)
        return unidentified("no_record", tuple(v.plate_printed for c in best for v, _ in found[c.plate]))
    if not any(plates.is_valid(c.plate) for c in candidates):
        return unidentified("invalid_format")
    return unidentified("no_record")


def subject_for(result: ViolationIdentified | ViolationUnidentified) -> str:
    builder = subjects.violation_identified if isinstance(result, ViolationIdentified) else subjects.violation_unidentified
    return builder(result.camera_id, result.violation.type)
