"""The owner of a confirmed case, asked of the registry (nats.micro `registry`, endpoint
`lookup-owner`) rather than carried on case events: CASES may be imported by agencies that must
not see owners, so personal data travels only on this police-only request. The request names the
case and the purpose, so that the registry's audit line says which case the owner was read for."""

from __future__ import annotations

import msgspec
import nats.errors
from nats.aio.client import Client as NATS

from proto import codec
from proto.v1 import Owner, OwnerLookupReply, OwnerLookupRequest, Vehicle

REQUESTED_BY = "notify"


class NotRegistered(Exception):
    """The registry has no vehicle for the plate: the case cannot be notified (permanent)."""


class RegistryUnavailable(Exception):
    """No answer or an error answer: worth retrying later."""


_decoder = msgspec.json.Decoder(OwnerLookupReply)


async def lookup(nc: NATS, subject: str, plate: str, timeout_s: float, *, case_id: str,
                 purpose: str = "notice") -> tuple[Vehicle, Owner]:
    """The vehicle and owner registered for `plate`, asked for case `case_id` (audited)."""
    request = OwnerLookupRequest(plate=plate, case_id=case_id, requested_by=REQUESTED_BY, purpose=purpose)
    try:
        reply = await nc.request(subject, codec.encode(request), timeout=timeout_s)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        raise RegistryUnavailable(f"registry did not answer on {subject}: {exc!r}") from exc
    code = (reply.headers or {}).get("Nats-Service-Error-Code")
    if code:
        error = (reply.headers or {}).get("Nats-Service-Error", "")
        if code.startswith("4"):
            raise NotRegistered(f"registry refused plate {plate!r}: {code} {error}")
        raise RegistryUnavailable(f"registry error {code}: {error}")
    try:
        answer = _decoder.decode(reply.data)
    except msgspec.DecodeError as exc:
        raise RegistryUnavailable(f"registry reply not understood: {exc}") from exc
    if not answer.found or answer.vehicle is None or answer.owner is None:
        near = f" (near: {', '.join(answer.near)})" if answer.near else ""
        raise NotRegistered(f"no registration for plate {plate!r}{near}")
    return answer.vehicle, answer.owner
