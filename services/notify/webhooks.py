"""Signed HTTP POSTs: to subscribers (their events), and to agencies reached by webhook
(inspection warnings). The signature is Stripe-like so receivers can reuse known code:

    Roadwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp lets a receiver refuse replays older than a few minutes; the event id header lets
it drop a redelivery it already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp

from services.notify.outcome import DeliveryError, http_error

SIGNATURE = "Roadwatch-Signature"
EVENT_ID = "Roadwatch-Event-Id"
SUBJECT = "Roadwatch-Subject"
ATTEMPT = "Roadwatch-Attempt"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300) -> bool:
    """What a receiver does; here for subscribers' reference and for the tests."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


async def post(session: aiohttp.ClientSession, url: str, secret: str, body: bytes, *, event_id: str,
               subject: str = "", attempt: int = 1, timeout_s: float = 15.0) -> int:
    """Deliver once; returns the status on 2xx, raises DeliveryError otherwise."""
    if not secret:
        raise DeliveryError("webhook secret is empty", permanent=True)
    headers = {"Content-Type": "application/json", SIGNATURE: sign(secret, body, int(time.time())),
               EVENT_ID: event_id, ATTEMPT: str(attempt)}
    if subject:
        headers[SUBJECT] = subject
    try:
        async with session.post(url, data=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status >= 300:
                raise http_error(response.status, await response.text())
            return response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"webhook unreachable: {exc!r}") from exc
