"""The registry's request/reply endpoint `lookup-owner` (traffic.registry.v1.lookup-owner).

The reply carries owner personal data, so the endpoint is exported to the POLICE account only
(deploy/nats/accounts.conf), and every request is written to the registry's audit table with
who asked (the account and user nats-server attests for a request from another account), for
which case and which plate. A request without `case_id` is still answered (v1 readers that
predate the field send only the plate) and audited with an empty case.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from proto.v1.violation import Owner, Vehicle

PlateQuery = Annotated[str, Meta(min_length=1, max_length=32)]


class OwnerLookupRequest(msgspec.Struct, frozen=True, kw_only=True):
    plate: PlateQuery  # as printed or as read: '30A-123.45', '30A12345', '29-B1 123.45'
    # The case the owner is wanted for, e.g. 'HP-2026-000123' (audited).
    case_id: Annotated[str, Meta(max_length=64)] = ""
    # The person or service asking, as the caller knows it (an officer's user id, 'notify'). The
    # audit also keeps the account and user nats-server attests, which the caller cannot choose.
    requested_by: Annotated[str, Meta(max_length=128)] = ""
    purpose: Annotated[str, Meta(max_length=64)] = ""  # why: 'notice', 'review', 'transfer'...


class OwnerLookupReply(msgspec.Struct, frozen=True, kw_only=True):
    plate: str  # normalised: [0-9A-Z] only
    found: bool
    vehicle: Vehicle | None = None
    owner: Owner | None = None  # personal data: police only
    # Registered plates (as printed) the request may have meant: OCR confusions, or several
    # registrations sharing the bare plate. No owner data for these: ask again with the one meant.
    near: tuple[str, ...] = ()
