"""The OpenAPI 3.1 document of the JSON API, built from the same msgspec types the handlers
return, so that the document cannot drift from the code (schemathesis checks it against a
running portal)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from services.portal import access, cases

_TYPES = [access.Me, access.CaseList, access.CaseView, access.PublicLookup, access.ReviewRequest,
          access.MergeRequest, access.NotDuplicateRequest, access.ResolveRequest, access.AppealRequest, access.AppealResult, access.DecisionResult, access.RejectReasonView, access.ViolationStat,
          access.CountStat, access.CameraView, access.HoldView, access.AuditView, access.Problem,
          access.BoardSnapshot, access.IncidentView, access.IncidentNote]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad request", 401: "No or unknown bearer token", 403: "Role not allowed", 404: "Not found",
            409: "Not allowed in the case's state", 413: "Body too large", 429: "Rate limit", 502: "Evidence corrupt"}
    return {str(c): _json(_ref("Problem"), text[c]) for c in codes}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


SHA = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
DATE = {"type": "string", "format": "date"}
PERIOD = [_query("from", DATE, "first local day (default: 29 days before `to`)"),
          _query("to", DATE, "last local day, included (default: today)")]
FORMAT = _query("format", {"type": "string", "enum": ["json", "csv"], "default": "json"}, "json or csv")
SECURED = [{"bearer": []}]
IMAGE = {"description": "The evidence image, checked against its SHA-256",
         "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}


PUBLIC_IMAGE = {"description": "A JPEG derived from the evidence image (bystanders blurred); the original stays "
                               "with the police", "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}


def _table(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {
        "application/json": {"schema": _array(name)}, "text/csv": {"schema": {"type": "string"}}}}


def _commands(prefix: str, parameter: dict[str, Any], commands: dict[str, tuple[str, str, str]]) -> dict[str, Any]:
    """The POSTs `prefix/<command>` on one case or incident, each (summary, body, result): taking a
    JSON `body`, answering `result`; refused by role, state or size like the others."""
    return {f"{prefix}/{command}": {"post": {
        "summary": summary, "security": SECURED, "parameters": [parameter],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
        "responses": {"200": _json(_ref(result)), **_errors(400, 401, 403, 404, 409, 413)}}}
        for command, (summary, body, result) in commands.items()}


def document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_TYPES, ref_template="#/components/schemas/{name}")
    case_id = _path("case_id", {"type": "string", "maxLength": 64})
    incident_id = _path("incident_id", {"type": "string", "maxLength": 128})
    paths: dict[str, Any] = {
        "/api/me": {"get": {"summary": "The caller's user, agency, role and permissions", "security": SECURED,
                            "responses": {"200": _json(_ref("Me")), **_errors(401)}}},
        "/api/cases": {"get": {
            "summary": "Cases the caller may see (commune police: their communes' owners); no owner data",
            "security": SECURED,
            "parameters": [
                _query("state", {"type": "array", "items": {"type": "string", "enum": list(cases.STATES)}},
                       "filter by state (repeatable)"),
                _query("plate", {"type": "string", "maxLength": 20}, "plate, any spelling"),
                _query("camera", {"type": "string", "maxLength": 64}, "camera id"),
                _query("order", {"type": "string", "enum": ["newest", "oldest"]}, "oldest first: the review queue"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "page size"),
                _query("offset", {"type": "integer", "minimum": 0, "maximum": 10000000, "default": 0}, "skip"),
            ],
            "responses": {"200": _json(_ref("CaseList")), **_errors(400, 401, 403)}}},
        "/api/cases/{case_id}": {"get": {
            "summary": "One case; owner data for police and commune police (each read is audited)",
            "security": SECURED,
            "parameters": [case_id, _query("purpose", {"type": "string", "maxLength": 200}, "why (audit log)")],
            "responses": {"200": _json(_ref("CaseView")), **_errors(400, 401, 403, 404)}}},
        "/api/cases/{case_id}/evidence/{sha256}": {"get": {
            "summary": "An evidence image of the case, from the object store, SHA-256 checked; audited",
            "security": SECURED,
            "parameters": [case_id, _path("sha256", SHA), _query("purpose", {"type": "string", "maxLength": 200},
                                                                 "why (audit log)")],
            "responses": {"200": IMAGE, **_errors(400, 401, 403, 404, 502)}}},
        **_commands("/api/cases/{case_id}", case_id, {
            "review": ("Police: confirm (optionally correcting the plate; a plate of another format than "
                       "the vehicle class's needs plate_override_reason, a possible duplicate not_duplicate) "
                       "or reject with a listed reason", "ReviewRequest", "DecisionResult"),
            "merge": ("Police: merge a case into the open case of the same event (final; audited)",
                      "MergeRequest", "DecisionResult"),
            "not-duplicate": ("Police: a confirmed case notify holds as a possible duplicate is another event: "
                              "send it (audited)", "NotDuplicateRequest", "DecisionResult"),
            "resolve": ("Police: the case is resolved (fine paid, cancelled, appeal upheld)",
                        "ResolveRequest", "DecisionResult"),
            "appeal": ("Police: record the owner's appeal (khiếu nại) against a confirmed or notified case "
                       "(audited); while it is open the case is left out of dataset exports",
                       "AppealRequest", "AppealResult"),
        }),
        "/api/dataset/export": {"get": {
            "summary": "Police: cases reviewed since a date as training data (zip: frames with the confirmed vehicle's "
                       "box in YOLO format, plate crops with the confirmed text, manifest with SHA-256); audited "
                       "with its purpose; cases under appeal are left out",
            "security": SECURED,
            "parameters": [
                _query("since", {"type": "string", "format": "date"}, "first review date (portal's local date)", True),
                _query("purpose", {"type": "string", "minLength": 10, "maxLength": 500}, "why (audited)", True)],
            "responses": {"200": {"description": "the dataset",
                                  "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                          **_errors(400, 401, 403)}}},
        "/api/reject-reasons": {"get": {"summary": "Reasons an officer may give to reject a case", "security": SECURED,
                                        "responses": {"200": _json(_array("RejectReasonView")), **_errors(401)}}},
        "/api/public/lookup": {"get": {
            "summary": "Public lookup by plate: open violations, no owner data; rate-limited per client",
            "parameters": [_query("plate", {"type": "string", "minLength": 1, "maxLength": 20}, "plate", True)],
            "responses": {"200": _json(_ref("PublicLookup")), **_errors(400, 429)}}},
        "/api/public/cases/{case_id}/evidence/{sha256}": {"get": {
            "summary": "The public copy of an evidence image of an open case: the violating vehicle and its plate, "
                       "everything else blurred (X-Evidence-Derived-From names the original); audited",
            "parameters": [case_id, _path("sha256", SHA)],
            "responses": {"200": PUBLIC_IMAGE, **_errors(400, 404, 502)}}},
        "/api/stats/violations": {"get": {
            "summary": "Violations by type, camera or local day", "security": SECURED,
            "parameters": [_query("group", {"type": "string", "enum": ["type", "camera", "day"], "default": "type"},
                                  "grouping"), *PERIOD, FORMAT],
            "responses": {"200": _table("ViolationStat", "Counts"), **_errors(400, 401, 403)}}},
        "/api/stats/counts": {"get": {
            "summary": "Traffic counts by camera, local day and vehicle class", "security": SECURED,
            "parameters": [*PERIOD, FORMAT], "responses": {"200": _table("CountStat", "Counts"), **_errors(400, 401, 403)}}},
        "/api/stats/cameras": {"get": {
            "summary": "Camera health (latest status per camera)", "security": SECURED, "parameters": [FORMAT],
            "responses": {"200": _table("CameraView", "Cameras"), **_errors(400, 401, 403)}}},
        "/api/inspection-holds": {"get": {
            "summary": "Vehicles with a pending inspection warning (no owner data)", "security": SECURED,
            "parameters": [FORMAT], "responses": {"200": _table("HoldView", "Holds"), **_errors(400, 401, 403)}}},
        "/api/audit": {"get": {
            "summary": "Police: the latest audit rows", "security": SECURED,
            "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "rows")],
            "responses": {"200": _json(_array("AuditView")), **_errors(400, 401, 403)}}},
        # The board's live stream, GET /api/board/events (text/event-stream: `snapshot`, then
        # `incident` and `camera` events carrying the BoardSnapshot, IncidentView and CameraTile
        # below), is left out of this document: it never ends, which request-response tools
        # cannot check. The README describes it.
        "/api/board": {"get": {
            "summary": "The operations board: camera tiles (health, signal phases, frame URL for the roles that may "
                       "see camera images) and the open incidents",
            "security": SECURED, "responses": {"200": _json(_ref("BoardSnapshot")), **_errors(401, 403)}}},
        "/api/incidents": {"get": {
            "summary": "Incidents: open (not closed by an operator) or all, newest first", "security": SECURED,
            "parameters": [_query("state", {"type": "string", "enum": ["open", "all"], "default": "open"}, "which"),
                           _query("camera", {"type": "string", "maxLength": 64}, "camera id"),
                           _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200}, "rows")],
            "responses": {"200": _json(_array("IncidentView")), **_errors(400, 401, 403)}}},
        "/api/incidents/{incident_id}": {"get": {
            "summary": "One incident", "security": SECURED, "parameters": [incident_id],
            "responses": {"200": _json(_ref("IncidentView")), **_errors(400, 401, 403, 404)}}},
        "/api/incidents/{incident_id}/evidence/{sha256}": {"get": {
            "summary": "An evidence image of an incident, SHA-256 checked; audited", "security": SECURED,
            "parameters": [incident_id, _path("sha256", SHA)],
            "responses": {"200": IMAGE, **_errors(400, 401, 403, 404, 502)}}},
        **_commands("/api/incidents/{incident_id}", incident_id, {
            "acknowledge": ("Operations centre, transport: take the incident on, with an optional note (audited; "
                            "the first acknowledgement stands)", "IncidentNote", "IncidentView"),
            "close": ("Operations centre, transport: close the incident with a note saying what was done "
                      "(required; audited)", "IncidentNote", "IncidentView"),
        }),
        "/api/cameras/{camera_id}/frame": {"get": {
            "summary": "The camera's newest frame from FRAMES (police, operations centre); ETag is its stream "
                       "sequence: If-None-Match answers 304 until a newer frame comes; watching is audited once per "
                       "camera and period",
            "security": SECURED, "parameters": [_path("camera_id", {"type": "string", "maxLength": 64})],
            "responses": {"200": {"description": "The newest frame", "content": {"image/jpeg": {
                "schema": {"type": "string", "format": "binary"}}}},
                "304": {"description": "No newer frame than the one named by If-None-Match"},
                **_errors(400, 401, 403, 404)}}},
        "/api/reports/summary.pdf": {"get": {
            "summary": "The coordination report (sơ kết) of the caller's agency for the period, PDF", "security": SECURED,
            "parameters": PERIOD,
            "responses": {"200": {"description": "PDF", "content": {"application/pdf": {
                "schema": {"type": "string", "format": "binary"}}}}, **_errors(400, 401, 403)}}},
        "/api/reports/summary.csv": {"get": {
            "summary": "The same report as CSV: one figure per row (section, key, subkey, label, measure, value)",
            "security": SECURED, "parameters": PERIOD,
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {
                "schema": {"type": "string"}}}}, **_errors(400, 401, 403)}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "roadwatch portal", "version": "1.0.0",
                 "description": "Cases of camera-detected traffic violations shared by the police, the operations "
                                "centre and the transport department; public lookup by plate."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


async def serve_document(_: web.Request) -> web.Response:
    return web.json_response(document())


def routes() -> list[web.RouteDef]:
    return [web.get("/api/openapi.json", serve_document)]
