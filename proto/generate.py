"""Generate proto/schemas/*.json and proto/asyncapi.yaml from the v1 Structs (`make proto`).

The generated files are committed so that subscribers in other languages can read the contract
without Python; tests/proto/test_generated.py fails when they are stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import msgspec
import yaml

from proto import streams
from proto.v1 import ENDPOINTS, MESSAGES, Endpoint, Message

PROTO_DIR = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\{(\w+)\}")

PARAMETER_HELP = {
    "camera_id": "Camera id: lowercase letters and digits, '-' inside, no dots.",
    "type": "Violation type: red_light, wrong_way, wrong_lane, no_stopping, speeding or no_helmet.",
    "incident_type": "Incident type: stopped_vehicle, pedestrian_on_carriageway, wrong_way_driving or congestion.",
    "decision": "Review decision: confirmed or rejected.",
    "channel": "Delivery channel: email, sms, post, webhook, inspection_registry or commune_police.",
    "intersection_id": "Intersection id, as named in the scene files.",
    "service": "The service that gave up on the message.",
    "model": "Model name: the slot detect loads (vehicle).",
    "chain": "The audit chain: portal (the portal's audit log of reads of personal data and evidence).",
}


BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _float_bounds(node):
    """A number's bounds as floats. `Annotated[float, Meta(gt=0.0)]` and `Meta(gt=0)` are equal, so
    typing's cache may hand either to a Struct depending on which module was imported first; the
    generated files must not depend on import order."""
    if isinstance(node, dict):
        if node.get("type") == "number":
            for key in BOUNDS:
                if isinstance(node.get(key), int):
                    node[key] = float(node[key])
        for value in node.values():
            _float_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _float_bounds(value)
    return node


def message_schema(message: Message) -> dict:
    schema = _float_bounds(msgspec.json.schema(message.type))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://roadwatch.example/proto/v1/{message.name}.json"
    schema["title"] = message.type.__name__
    schema["description"] = message.summary
    return schema


def endpoint_schema(endpoint: Endpoint, part: str) -> dict:
    kind = getattr(endpoint, part)
    schema = _float_bounds(msgspec.json.schema(kind))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://roadwatch.example/proto/v1/{endpoint.name}_{part}.json"
    schema["title"] = kind.__name__
    schema["description"] = f"The {part} of {endpoint.subject}. {endpoint.summary}"
    return schema


def _dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    out = {f"schemas/{message.name}.json": _dump(message_schema(message)) for message in MESSAGES}
    for endpoint in ENDPOINTS:
        for part in ("request", "reply"):
            out[f"schemas/{endpoint.name}_{part}.json"] = _dump(endpoint_schema(endpoint, part))
    return out


def render_asyncapi() -> str:
    _, components = msgspec.json.schema_components(
        [message.type for message in MESSAGES] + [getattr(e, part) for e in ENDPOINTS for part in ("request", "reply")],
        ref_template="#/components/schemas/{name}"
    )
    _float_bounds(components)
    stream_of = {stream.name: stream for stream in streams.ALL}
    channels: dict = {}
    operations: dict = {}
    messages: dict = {}
    for message in MESSAGES:
        ref = {"$ref": f"#/components/schemas/{message.type.__name__}"}
        entry: dict = {
            "name": message.type.__name__,
            "title": message.type.__name__,
            "summary": message.summary,
        }
        if message.name == "frame_captured":
            entry["contentType"] = "image/jpeg"
            entry["headers"] = ref
            entry["payload"] = {"type": "string", "format": "binary", "description": "The JPEG bytes."}
        else:
            entry["contentType"] = "application/json"
            entry["payload"] = ref
        if message.personal_data:
            entry["tags"] = [{"name": "personal-data", "description": "Police account only (DESIGN.md §5)."}]
        messages[message.name] = entry
        stream = stream_of[message.stream]
        channels[message.name] = {
            "address": message.subject,
            "description": f"Kept in stream {stream.name}: {stream.description}",
            "parameters": {
                name: {"description": PARAMETER_HELP[name]} for name in PLACEHOLDER.findall(message.subject)
            },
            "messages": {message.name: {"$ref": f"#/components/messages/{message.name}"}},
        }
        operations[f"receive_{message.name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{message.name}"},
            "summary": f"Subscribe to {message.name.replace('_', ' ')} events.",
            "messages": [{"$ref": f"#/channels/{message.name}/messages/{message.name}"}],
        }
    for endpoint in ENDPOINTS:
        names = {part: f"{endpoint.name}_{part}" for part in ("request", "reply")}
        for part, name in names.items():
            kind = getattr(endpoint, part)
            messages[name] = {"name": kind.__name__, "title": kind.__name__, "contentType": "application/json",
                              "summary": f"The {part} of {endpoint.name.replace('_', ' ')}.",
                              "payload": {"$ref": f"#/components/schemas/{kind.__name__}"}}
        if endpoint.personal_data:
            messages[names["reply"]]["tags"] = [{"name": "personal-data",
                                                 "description": "Police account only (DESIGN.md §5)."}]
        channels[endpoint.name] = {
            "address": endpoint.subject,
            "description": f"Request/reply (nats.micro service `{endpoint.service}`); not kept in a stream. "
                           + endpoint.summary,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names.values()},
        }
        operations[f"send_{endpoint.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{endpoint.name}"},
            "summary": endpoint.summary,
            "messages": [{"$ref": f"#/channels/{endpoint.name}/messages/{names['request']}"}],
            "reply": {
                "address": {"location": "$message.header#/replyTo",
                            "description": "The requester's inbox (NATS request/reply)."},
                "channel": {"$ref": f"#/channels/{endpoint.name}"},
                "messages": [{"$ref": f"#/channels/{endpoint.name}/messages/{names['reply']}"}],
            },
        }
    document = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "roadwatch events",
            "version": "1.0.0",
            "description": (
                "Events of roadwatch on NATS JetStream. Every JSON event carries a deterministic `id`, "
                "also sent as the `Nats-Msg-Id` header, so retries and replays never duplicate. "
                "Generated from proto/v1 by `make proto`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:4222", "protocol": "nats", "description": "`make run` on one machine"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def render_all() -> dict[str, str]:
    return {**render_schemas(), "asyncapi.yaml": render_asyncapi()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in render_all().items():
        path = PROTO_DIR / relative
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(relative)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    known = {PROTO_DIR / relative for relative in render_all()}
    extra = [p.relative_to(PROTO_DIR) for p in (PROTO_DIR / "schemas").glob("*.json") if p not in known]
    if args.check and (stale or extra):
        for name in stale:
            print(f"stale: proto/{name} (run make proto)", file=sys.stderr)
        for name in extra:
            print(f"orphan: proto/{name} (no message of that name)", file=sys.stderr)
        return 1
    if not args.check:
        for path in extra:
            (PROTO_DIR / path).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
