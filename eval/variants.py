"""The detect pipeline variants `make eval-video` compares: detect settings (environment
variables, as the detect service reads them) on top of the environment's own, and whether the
camera's detection plan from its scene (the `detection:` block: region of interest, slices)
is used.

Add a variant here when detect gains an option worth its cost (the table shows recall next to
CPU per frame, so each gain is priced). A variant that needs a setting or a plan this detect
does not have is not run by default and refused when asked for: never a silent copy of another.
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass, field

from services.detect.settings import Settings
from services.replay import stack
from services.runtime.settings import env_name


@dataclass(frozen=True)
class Variant:
    about: str
    env: dict[str, str] = field(default_factory=dict)  # settings the variant needs
    # Settings that switch a feature off: left out where detect does not have the feature at all
    # (it is then off anyway).
    off: dict[str, str] = field(default_factory=dict)
    plan: bool = False

    def settings(self) -> dict[str, str]:
        known = _known()
        return {**{k: v for k, v in self.off.items() if k in known}, **self.env}


FINETUNED = Path(__file__).resolve().parents[1] / "models" / "vn_yolox_nano_ft1.onnx"
FINETUNED_NAMES = FINETUNED.with_suffix(".names")

VARIANTS: dict[str, Variant] = {
    "full": Variant("the whole frame at the model's input size; persons and bikes as the model saw them",
                    {"VEHICLE_TILES": "0"}, off={"RIDER_FUSION": "false"}),
    "fusion": Variant("the whole frame; riders fused into their two-wheelers",
                      {"VEHICLE_TILES": "0", "RIDER_FUSION": "true"}),
    "slices+fusion": Variant("the scene's slices over its road; riders fused", {"RIDER_FUSION": "true"}, plan=True),
    "tiles2": Variant("the whole frame and two overlapping vertical strips",
                      {"VEHICLE_TILES": "2"}, off={"RIDER_FUSION": "false"}),
    # The project's own fine-tuned detector (models/README.md): riders are inside its motorcycle
    # boxes already, so no person class and nothing to fuse.
    "finetuned": Variant("the fine-tuned model over the whole frame",
                         {"VEHICLE_TILES": "0", "VEHICLE_MODEL": str(FINETUNED), "VEHICLE_CLASSES_FILE": str(FINETUNED_NAMES),
                          "VEHICLE_KEEP_CLASSES": "motorcycle,bicycle,car,bus,truck"}, off={"RIDER_FUSION": "false"}),
    "finetuned+slices": Variant("the fine-tuned model over the scene's slices",
                                {"VEHICLE_MODEL": str(FINETUNED), "VEHICLE_CLASSES_FILE": str(FINETUNED_NAMES),
                                 "VEHICLE_KEEP_CLASSES": "motorcycle,bicycle,car,bus,truck"},
                                off={"RIDER_FUSION": "false"}, plan=True),
}


class VariantError(Exception):
    pass


def _known() -> set[str]:
    return {env_name(f) for f in Settings.__struct_fields__}


def missing(name: str) -> list[str]:
    variant = VARIANTS[name]
    out = sorted(set(variant.env) - _known())
    if variant.plan and not stack.DETECTION_PLANS:
        out.append("detection plans from the scene")
    return out


def available() -> list[str]:
    return [name for name in VARIANTS if not missing(name)]


def check_variant(name: str) -> None:
    if name not in VARIANTS:
        raise VariantError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    lacking = missing(name)
    if lacking:
        raise VariantError(f"variant {name!r} needs {', '.join(lacking)}, which this detect does not have")
