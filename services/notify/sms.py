"""SMS (or app push) through an HTTP gateway: POST JSON {id, to, text}. The notice id is also the
Idempotency-Key header, so a gateway that honours it sends a resent request once."""

from __future__ import annotations

import aiohttp

from services.notify.outcome import DeliveryError, http_error


async def send(session: aiohttp.ClientSession, url: str, token: str, *, notice_id: str, to: str, text: str,
               timeout_s: float = 15.0) -> None:
    if not url:
        raise DeliveryError("SMS_GATEWAY_URL is not set", permanent=True)
    if not to:
        raise DeliveryError("no phone number for this recipient", permanent=True)
    headers = {"Idempotency-Key": notice_id}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with session.post(url, json={"id": notice_id, "to": to, "text": text}, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status >= 300:
                raise http_error(response.status, await response.text())
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"sms gateway unavailable: {exc!r}") from exc
