"""How a delivery attempt ended, as every transport reports it."""

from __future__ import annotations


class DeliveryError(Exception):
    """A send that did not go through. `permanent`: retrying cannot help (a refused address, a
    recipient with no address); otherwise the notice is retried with backoff."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def http_error(status: int, text: str) -> DeliveryError:
    """4xx other than timeouts and rate limits will fail again; 5xx, 408 and 429 may not."""
    permanent = 400 <= status < 500 and status not in (408, 425, 429)
    return DeliveryError(f"answered {status}: {text[:200]}", permanent=permanent)
