"""The owner of a confirmed case, asked of the registry (nats.micro `registry`, endpoint
`lookup-owner`) rather than carried on case events: CASES may be imported by agencies that must
not see owners, so personal data travels only on this police-only request."""

from __future__ import annotations

import msgspec
import nats.errors
from nats.aio.client import Client as NATS

from proto.v1 import Owner, Vehicle


class OwnerReply(msgspec.Struct, frozen=True, kw_only=True):
    """The registry's reply (services/registry/owners.py), read without importing that service."""

    plate: str
    found: bool
    vehicle: Vehicle | None = None
    owner: Owner | None = None
    near: tuple[str, ...] = ()


class NotRegistered(Exception):
    """The registry has no vehicle for the plate: the case cannot be notified (permanent)."""


class RegistryUnavailable(Exception):
    """No answer or an error answer: worth retrying later."""


_decoder = msgspec.json.Decoder(OwnerReply)


async def lookup(nc: NATS, subject: str, plate: str, timeout_s: float) -> tuple[Vehicle, Owner]:
    try:
        reply = await nc.request(subject, msgspec.json.encode({"plate": plate}), timeout=timeout_s)
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
