"""The owner of a corrected plate, asked of the registry (nats.micro `registry`, endpoint
`lookup-owner`, police only on the bus): when an officer corrects a misread plate, the owner the
camera's read matched is someone else, and the case must show the corrected plate's owner. The
request names the case and the officer, so that the registry's audit line says who read which
owner for which case."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import nats.errors

from proto import codec
from proto.v1 import Owner, OwnerLookupReply, OwnerLookupRequest, Vehicle


@dataclass(frozen=True)
class Found:
    """found: the registration; not found: `near` plates the officer may have meant; `unavailable`
    when the registry did not answer (the case then says so, and notify asks again later)."""

    vehicle: Vehicle | None = None
    owner: Owner | None = None
    near: tuple[str, ...] = ()
    unavailable: str = ""


_decoder = msgspec.json.Decoder(OwnerLookupReply)


async def lookup(nc, subject: str, plate: str, timeout_s: float, *, case_id: str, requested_by: str,
                 purpose: str = "review") -> Found:
    if nc is None:
        return Found(unavailable="no NATS connection")
    request = OwnerLookupRequest(plate=plate, case_id=case_id, requested_by=requested_by[:128], purpose=purpose)
    try:
        reply = await nc.request(subject, codec.encode(request), timeout=timeout_s)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        return Found(unavailable=f"registry did not answer on {subject}: {exc!r}")
    code = (reply.headers or {}).get("Nats-Service-Error-Code")
    if code:
        return Found(unavailable=f"registry error {code}: {(reply.headers or {}).get('Nats-Service-Error', '')}")
    try:
        answer = _decoder.decode(reply.data)
    except msgspec.DecodeError as exc:
        return Found(unavailable=f"registry reply not understood: {exc}")
    if answer.found and answer.vehicle is not None and answer.owner is not None:
        return Found(vehicle=answer.vehicle, owner=answer.owner)
    return Found(near=answer.near)
