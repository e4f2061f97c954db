"""Generate the monitoring files in deploy/base from their sources, or check that they are current.

    .venv/bin/python deploy/generate.py          # write
    .venv/bin/python deploy/generate.py --check  # exit 1 when a generated file is stale

- deploy/base/prometheusrule.yaml: the PrometheusRule carrying deploy/prometheus/rules.yml's
  groups unchanged (promtool tests the rule file; the operator loads the resource).
- deploy/base/dashboards/*.json: the Grafana dashboards, written here as code. Every query
  uses the metric names the services export (tests/deploy/test_deploy_dashboards.py scrapes
  running services and compares) and `$__rate_interval`, `$namespace`, `$camera`, `$service`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
RULES = DEPLOY / "prometheus" / "rules.yml"
PROMETHEUS_RULE = DEPLOY / "base" / "prometheusrule.yaml"
DASHBOARDS = DEPLOY / "base" / "dashboards"

DS = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"


def sel(metric: str, *matchers: str) -> str:
    """A selector with the dashboard's namespace filter and the given label matchers."""
    return f"{metric}{{{', '.join((NS, *matchers))}}}"


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def ne(label: str, value: str) -> str:
    return f'{label}!="{value}"'


def rate(metric: str, *matchers: str) -> str:
    return f"rate({sel(metric, *matchers)}[{RATE}])"


def quantile(q: float, metric: str, by: str = "", *matchers: str) -> str:
    labels = ", ".join(["le", *([by] if by else [])])
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(metric + '_bucket', *matchers)}))"


# --- panels ---------------------------------------------------------------------------------------
class Board:
    def __init__(self, uid: str, title: str, description: str, variables: list[dict]) -> None:
        self.uid, self.title, self.description, self.variables = uid, title, description, variables
        self.panels: list[dict] = []
        self.x = self.y = 0
        self.row_height = 0

    def _place(self, width: int, height: int) -> dict:
        if self.x + width > 24:
            self.x, self.y = 0, self.y + self.row_height
            self.row_height = 0
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y = 0, self.y + self.row_height
        self.panels.append({"type": "row", "title": title, "collapsed": False, "id": len(self.panels) + 1,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1
        self.row_height = 0

    def panel(self, kind: str, title: str, targets: list[tuple[str, str]], *, unit: str = "short", width: int = 12,
              height: int = 8, description: str = "", options: dict | None = None, instant: bool = False,
              thresholds: list[tuple[float | None, str]] | None = None) -> None:
        steps = [{"color": color, "value": value} for value, color in (thresholds or [(None, "green")])]
        self.panels.append({
            "type": kind,
            "title": title,
            "description": description,
            "id": len(self.panels) + 1,
            "datasource": DS,
            "gridPos": self._place(width, height),
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                 **({"instant": True, "range": False, "format": "table"} if instant else {"range": True})}
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": options or ({"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                    "tooltip": {"mode": "multi", "sort": "desc"}} if kind == "timeseries" else {}),
        })

    def timeseries(self, title: str, *targets: tuple[str, str], **kw) -> None:
        self.panel("timeseries", title, list(targets), **kw)

    def stat(self, title: str, expr: str, **kw) -> None:
        kw.setdefault("width", 6)
        kw.setdefault("height", 4)
        self.panel("stat", title, [(expr, "")], options={"reduceOptions": {"calcs": ["lastNotNull"]},
                                                         "colorMode": "value", "graphMode": "area"}, **kw)

    def table(self, title: str, *targets: tuple[str, str], **kw) -> None:
        self.panel("table", title, list(targets), instant=True, options={"showHeader": True}, **kw)

    def json(self) -> dict:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["roadwatch"],
            "timezone": "browser",
            "editable": False,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["roadwatch"], "asDropdown": True, "title": "roadwatch"}],
            "panels": self.panels,
        }


def datasource_var() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "hide": 0, "current": {}, "options": [], "refresh": 1}


def query_var(name: str, label: str, query: str, *, multi: bool = True) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": name}, "definition": query, "refresh": 2, "sort": 1,
            "multi": multi, "includeAll": True, "allValue": ".*", "hide": 0, "current": {}, "options": []}


NAMESPACE = query_var("namespace", "Namespace", "label_values(roadwatch_messages_total, namespace)", multi=False)


# --- the dashboards -------------------------------------------------------------------------------
def pipeline() -> Board:
    b = Board("roadwatch-pipeline", "roadwatch / pipeline overview",
              "Frames to notices: throughput of each stage, what waits, what fails.", [datasource_var(), NAMESPACE])
    b.row("Now")
    b.stat("Frames published /s", f"sum({rate('roadwatch_ingest_frames_published_total')})", unit="ops")
    b.stat("Frames waiting for detect", f"max({sel('roadwatch_consumer_pending', eq('consumer', 'detect'))})",
           thresholds=[(None, "green"), (200, "orange"), (1000, "red")])
    b.stat("Violations /h", f"sum(increase({sel('roadwatch_track_violations_total')}[1h]))")
    b.stat("Dead letters (1h)", f"sum(increase({sel('roadwatch_dead_letters_total')}[1h]))",
           thresholds=[(None, "green"), (1, "red")])
    b.row("Throughput by stage")
    b.timeseries("Frames: decoded, published, detected",
                 (f"sum({rate('roadwatch_ingest_frames_in_total')})", "decoded (ingest)"),
                 (f"sum({rate('roadwatch_ingest_frames_published_total')})", "published (ingest)"),
                 (f"sum by (result) ({rate('roadwatch_detect_frames_total')})", "detect: {{result}}"),
                 unit="ops")
    b.timeseries("Detections tracked, violations, cases, notices",
                 (f"sum by (outcome) ({rate('roadwatch_track_detections_total')})", "track: {{outcome}}"),
                 (f"sum({rate('roadwatch_track_violations_total')})", "violations"),
                 (f"sum by (state) ({rate('roadwatch_portal_cases_total')})", "cases: {{state}}"),
                 (f"sum by (result) ({rate('roadwatch_notify_notices_total')})", "notices: {{result}}"),
                 unit="ops")
    b.row("Waiting and failing")
    b.timeseries("Messages waiting per durable consumer",
                 (f"max by (service, consumer) ({sel('roadwatch_consumer_pending')})", "{{service}}/{{consumer}}"),
                 description="Pending in the stream for each consumer; detect scales on its own (KEDA).")
    b.timeseries("Consumer results",
                 (f"sum by (service, result) ({rate('roadwatch_messages_total')})", "{{service}}: {{result}}"),
                 unit="ops")
    b.timeseries("Dead letters by service and reason",
                 (f"sum by (service, error) (increase({sel('roadwatch_dead_letters_total')}[{RATE}]))",
                  "{{service}}: {{error}}"))
    b.timeseries("Frames detect drops, per camera",
                 (f"sum by (camera, result) ({rate('roadwatch_detect_camera_frames_total', ne('result', 'detected'))})",
                  "{{camera}}: {{result}}"),
                 unit="ops",
                 description="Stale (older than MAX_FRAME_AGE_S) or superseded (detect behind: each camera keeps "
                             "its newest frames, all cameras alike). Alert: DetectDroppingFrames.")
    b.timeseries("Capture to detection delay",
                 (quantile(0.5, "roadwatch_detect_frame_age_seconds"), "p50"),
                 (quantile(0.95, "roadwatch_detect_frame_age_seconds"), "p95"),
                 unit="s")
    b.timeseries("Events published by result",
                 (f"sum by (service, result) ({rate('roadwatch_published_total')})", "{{service}}: {{result}}"),
                 unit="ops")
    b.timeseries("Replicas answering",
                 (f"count by (job) (up{{{NS}}} == 1)", "{{job}}"))
    return b


def cameras() -> Board:
    cam = 'camera=~"$camera"'
    b = Board("roadwatch-cameras", "roadwatch / cameras",
              "Camera health as ingest sees it, and what each camera produces downstream.",
              [datasource_var(), NAMESPACE,
               query_var("camera", "Camera", "label_values(roadwatch_ingest_camera_state, camera)")])
    b.row("Fleet")
    b.stat("Cameras configured", f"max({sel('roadwatch_ingest_cameras_configured')})")
    b.stat("Cameras read", f"sum({sel('roadwatch_ingest_cameras_leased')})")
    b.stat("Online", f"count(max by (camera) ({sel('roadwatch_ingest_camera_state', eq('state', 'online'))}) == 1)")
    b.stat("Offline", f"count(max by (camera) ({sel('roadwatch_ingest_camera_state', eq('state', 'offline'))}) == 1)",
           thresholds=[(None, "green"), (1, "red")])
    b.table("Camera state", (f"max by (camera, state) ({sel('roadwatch_ingest_camera_state', cam)}) == 1", ""),
            width=8, height=10)
    b.timeseries("Frame rate in and out",
                 (f"sum by (camera) ({sel('roadwatch_ingest_fps_in', cam)})", "{{camera}} in"),
                 (f"sum by (camera) ({sel('roadwatch_ingest_fps_out', cam)})", "{{camera}} out"),
                 width=16, height=10, unit="fps")
    b.row("Uptime")
    online = f"max by (camera) ({sel('roadwatch_ingest_camera_state', eq('state', 'online'), cam)})"
    b.timeseries("Availability, rolling 24 h", (f"avg_over_time(({online})[1d:1m])", "{{camera}}"),
                 width=12, unit="percentunit",
                 description="Share of the last 24 h each camera was online (degraded and offline count as "
                             "down). The portal's uptime page has the same per local day, with each outage's cause.")
    b.table("Availability, last 7 days", (f"avg_over_time(({online})[7d:5m])", ""), width=6, unit="percentunit")
    b.timeseries("Down for", (f"min by (camera) (time() - ({sel('roadwatch_ingest_camera_down_since_timestamp_seconds', cam)} > 0))",
                              "{{camera}}"), width=6, unit="s",
                 description="How long each camera has been degraded or offline. Alert: CameraDownTooLong, after "
                             "roadwatch:camera_down_alert_after_seconds.")
    b.row("Trouble")
    b.timeseries("Seconds since the last frame",
                 (f"min by (camera) ({sel('roadwatch_ingest_last_frame_age_seconds', cam)})", "{{camera}}"), unit="s")
    b.timeseries("Reconnects and decode errors",
                 (f"sum by (camera) (increase({sel('roadwatch_ingest_reconnects_total', cam)}[{RATE}]))",
                  "{{camera}} reconnects"),
                 (f"sum by (camera) (increase({sel('roadwatch_ingest_decode_errors_total', cam)}[{RATE}]))",
                  "{{camera}} decode errors"))
    b.timeseries("Frames dropped and skipped",
                 (f"sum by (camera, why) ({rate('roadwatch_ingest_frames_dropped_total', cam)})", "{{camera}} {{why}}"),
                 (f"sum by (camera) ({rate('roadwatch_ingest_frames_still_total', cam)})", "{{camera}} still"),
                 unit="ops")
    b.timeseries("Publish queue",
                 (f"max by (camera) ({sel('roadwatch_ingest_queue_frames', cam)})", "{{camera}}"))
    b.row("Downstream")
    b.timeseries("Active tracks", (f"sum by (camera) ({sel('roadwatch_track_tracks_active', cam)})", "{{camera}}"))
    b.timeseries("Violations by camera and type",
                 (f"sum by (camera, type) (increase({sel('roadwatch_track_violations_total', cam)}[{RATE}]))",
                  "{{camera}} {{type}}"))
    b.timeseries("Count windows published",
                 (f"sum by (camera) (increase({sel('roadwatch_track_counts_published_total', cam)}[{RATE}]))",
                  "{{camera}}"))
    b.timeseries("Detections late or foreign",
                 (f"sum by (camera, outcome) ({rate('roadwatch_track_detections_total', cam, ne('outcome', 'tracked'))})",
                  "{{camera}} {{outcome}}"), unit="ops")
    return b


def cases() -> Board:
    b = Board("roadwatch-cases", "roadwatch / violations and cases",
              "Violations found, vehicles identified, police decisions, notices and their legal deadlines.",
              [datasource_var(), NAMESPACE])
    b.row("Today")
    b.stat("Violations (24h)", f"sum(increase({sel('roadwatch_track_violations_total')}[24h]))")
    b.stat("Cases created (24h)", f"sum(increase({sel('roadwatch_portal_cases_total')}[24h]))")
    b.stat("Notices waiting", f"max({sel('roadwatch_notify_notices_pending')})",
           thresholds=[(None, "green"), (100, "orange"), (1000, "red")])
    b.stat("Late notices (7d)", f"sum(increase({sel('roadwatch_notify_late_notices_total')}[7d]))",
           thresholds=[(None, "green"), (1, "red")])
    b.row("Violations")
    b.timeseries("Violations by type",
                 (f"sum by (type) (increase({sel('roadwatch_track_violations_total')}[{RATE}]))", "{{type}}"))
    b.timeseries("Evidence status of violations",
                 (f"sum by (evidence) (increase({sel('roadwatch_track_violations_total')}[{RATE}]))", "{{evidence}}"))
    b.timeseries("Registry lookups by outcome",
                 (f"sum by (outcome) (increase({sel('roadwatch_registry_violation_lookups_total')}[{RATE}]))",
                  "{{outcome}}"))
    b.timeseries("Registration mismatches and hotlist hits",
                 (f"sum by (field) (increase({sel('roadwatch_registry_mismatches_total')}[{RATE}]))", "mismatch {{field}}"),
                 (f"sum(increase({sel('roadwatch_registry_hotlist_hits_total')}[{RATE}]))", "hotlist hits"))
    b.row("Cases")
    b.timeseries("Cases created by initial state",
                 (f"sum by (state) (increase({sel('roadwatch_portal_cases_total')}[{RATE}]))", "{{state}}"))
    b.timeseries("Police decisions",
                 (f"sum by (decision) (increase({sel('roadwatch_portal_decisions_total')}[{RATE}]))", "{{decision}}"))
    b.row("Notices and deadlines")
    b.timeseries("Notices by channel and result",
                 (f"sum by (channel, result) (increase({sel('roadwatch_notify_notices_total')}[{RATE}]))",
                  "{{channel}} {{result}}"))
    b.timeseries("Time from violation to notice",
                 (f"histogram_quantile(0.5, sum by (le) (increase({sel('roadwatch_notify_notice_delay_seconds_bucket')}[1d])))",
                  "median"),
                 (f"histogram_quantile(0.95, sum by (le) (increase({sel('roadwatch_notify_notice_delay_seconds_bucket')}[1d])))",
                  "p95"),
                 unit="s", thresholds=[(None, "green"), (8 * 86_400, "orange"), (10 * 86_400, "red")],
                 description="Legal limit: deadlines.notice_within_days (10).")
    b.timeseries("Deadlines come due",
                 (f"sum by (outcome) (increase({sel('roadwatch_notify_deadlines_total')}[{RATE}]))", "{{outcome}}"))
    b.timeseries("Owner lookups from notify",
                 (f"sum by (result) (increase({sel('roadwatch_notify_owner_lookups_total')}[{RATE}]))", "{{result}}"))
    return b


def services() -> Board:
    svc = 'service=~"$service"'
    b = Board("roadwatch-services", "roadwatch / services (rate, errors, duration)",
              "Per service: messages handled, failures, handling time; and each service's own work.",
              [datasource_var(), NAMESPACE, query_var("service", "Service", "label_values(roadwatch_messages_total, service)")])
    b.row("Consumers (every service)")
    b.timeseries("Rate: messages handled",
                 (f"sum by (service, consumer) ({rate('roadwatch_messages_total', svc)})", "{{service}}/{{consumer}}"),
                 unit="ops")
    b.timeseries("Errors: naks and dead letters",
                 (f"sum by (service, consumer) ({rate('roadwatch_messages_total', svc, ne('result', 'ack'))})",
                  "{{service}}/{{consumer}} not acked"),
                 (f"sum by (service, error) ({rate('roadwatch_dead_letters_total', svc)})", "{{service}} dead letter {{error}}"),
                 unit="ops")
    b.timeseries("Duration: handling time p50 / p95 / p99",
                 (quantile(0.5, "roadwatch_handler_duration_seconds", "service", svc), "{{service}} p50"),
                 (quantile(0.95, "roadwatch_handler_duration_seconds", "service", svc), "{{service}} p95"),
                 (quantile(0.99, "roadwatch_handler_duration_seconds", "service", svc), "{{service}} p99"),
                 unit="s")
    b.timeseries("Messages waiting",
                 (f"max by (service, consumer) ({sel('roadwatch_consumer_pending', svc)})", "{{service}}/{{consumer}}"))
    b.row("detect")
    b.timeseries("Model time per frame",
                 (quantile(0.5, "roadwatch_detect_frame_seconds"), "p50"),
                 (quantile(0.95, "roadwatch_detect_frame_seconds"), "p95"), unit="s")
    b.timeseries("Micro-batch size and plates read",
                 (f"sum({rate('roadwatch_detect_batch_frames_sum')}) / sum({rate('roadwatch_detect_batch_frames_count')})",
                  "frames per batch"),
                 (f"sum by (source, format_valid) ({rate('roadwatch_detect_plates_total')})", "plates {{source}} valid={{format_valid}}"))
    b.row("detect: models (roadwatch model; docs/ARCHITECTURE.md)")
    b.table("Vehicle model in service, per version",
            (f"count by (model, version, sha256) ({sel('roadwatch_detect_model_info')} == 1)", "replicas"),
            description="Each detect replica runs the version last promoted (version `file`: the MODELS_DIR file, "
                        "nothing promoted); during a swap two versions show for a moment.")
    b.timeseries("Model swaps and refusals",
                 (f"sum by (model, kind, result) (increase({sel('roadwatch_detect_model_swaps_total')}[{RATE}]))",
                  "{{model}} {{kind}} {{result}}"),
                 description="swapped/loaded: a promoted version (or shadow candidate) in service; refused: it did "
                             "not load or fit, detect kept what it ran (alert DetectModelRefused).")
    shadow = "model, candidate, live"
    matched = f"sum by ({shadow}) ({rate('roadwatch_detect_shadow_matched_total')})"
    live_n = f"sum by ({shadow}) ({rate('roadwatch_detect_shadow_vehicles_total', eq('side', 'live'))})"
    cand_n = f"sum by ({shadow}) ({rate('roadwatch_detect_shadow_vehicles_total', eq('side', 'candidate'))})"
    b.timeseries("Shadow: agreement with the live model (IoU 0.5)",
                 (f"{matched} / ({live_n} + {cand_n} - {matched})", "{{model}}@{{candidate}} vs {{live}}"),
                 (f"{matched} / {live_n}", "{{model}}@{{candidate}}: share of live vehicles it also finds"),
                 unit="percentunit",
                 description="On the frames the candidate runs on (1 in N): vehicles both found, one to one at IoU "
                             ">= 0.5, over all the vehicles either found. 1: the same vehicles; the candidate is only "
                             "measured, never published.")
    by_class = f"{shadow}, class_name"
    cand_c = f"sum by ({by_class}) ({rate('roadwatch_detect_shadow_objects_total', eq('side', 'candidate'))})"
    live_c = f"sum by ({by_class}) ({rate('roadwatch_detect_shadow_objects_total', eq('side', 'live'))})"
    frames = f"sum by ({shadow}) ({rate('roadwatch_detect_shadow_frames_total')})"
    b.timeseries("Shadow: objects per frame, candidate minus live, per class",
                 (f"(({cand_c} or 0 * {live_c}) - ({live_c} or 0 * {cand_c})) / on ({shadow}) group_left {frames}",
                  "{{model}}@{{candidate}} {{class_name}}"),
                 description="Positive: the candidate reports more of the class per frame than the live model (a "
                             "class one model does not have shows in full, e.g. person for the fine-tuned model).")
    b.row("track")
    b.timeseries("Step time", (quantile(0.95, "roadwatch_track_step_seconds"), "p95"), unit="s")
    b.timeseries("Cameras per replica and evidence stored",
                 (f"sum by (pod) ({sel('roadwatch_track_cameras_owned')})", "{{pod}} cameras"),
                 (f"sum by (kind) ({rate('roadwatch_track_evidence_objects_total')})", "evidence {{kind}}/s"))
    b.row("registry")
    b.timeseries("Owner lookups (request/reply)",
                 (f"sum by (result) ({rate('roadwatch_registry_owner_requests_total')})", "{{result}}"), unit="reqps")
    b.timeseries("Owner lookup time",
                 (quantile(0.5, "roadwatch_registry_owner_lookup_seconds"), "p50"),
                 (quantile(0.99, "roadwatch_registry_owner_lookup_seconds"), "p99"), unit="s")
    b.row("portal")
    b.timeseries("HTTP requests by route and status",
                 (f"sum by (route, status) ({rate('roadwatch_portal_http_requests_total')})", "{{route}} {{status}}"),
                 unit="reqps")
    b.timeseries("HTTP request time p95 by route",
                 (quantile(0.95, "roadwatch_portal_http_request_duration_seconds", "route"), "{{route}}"), unit="s")
    b.timeseries("Outbox and refused transitions",
                 (f"max({sel('roadwatch_portal_outbox_pending')})", "outbox pending"),
                 (f"sum by (source) ({rate('roadwatch_portal_transitions_refused_total')})", "refused {{source}}"))
    b.timeseries("Audit rows by action",
                 (f"sum by (action) ({rate('roadwatch_portal_audit_rows_total')})", "{{action}}"), unit="ops")
    b.row("notify")
    b.timeseries("Send time by transport",
                 (quantile(0.95, "roadwatch_notify_send_seconds", "transport"), "{{transport}} p95"), unit="s")
    b.timeseries("Webhooks and outbox",
                 (f"sum by (result) ({rate('roadwatch_notify_webhook_attempts_total')})", "webhook {{result}}"),
                 (f"sum by (result) ({rate('roadwatch_notify_events_published_total')})", "events {{result}}"),
                 unit="ops")
    return b


BOARDS = {"roadwatch-pipeline.json": pipeline, "roadwatch-cameras.json": cameras,
          "roadwatch-cases.json": cases, "roadwatch-services.json": services}


# --- output ---------------------------------------------------------------------------------------
def prometheus_rule() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "roadwatch", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": groups},
    }
    head = "# Generated by deploy/generate.py from deploy/prometheus/rules.yml: edit that file.\n"
    return head + yaml.safe_dump(resource, sort_keys=False, allow_unicode=True, width=120)


def outputs() -> dict[Path, str]:
    files = {PROMETHEUS_RULE: prometheus_rule()}
    for name, build in BOARDS.items():
        files[DASHBOARDS / name] = json.dumps(build().json(), indent=2, ensure_ascii=False) + "\n"
    return files


def main(argv: list[str]) -> int:
    stale = []
    for path, text in outputs().items():
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(DEPLOY.parent)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale (run .venv/bin/python deploy/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
