"""The detect pipeline variants `make eval-video` compares: name -> detect settings (environment
variables, as the detect service reads them) on top of the environment's own.

Add a variant here when detect gains an option worth its cost (the table shows recall next to
CPU per frame, so each gain is priced). A variant naming a setting that detect does not have is
an error, not a silent copy of another variant.
"""

from __future__ import annotations

from services.detect.settings import Settings
from services.runtime.settings import env_name

VARIANTS: dict[str, dict[str, str]] = {
    # The whole frame at the model's input size: the cheap path, and detect's default.
    "full": {"VEHICLE_TILES": "0"},
    # The whole frame plus two overlapping vertical strips (VEHICLE_TILES=2).
    "tiles2": {"VEHICLE_TILES": "2"},
}


class VariantError(Exception):
    pass


def check_variant(name: str) -> None:
    if name not in VARIANTS:
        raise VariantError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    known = {env_name(field) for field in Settings.__struct_fields__}
    unknown = sorted(set(VARIANTS[name]) - known)
    if unknown:
        raise VariantError(f"variant {name!r} sets {', '.join(unknown)}, which this detect service does not read")
