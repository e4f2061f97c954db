"""A detector model put into service (or taken back out) by `roadwatch model promote|rollback`.

The event is the promoted pointer and its history at once: the last message on
`traffic.model.promoted.v1.<name>` names the version detect must run, and the stream MODELS
keeps every promotion and rollback (no delete, no purge), with who did it, why, whether the
truth check was overridden, and the figures it was judged on.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.v1.common import EventId, Timestamp

Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]
ModelName = Annotated[str, Meta(pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$", max_length=64,
                                description="The model slot detect loads, e.g. vehicle")]


class ModelFigures(msgspec.Struct, frozen=True, kw_only=True):
    """Vehicle recall and precision on the person-checked truth (eval/truth), class-agnostic,
    at one IoU threshold (0.3), as `roadwatch model add --evaluate` or `promote` measured them."""

    recall: Annotated[float, Meta(ge=0.0, le=1.0)]
    precision: Annotated[float, Meta(ge=0.0, le=1.0)]
    iou: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.3
    frames: Annotated[int, Meta(ge=0)]  # labelled frames scored
    vehicles: Annotated[int, Meta(ge=0)]  # truth vehicles (not difficult) in them
    truth: str  # SHA-256 over the truth files scored and the settings used: figures are compared like for like


class ModelPromoted(msgspec.Struct, frozen=True, kw_only=True):
    id: EventId
    occurred_at: Timestamp
    name: ModelName
    version: Annotated[int, Meta(ge=1)]  # the version detect must run from now on
    sha256: Sha256Hex  # of the ONNX file in the object store bucket `models`
    action: Literal["promote", "rollback"]
    previous_version: Annotated[int, Meta(ge=1)] | None = None  # the version it replaces (None: the MODELS_DIR file)
    forced: bool = False  # promoted although its figures are below the replaced version's
    by: Annotated[str, Meta(min_length=1, max_length=128)]  # who: the operator (user@host unless --by says)
    reason: str = ""  # why; required when forced
    figures: ModelFigures | None = None  # the promoted version's
    previous_figures: ModelFigures | None = None  # the replaced version's, on the same truth
