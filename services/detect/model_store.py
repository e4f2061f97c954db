"""Detector models as versioned artefacts on the bus: what `roadwatch model` writes and detect reads.

- The object store bucket `models` holds each version's ONNX file as the object
  `<name>/<version>`; its description is the model card (ModelCard as JSON: format, classes,
  input size, SHA-256, licence, figures on the truth), readable with any NATS client. Versions
  are numbered 1, 2, 3... per name in the order they are added, and never overwritten.
- The version in service is the last `model.promoted` event of the name (stream MODELS, which
  keeps every promotion and rollback: the history and its audit). No separate pointer that could
  disagree with the record.
- The candidate in shadow is the key `<name>` of the key-value bucket `model_shadow`: its
  version and how often (1 frame in `every`) detect runs it beside the live model.

The name is the model slot detect loads (`MODEL_NAME`, default `vehicle`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import msgspec
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from proto import codec, ids, streams, subjects
from proto.v1.model import ModelFigures, ModelPromoted
from services.runtime import bus

BUCKET = "models"
SHADOW_BUCKET = "model_shadow"


class StoreError(Exception):
    """A model, version or promotion that is not there, or a file that is not what its card says."""


class ModelCard(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    format: str  # vehicles.FORMATS: the decoder, letterbox and normalisation detect uses
    classes: list[str]  # in model output order
    input_size: tuple[int, int]  # height, width the model is run at
    sha256: str
    size: int
    licence: str
    source: str = ""  # the file it was added from (name only)
    added_at: datetime
    added_by: str
    notes: str = ""
    figures: ModelFigures | None = None  # on eval/truth, when added with --evaluate

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class Shadow(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    every: int  # detect runs the candidate on 1 frame in `every`
    by: str = ""
    at: datetime | None = None


def object_name(name: str, version: int) -> str:
    return f"{name}/{version}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- buckets --------------------------------------------------------------------------------------
async def store(js: JetStreamContext, *, create: bool = False) -> ObjectStore | None:
    """The `models` bucket; None when it does not exist and `create` is false."""
    try:
        return await js.object_store(BUCKET)
    except nats.js.errors.BucketNotFoundError:
        if not create:
            return None
    return await js.create_object_store(BUCKET, config=api.ObjectStoreConfig(
        description="roadwatch detector models: <name>/<version>, the model card in the description",
        storage=api.StorageType.FILE))


async def shadow_bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(SHADOW_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(api.KeyValueConfig(
            bucket=SHADOW_BUCKET, description="roadwatch: the model version detect runs in shadow, per name",
            history=16, storage=api.StorageType.FILE))


# --- cards and files --------------------------------------------------------------------------------
def card_of(info: api.ObjectInfo) -> ModelCard | None:
    if info.deleted or not info.description:
        return None
    try:
        return msgspec.json.decode(info.description.encode(), type=ModelCard)
    except msgspec.DecodeError:
        return None  # another tool's object in the bucket: not a model


async def cards(js: JetStreamContext, name: str | None = None) -> list[ModelCard]:
    """Every model version in the bucket (of one name), by name then version."""
    bucket = await store(js)
    if bucket is None:
        return []
    try:
        infos = await bucket.list(ignore_deletes=True)
    except nats.js.errors.NotFoundError:  # an empty bucket
        return []
    found = [card for card in map(card_of, infos) if card is not None and (name is None or card.name == name)]
    return sorted(found, key=lambda c: (c.name, c.version))


async def card(js: JetStreamContext, name: str, version: int) -> ModelCard:
    for found in await cards(js, name):
        if found.version == version:
            return found
    raise StoreError(f"no model {name}@{version} in the bucket {BUCKET!r}")


async def add(js: JetStreamContext, data: bytes, card: ModelCard) -> ModelCard:
    """Store a new version (its number is the next of its name) with its card."""
    bucket = await store(js, create=True)
    assert bucket is not None
    existing = await cards(js, card.name)
    version = (existing[-1].version if existing else 0) + 1
    if sha256_hex(data) != card.sha256:
        raise StoreError(f"the data has SHA-256 {sha256_hex(data)}, the card says {card.sha256}")
    stored = msgspec.structs.replace(card, version=version, size=len(data))
    await bucket.put(object_name(card.name, version), data, meta=api.ObjectMeta(
        name=object_name(card.name, version), description=msgspec.json.encode(stored).decode()))
    return stored


async def fetch(js: JetStreamContext, name: str, version: int) -> tuple[ModelCard, bytes]:
    """A version's card and file, the file checked against the card's SHA-256 (StoreError otherwise)."""
    bucket = await store(js)
    if bucket is None:
        raise StoreError(f"there is no bucket {BUCKET!r}: no model has been added")
    try:
        result = await bucket.get(object_name(name, version))
    except nats.js.errors.ObjectNotFoundError:
        raise StoreError(f"no model {name}@{version} in the bucket {BUCKET!r}") from None
    found = card_of(result.info)
    if found is None:
        raise StoreError(f"{object_name(name, version)} in {BUCKET!r} has no model card")
    data = result.data or b""
    if sha256_hex(data) != found.sha256:
        raise StoreError(f"{found.label}: the stored file has SHA-256 {sha256_hex(data)}, its card says {found.sha256}")
    return found, data


# --- promotions --------------------------------------------------------------------------------------
async def ensure_stream(js: JetStreamContext) -> None:
    await bus.ensure_streams(js, [streams.MODELS])


async def live(js: JetStreamContext, name: str) -> ModelPromoted | None:
    """The last promotion (or rollback) of `name`: the version detect must run; None: none yet."""
    try:
        raw = await js.get_last_msg(streams.MODELS.name, subjects.model_promoted(name))
    except nats.js.errors.NotFoundError:
        return None
    return codec.decode(raw.data or b"", ModelPromoted)


async def history(js: JetStreamContext, name: str) -> list[ModelPromoted]:
    """Every promotion and rollback of `name`, oldest first."""
    out: list[ModelPromoted] = []
    last = await live(js, name)
    if last is None:
        return out
    sub = await js.subscribe(subjects.model_promoted(name), stream=streams.MODELS.name, ordered_consumer=True,
                             deliver_policy=api.DeliverPolicy.ALL)
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            event = codec.decode(msg.data, ModelPromoted)
            out.append(event)
            if event.id == last.id:
                return out
    finally:
        await sub.unsubscribe()


def in_service_stack(events: list[ModelPromoted]) -> list[int]:
    """The versions a rollback walks back through: a promotion pushes, a rollback pops."""
    stack: list[int] = []
    for event in events:
        if event.action == "rollback" and stack:
            stack.pop()
            if not stack or stack[-1] != event.version:
                stack.append(event.version)
        else:
            stack.append(event.version)
    return stack


def promotion(found: ModelCard, *, action: str, previous: int | None, by: str, reason: str = "",
              forced: bool = False, figures: ModelFigures | None = None,
              previous_figures: ModelFigures | None = None, now: datetime | None = None) -> ModelPromoted:
    now = now or datetime.now(timezone.utc)
    return ModelPromoted(
        id=ids.event_id("model-promoted", found.name, found.version, action, now.isoformat()),
        occurred_at=now, name=found.name, version=found.version, sha256=found.sha256, action=action,  # type: ignore[arg-type]
        previous_version=previous, forced=forced, by=by, reason=reason, figures=figures,
        previous_figures=previous_figures)


async def publish(js: JetStreamContext, event: ModelPromoted) -> None:
    await ensure_stream(js)
    await bus.publish(js, subjects.model_promoted(event.name), event, service="model")


# --- shadow -------------------------------------------------------------------------------------------
async def shadow(js: JetStreamContext, name: str) -> Shadow | None:
    kv = await shadow_bucket(js)
    try:
        entry = await kv.get(name)
    except nats.js.errors.KeyNotFoundError:
        return None
    return decode_shadow(entry.value)


def decode_shadow(value: bytes | None) -> Shadow | None:
    """None for a deleted key (shadow off)."""
    if not value:
        return None
    return msgspec.json.decode(value, type=Shadow)


async def set_shadow(js: JetStreamContext, name: str, value: Shadow | None) -> None:
    kv = await shadow_bucket(js)
    if value is None:
        try:
            await kv.delete(name)
        except nats.js.errors.KeyNotFoundError:
            pass
        return
    await kv.put(name, msgspec.json.encode(value))
