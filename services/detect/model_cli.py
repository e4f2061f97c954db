"""`roadwatch model add|list|shadow|promote|rollback`: detector models as versioned artefacts.

    roadwatch model add FILE --sha256 HEX --licence TEXT [--name vehicle] [--format yolox]
                        [--classes FILE.names] [--evaluate --video-dir DIR]
    roadwatch model list [--name NAME] [--json]
    roadwatch model shadow NAME VERSION [--every 10]   |   roadwatch model shadow NAME --off
    roadwatch model promote NAME VERSION [--video-dir DIR] [--force --reason TEXT]
    roadwatch model rollback NAME [--reason TEXT]

`promote` compares the candidate's recall and precision at IoU 0.3 on eval/truth with those of
the model detect runs now (the last promoted version, or the MODELS_DIR file the detect settings
name while none is): both must be at least as good, or `--force --reason` records why not. The
promotion itself is the `model.promoted` event in the stream MODELS (no delete, no purge): who,
why, forced or not, and both sets of figures; detect swaps on it. `rollback` promotes the
version in service before the current one, without the truth check (it is the way back).

Figures need eval/ and the clips (a checkout with ../shared): measure them at `add --evaluate`
where those are, and `promote` reuses them when they were measured on the same truth files.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import json
import logging
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from proto.subjects import check_token
from proto.v1.model import ModelFigures
from services.detect import model_store
from services.detect.model_store import ModelCard, StoreError
from services.detect.sessions import ModelError
from services.detect.settings import Settings
from services.detect.vehicles import FORMATS, VehicleDetector, read_class_names
from services.runtime import bus
from services.runtime.settings import SettingError, parse

EXIT_REFUSED = 1  # promote refused on the figures, nothing to roll back to, a bad file
EXIT_USAGE = 2


class Refused(Exception):
    """What the operator asked for cannot be done; the message says why."""


def _who(given: str | None) -> str:
    return given or f"{getpass.getuser()}@{socket.gethostname()}"


def _settings() -> Settings:
    try:
        return parse(Settings, os.environ)
    except SettingError as exc:
        raise Refused(f"invalid detect setting {exc.variable}: {exc.reason}") from None


def _name(value: str) -> str:
    try:
        return check_token(value, "model name")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sha(value: str) -> str:
    value = value.lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"must be 64 hex digits, got {value!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roadwatch model", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="NATS_URL (or --nats-url) names the server; detect's settings (MODELS_DIR, "
                                       "VEHICLE_MODEL, ...) name the file in service while nothing is promoted.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
                        help="NATS server (default NATS_URL, else nats://127.0.0.1:4222)")
    verbs = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    verbs.add_parser = functools.partial(verbs.add_parser, parents=[common])  # type: ignore[method-assign]
    on_name = argparse.ArgumentParser(add_help=False)  # NAME, the model that shadow, promote and rollback act on
    on_name.add_argument("name", type=_name, metavar="NAME")

    def who(sub: argparse.ArgumentParser, why: str | None = None) -> None:
        """--reason (when the action takes one, with its help) and --by, recorded with the action."""
        if why is not None:
            sub.add_argument("--reason", default="", help=why)
        sub.add_argument("--by", help="who (default user@host)")

    def figures_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--video-dir", type=Path, metavar="DIR",
                         help="the clips of the truth files (../shared/data/video); needed to measure figures")
        sub.add_argument("--truth", action="append", default=[], metavar="FILE",
                         help="truth file to score on (repeatable; default every file in eval/truth)")

    add = verbs.add_parser("add", help="store a model file as the next version of NAME",
                           description="Store an ONNX file as the next version of its name, with its model card. "
                                       "The file must have the SHA-256 given (from its source or model card) and "
                                       "run as the format and classes given.")
    add.add_argument("file", type=Path, metavar="FILE")
    add.add_argument("--sha256", type=_sha, required=True, help="the SHA-256 the file must have (refused otherwise)")
    add.add_argument("--licence", required=True, help="the model's licence, e.g. Apache-2.0")
    add.add_argument("--name", type=_name, default="vehicle", help="the model slot (default vehicle: detect's MODEL_NAME)")
    add.add_argument("--format", choices=FORMATS, default="yolox", help="output format (default yolox)")
    add.add_argument("--classes", type=Path, metavar="FILE",
                     help="class names, one per line, in output order (default FILE with .names, else coco.names "
                          "in MODELS_DIR)")
    add.add_argument("--input-size", type=int, default=640, help="input size for a model with a dynamic input")
    add.add_argument("--notes", default="", help="a line for the card (what it was trained on, its model card)")
    add.add_argument("--by", help="who adds it (default user@host)")
    add.add_argument("--evaluate", action="store_true", help="measure recall and precision on the truth and keep them")
    figures_options(add)

    ls = verbs.add_parser("list", help="the versions in the bucket, which is live and which in shadow",
                          description="Every version in the bucket with its card; `live` marks the version in "
                                      "service, `shadow` the candidate.")
    ls.add_argument("--name", type=_name, help="only this model name")
    ls.add_argument("--json", action="store_true", help="one JSON object per version")

    sh = verbs.add_parser("shadow", help="run a version beside the live one on 1 frame in N (metrics only)",
                          description="Run VERSION beside the live model on 1 frame in EVERY; detect exports the "
                                      "agreement and per-class count differences, and publishes nothing of it.",
                          parents=[common, on_name])
    sh.add_argument("version", type=int, nargs="?", metavar="VERSION")
    sh.add_argument("--every", type=int, default=10, help="1 frame in EVERY (default 10)")
    sh.add_argument("--off", action="store_true", help="stop the shadow run")
    who(sh)

    pr = verbs.add_parser("promote", help="put a version into service (refused when its figures are worse)",
                          description="Put VERSION into service: refused unless its recall and precision at IoU 0.3 "
                                      "on the truth are at least those of the model in service, or --force with "
                                      "--reason (recorded in the model.promoted event).",
                          parents=[common, on_name])
    pr.add_argument("version", type=int, metavar="VERSION")
    pr.add_argument("--force", action="store_true", help="promote although its figures are worse (needs --reason)")
    who(pr, why="why; required with --force")
    figures_options(pr)

    rb = verbs.add_parser("rollback", help="return to the version in service before the current one",
                          description="Promote again the version that was in service before the current one "
                                      "(repeatable: each rollback steps back once more). No truth check.",
                          parents=[common, on_name])
    who(rb, why="why (recorded)")
    return p


# --- figures --------------------------------------------------------------------------------------------
class Measure:
    """Measures models on one set of truth frames, decoding the clips once."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        try:
            from eval import model_figures  # noqa: PLC0415 - a checkout with eval/ only
        except ImportError:
            raise Refused("measuring figures needs eval/ (a roadwatch checkout) and the clips") from None
        self.mf = model_figures
        self.settings = settings
        self.paths = model_figures.truth_paths(args.truth)
        self.truth = model_figures.truth_digest(self.paths, model_figures.measuring(settings))
        self.video_dir: Path | None = args.video_dir
        self._frames = None

    def frames(self):
        if self._frames is None:
            if self.video_dir is None:
                raise Refused("figures on this truth are missing: give --video-dir (the clips, ../shared/data/video) "
                              "to measure them")
            from eval.truth_files import TruthError  # noqa: PLC0415

            try:
                self._frames = self.mf.labelled_frames(self.paths, self.video_dir)
            except TruthError as exc:
                raise Refused(str(exc)) from None
        return self._frames

    def detector(self, detector: VehicleDetector) -> ModelFigures:
        return self.mf.figures(self.mf.whole_frame(detector, self.settings), self.frames(), self.truth)


def _detector(path: Path, fmt: str, classes: list[str], input_size: tuple[int, int], settings: Settings,
              sha256: str = "") -> VehicleDetector:
    return VehicleDetector(path, fmt, classes, conf=settings.vehicle_conf, iou=settings.vehicle_iou or None,
                           intra_op_threads=settings.intra_op_threads, input_size=input_size, sha256=sha256,
                           tiles=settings.vehicle_tiles)


# --- actions ---------------------------------------------------------------------------------------------
async def do_add(js, args: argparse.Namespace) -> int:
    settings = _settings()
    if not args.file.is_file():
        raise Refused(f"{args.file} is not a file")
    data = args.file.read_bytes()
    actual = model_store.sha256_hex(data)
    if actual != args.sha256:
        raise Refused(f"{args.file} has SHA-256 {actual}, not {args.sha256}: refused (a damaged or different file)")
    names_file = args.classes or (args.file.with_suffix(".names") if args.file.with_suffix(".names").is_file()
                                  else settings.model_path("coco.names"))
    try:
        classes = read_class_names(names_file)
        detector = _detector(args.file, args.format, classes, (args.input_size, args.input_size), settings, actual)
    except ModelError as exc:
        raise Refused(f"refused: {exc}") from None
    figures = Measure(args, settings).detector(detector) if args.evaluate else None
    card = ModelCard(name=args.name, version=0, format=args.format, classes=classes, input_size=detector.size,
                     sha256=actual, size=len(data), licence=args.licence, source=args.file.name,
                     added_at=datetime.now(timezone.utc), added_by=_who(args.by), notes=args.notes, figures=figures)
    stored = await model_store.add(js, data, card)
    print(f"added {stored.label}: {stored.source}, {stored.format}, {len(stored.classes)} classes "
          f"({', '.join(stored.classes[:8])}{'...' if len(stored.classes) > 8 else ''}), input {stored.input_size[0]}x"
          f"{stored.input_size[1]}, sha256 {stored.sha256}" + (f", {_fig(figures)}" if figures else ""))
    return 0


def _fig(f: ModelFigures | None) -> str:
    if f is None:
        return "no figures"
    return f"recall {100 * f.recall:.1f} % precision {100 * f.precision:.1f} % at IoU {f.iou} ({f.frames} frames, {f.vehicles} vehicles)"


async def do_list(js, args: argparse.Namespace) -> int:
    found = await model_store.cards(js, args.name)
    live: dict[str, int] = {}
    shadows: dict[str, int] = {}
    for name in sorted({c.name for c in found}):
        event = await model_store.live(js, name)
        if event is not None:
            live[name] = event.version
        wanted = await model_store.shadow(js, name)
        if wanted is not None:
            shadows[name] = wanted.version
    for c in found:
        state = [s for s, table in (("live", live), ("shadow", shadows)) if table.get(c.name) == c.version]
        if args.json:
            print(json.dumps({**msgspec.to_builtins(c), "state": state}, ensure_ascii=False))
        else:
            print(f"{c.label:<16} {','.join(state) or '-':<7} {c.format:<7} {c.input_size[0]}x{c.input_size[1]} "
                  f"{len(c.classes):>2} classes  {c.sha256[:12]}  {c.size:>9} B  {c.licence:<12} {_fig(c.figures)}  "
                  f"added {c.added_at:%Y-%m-%d %H:%M} by {c.added_by}  {c.source}")
    if not found and not args.json:
        print("no models in the bucket: detect runs the MODELS_DIR file")
    return 0


async def do_shadow(js, args: argparse.Namespace) -> int:
    if args.off:
        await model_store.set_shadow(js, args.name, None)
        print(f"shadow of {args.name} off")
        return 0
    if args.version is None:
        raise Refused("give VERSION (or --off)")
    if args.every < 1:
        raise Refused("--every must be at least 1")
    found = await model_store.card(js, args.name, args.version)
    await model_store.set_shadow(js, args.name, model_store.Shadow(version=found.version, every=args.every,
                                                                    by=_who(args.by), at=datetime.now(timezone.utc)))
    print(f"{found.label} in shadow on 1 frame in {args.every}: see roadwatch_detect_shadow_* on detect's /metrics")
    return 0


async def do_promote(js, args: argparse.Namespace) -> int:
    if args.force and not args.reason.strip():
        raise Refused("--force needs --reason: why this model goes into service although its figures are worse")
    settings = _settings()
    candidate = await model_store.card(js, args.name, args.version)
    current = await model_store.live(js, args.name)
    if current is not None and current.version == candidate.version:
        raise Refused(f"{candidate.label} is already in service")
    measure = Measure(args, settings)
    # The candidate's figures, measured on this truth.
    if candidate.figures is not None and candidate.figures.truth == measure.truth:
        new = candidate.figures
    else:
        _, data = await model_store.fetch(js, candidate.name, candidate.version)
        new = _measure_bytes(measure, candidate, data, settings)
    # The model in service: the last promoted version, or the MODELS_DIR file.
    if current is not None:
        running = await model_store.card(js, args.name, current.version)
        what = running.label
        if running.figures is not None and running.figures.truth == measure.truth:
            old = running.figures
        else:
            _, data = await model_store.fetch(js, running.name, running.version)
            old = _measure_bytes(measure, running, data, settings)
    else:
        what = f"the MODELS_DIR file {settings.model_path(settings.vehicle_model)}"
        try:
            names = read_class_names(settings.model_path(settings.vehicle_classes_file))
            old = measure.detector(_detector(settings.model_path(settings.vehicle_model), settings.vehicle_format, names,
                                             (settings.vehicle_input_size,) * 2, settings, settings.vehicle_model_sha256))  # type: ignore[arg-type]
        except ModelError as exc:
            raise Refused(f"cannot measure the model in service ({what}): {exc}") from None
    print(f"in service: {what}: {_fig(old)}")
    print(f"candidate:  {candidate.label}: {_fig(new)}")
    worse = [f"{label} {100 * getattr(new, key):.1f} % < {100 * getattr(old, key):.1f} %"
             for key, label in (("recall", "recall"), ("precision", "precision")) if getattr(new, key) < getattr(old, key)]
    if worse and not args.force:
        print(f"roadwatch model: promote refused: {candidate.label} is worse than {what} on the truth "
              f"({'; '.join(worse)}); --force --reason \"...\" to promote it anyway", file=sys.stderr)
        return EXIT_REFUSED
    event = model_store.promotion(candidate, action="promote", previous=current.version if current else None,
                                  by=_who(args.by), reason=args.reason.strip(), forced=bool(worse),
                                  figures=new, previous_figures=old)
    await model_store.publish(js, event)
    wanted = await model_store.shadow(js, args.name)
    if wanted is not None and wanted.version == candidate.version:
        await model_store.set_shadow(js, args.name, None)  # it is live now: nothing to compare it with
    print(f"promoted {candidate.label}" + (f" (FORCED: {'; '.join(worse)}; reason: {event.reason})" if worse else "")
          + f"; event {event.id}")
    return 0


def _measure_bytes(measure: Measure, found: ModelCard, data: bytes, settings: Settings) -> ModelFigures:
    from services.detect.live_model import detector_from_card  # noqa: PLC0415

    try:
        return measure.detector(detector_from_card(found, data, settings))
    except ModelError as exc:
        raise Refused(f"{found.label} does not load: {exc}") from None


async def do_rollback(js, args: argparse.Namespace) -> int:
    events = await model_store.history(js, args.name)
    stack = model_store.in_service_stack(events)
    if len(stack) < 2:
        raise Refused(f"nothing to roll back to: {args.name} has "
                      + (f"only {args.name}@{stack[0]} promoted (promote another version instead)" if stack
                         else "no promotion (detect runs the MODELS_DIR file)"))
    current, target = stack[-1], stack[-2]
    found = await model_store.card(js, args.name, target)
    event = model_store.promotion(found, action="rollback", previous=current, by=_who(args.by),
                                  reason=args.reason.strip(), figures=found.figures)
    await model_store.publish(js, event)
    print(f"rolled back {args.name}@{current} -> {found.label}; event {event.id}")
    return 0


ACTIONS = {"add": do_add, "list": do_list, "shadow": do_shadow, "promote": do_promote, "rollback": do_rollback}


async def _main(args: argparse.Namespace) -> int:
    nc = await bus.connect(args.nats_url, "model", connect_timeout_s=5.0)
    try:
        return await ACTIONS[args.action](nc.jetstream(), args)
    finally:
        await nc.drain()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("services.runtime.bus").setLevel(logging.ERROR)  # "nats disconnected" at the end is no news
    try:
        return asyncio.run(_main(args))
    except (Refused, StoreError) as exc:
        print(f"roadwatch model: {exc}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
