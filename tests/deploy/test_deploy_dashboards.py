"""Grafana dashboards: every query parses (promtool, and a PromQL parser for the metric names),
and every metric name in the dashboards and alert rules is one the services really export:
the six services are started on the session's nats-server and PostgreSQL and scraped."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services import localstack
from services.cli import SERVICES

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy" / "base" / "dashboards"
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
# What Grafana puts in place of its variables before the query reaches Prometheus.
VARIABLES = {"$__rate_interval": "5m", "$namespace": "roadwatch", "$camera": "cam-01", "$service": "detect"}
NOT_FROM_SERVICES = {"up"}  # written by Prometheus itself for every scrape target
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",),
            "untyped": ("",), "unknown": ("",)}


def boards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def dashboard_queries() -> list[str]:
    return [substitute(target["expr"]) for board in boards().values() for panel in board["panels"]
            for target in panel.get("targets", [])]


def variable_metrics() -> set[str]:
    found = set()
    for board in boards().values():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                match = re.fullmatch(r"label_values\((\w+), *\w+\)", variable["query"]["query"])
                assert match, variable["query"]
                found.add(match.group(1))
    return found


def recorded_metrics() -> set[str]:
    """Series the rule file records itself (recording rules), not exported by any service."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def rule_queries() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


CHILDREN = {"MatrixSelector": ("vector_selector",), "AggregateExpr": ("expr", "param"), "BinaryExpr": ("lhs", "rhs"),
            "UnaryExpr": ("expr",), "ParenExpr": ("expr",), "SubqueryExpr": ("expr",), "Call": ("args",),
            "VectorSelector": (), "NumberLiteral": (), "StringLiteral": ()}


def walk(node):
    """Every node of a parsed PromQL expression (promql_parser), depth first."""
    yield node
    for attribute in CHILDREN[type(node).__name__]:
        value = getattr(node, attribute)
        for child in value if isinstance(value, list) else [value]:
            if child is not None:
                yield from walk(child)


def selectors(node):
    return [n for n in walk(node) if type(n).__name__ == "VectorSelector"]


def metric_names(node) -> set[str]:
    """Metric names selected anywhere in a parsed PromQL expression."""
    names = set()
    for selector in selectors(node):
        names |= {selector.name} if selector.name else set()
        names |= {m.value for m in selector.matchers.matchers if m.name == "__name__"}
    return names


def test_dashboards_are_well_formed() -> None:
    loaded = boards()
    assert set(loaded) == {"roadwatch-pipeline.json", "roadwatch-cameras.json", "roadwatch-cases.json",
                           "roadwatch-services.json"}
    uids = [board["uid"] for board in loaded.values()]
    assert len(set(uids)) == len(uids)
    for name, board in loaded.items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in board["panels"]:
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24, (name, panel["title"])
            if panel["type"] != "row":
                assert panel["targets"] and all(t["expr"] for t in panel["targets"]), (name, panel["title"])
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool is needed (Debian package prometheus)")
    queries = dashboard_queries()
    assert len(queries) > 40
    rules = {"groups": [{"name": "dashboards", "rules": [{"record": f"dashboard:query_{i}", "expr": q}
                                                          for i, q in enumerate(queries)]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(tmp_path / "queries.yml")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_promtool_refuses_a_broken_query(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "d", "rules": [{"record": "d:q", "expr": "sum(rate(roadwatch_messages_total[5m])"}]}]}
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run([shutil.which("promtool") or "promtool", "check", "rules", str(tmp_path / "broken.yml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0


def used_metrics() -> set[str]:
    names = set(variable_metrics())
    for query in dashboard_queries() + rule_queries():
        names |= metric_names(promql_parser.parse(query))
    return names


def test_metric_name_extraction() -> None:
    parsed = promql_parser.parse(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="1"}[5m]))) / on () group_left max(b) + -c offset 1m'
        ' and deriv(d[10m:1m]) or {__name__="e"}')
    assert metric_names(parsed) == {"a_bucket", "b", "c", "d", "e"}


# --- labels ---------------------------------------------------------------------------------------
# Added by Prometheus to every series it scrapes through the ServiceMonitor (honorLabels keeps a
# metric's own `service` label, which the runtime's metrics carry).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "endpoint", "service"}


def declared_labels() -> dict[str, set[str]]:
    """Sample name -> label names, from the metrics modules the services import."""
    import importlib

    from prometheus_client.metrics import MetricWrapperBase

    labels: dict[str, set[str]] = {}
    for module in ["services.runtime.metrics", *(f"services.{name}.metrics" for name in SERVICES)]:
        for metric in vars(importlib.import_module(module)).values():
            if not isinstance(metric, MetricWrapperBase):
                continue
            names = set(metric._labelnames)
            if metric._type == "counter":
                labels[metric._name + "_total"] = names
            elif metric._type == "histogram":
                labels.update({metric._name + "_bucket": names | {"le"}, metric._name + "_sum": names,
                               metric._name + "_count": names})
            else:
                labels[metric._name] = names
    labels["up"] = set()
    return labels


def label_problems(node, declared: dict[str, set[str]]) -> list[str]:
    """Label matchers and `by (...)` labels that the selected metrics do not have."""
    problems: list[str] = []
    for selector in selectors(node):
        have = declared.get(selector.name, set()) | TARGET_LABELS
        problems += [f"{selector.name} has no label {m.name}" for m in selector.matchers.matchers
                     if m.name != "__name__" and m.name not in have]
    for aggregation in (n for n in walk(node) if type(n).__name__ == "AggregateExpr"):
        if aggregation.modifier is None or not str(aggregation.modifier.type).endswith("By"):
            continue
        for metric in metric_names(aggregation.expr):
            have = declared.get(metric, set()) | TARGET_LABELS
            problems += [f"by ({label}) over {metric}, which has no such label"
                         for label in aggregation.modifier.labels if label not in have]
    return problems


def test_queries_use_labels_the_metrics_have() -> None:
    declared = declared_labels()
    problems = []
    for query in dashboard_queries() + rule_queries():
        problems += [f"{p}   in   {query}" for p in label_problems(promql_parser.parse(query), declared)]
    assert not problems, "\n".join(problems)


def test_label_check_finds_a_wrong_label() -> None:
    declared = declared_labels()
    assert label_problems(promql_parser.parse('sum by (camera) (rate(roadwatch_messages_total[5m]))'), declared)
    assert label_problems(promql_parser.parse('roadwatch_consumer_pending{stream="FRAMES"}'), declared)
    assert label_problems(promql_parser.parse(
        'histogram_quantile(0.9, sum by (le) (rate(roadwatch_handler_duration_seconds_bucket{stream="x"}[5m]))) > 1'),
        declared)
    assert not label_problems(promql_parser.parse('sum by (consumer) (roadwatch_consumer_pending{service="x"})'),
                              declared)


# --- the services, running ------------------------------------------------------------------------
def exported(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


async def scrape(port: int, process: subprocess.Popen, name: str, timeout: float = 90.0) -> str:
    """/metrics once the service is ready (so its streams, consumers and buckets are provisioned)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as client:
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}: {process.stderr.read()[-3000:]}")
            try:
                async with client.get(f"http://127.0.0.1:{port}/readyz") as ready:
                    if ready.status == 200:
                        async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
                            assert response.status == 200
                            return await response.text()
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"{name} never became ready")
            await asyncio.sleep(0.1)


def manifest_env(workload: dict, *, nats_port: int, database_url: str, secrets: dict[str, dict[str, str]],
                 paths: dict[str, str]) -> dict[str, str]:
    """The container's environment as Kubernetes would give it, pointed at this test's servers and files."""
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = item["value"]
            for name, resolved in env.items():  # Kubernetes' $(VAR) expansion of earlier variables
                value = value.replace(f"$({name})", resolved)
        else:
            source = item["valueFrom"]
            if "fieldRef" in source:
                value = {"metadata.name": f"{workload['metadata']['name']}-0",
                         "metadata.labels['apps.kubernetes.io/pod-index']": "0"}[source["fieldRef"]["fieldPath"]]
            else:
                ref = source["secretKeyRef"]
                value = database_url if ref["name"] == "roadwatch-db-app" else secrets[ref["name"]][ref["key"]]
        env[item["name"]] = value
    env["NATS_URL"] = env["NATS_URL"].replace("@nats:4222", f"@127.0.0.1:{nats_port}")
    for name, value in env.items():
        for inside, outside in paths.items():
            if value.startswith(inside):
                env[name] = outside + value[len(inside):]
    return env


@pytest.fixture(scope="module")
async def postgres_accepting(postgres_admin_url: str) -> str:
    """The embedded PostgreSQL listens a moment before it accepts connections ("starting up")."""
    import asyncpg

    for _ in range(300):
        try:
            connection = await asyncpg.connect(postgres_admin_url)
        except (asyncpg.CannotConnectNowError, OSError):
            await asyncio.sleep(0.1)
            continue
        await connection.close()
        return postgres_admin_url
    pytest.fail("PostgreSQL never accepted connections")


async def test_services_run_with_the_manifests_and_export_every_metric_used(
    postgres_accepting: str, database_url: str, shared_dir: Path, unique: str, tmp_path: Path
) -> None:
    """The dev overlay's Deployments and StatefulSet, their environment as rendered (each service
    signs in to NATS as its own user of the ROADWATCH account), the migrate Job's command, the
    ConfigMaps' files: every service becomes ready, and every metric name used in the dashboards
    and alert rules is among what the six of them export."""
    import base64

    from deploy_support import ACCOUNTS, password, resources, start_server

    rendered = resources("dev")
    secrets = {doc["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
               for doc in rendered if doc["kind"] == "Secret"}
    secrets["nats-users"] = {user: password(user) for user in SERVICES}  # the test server's passwords
    job = next(doc for doc in rendered if doc["kind"] == "Job" and doc["metadata"]["name"] == "migrate")
    migrated = subprocess.run([sys.executable, "-m", "services.cli", *job["spec"]["template"]["spec"]["containers"][0]["args"]],
                              cwd=REPO, env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                              timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    closed_port = localstack.free_port()  # nothing listens: the camera stays offline, its metrics still appear
    cameras = tmp_path / "cameras" / "cameras.yaml"
    cameras.parent.mkdir()
    cameras.write_text(yaml.safe_dump({"cameras": [{
        "id": f"cam-{unique}", "name": "test camera", "url": f"rtsp://127.0.0.1:{closed_port}/stream",
        "scene": "scenes/test.yaml", "location": {"latitude": 20.84, "longitude": 106.68}}]}))
    audit_key = tmp_path / "audit"  # the dev overlay's audit-anchor-key Secret, as the pod sees it mounted
    audit_key.mkdir()
    (anchor_secret,) = [values for name, values in secrets.items() if name.startswith("audit-anchor-key")]
    (audit_key / "anchor.key").write_text(anchor_secret["anchor.key"])
    paths = {  # the pods' mounts -> this test's files (the base's cameras point at a real camera network)
        "/etc/roadwatch/audit": str(audit_key),
        "/etc/roadwatch/cameras": str(cameras.parent),
        "/etc/roadwatch/scenes": str(REPO / "deploy" / "base" / "config" / "scenes"),
        "/etc/roadwatch/agencies": str(REPO / "deploy" / "overlays" / "dev" / "config"),
        "/etc/roadwatch/notify": str(REPO / "deploy" / "base" / "config"),
        "/var/spool/roadwatch/post": str(tmp_path / "post"),
        "/models": str(shared_dir / "models"),
    }
    server, nats_port = start_server(tmp_path, ACCOUNTS.read_text())
    processes: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for workload in (doc for doc in rendered if doc["kind"] in ("Deployment", "StatefulSet")):
            name = workload["metadata"]["name"]
            env = manifest_env(workload, nats_port=nats_port, database_url=database_url, secrets=secrets, paths=paths)
            port = localstack.free_port()
            env.update(HTTP_PORT=str(port), LOG_LEVEL="WARNING")
            if name == "ingest":
                env["LEASE_BUCKET"] = f"leases_{unique}"
            processes[name] = (subprocess.Popen(
                [sys.executable, "-m", "services.cli", *workload["spec"]["template"]["spec"]["containers"][0]["args"]],
                cwd=REPO, env={**os.environ, **env}, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True), port)
        assert set(processes) == set(SERVICES)
        texts = await asyncio.gather(*(scrape(port, process, name) for name, (process, port) in processes.items()))
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        localstack.stop_process(server)
    available = set().union(*(exported(text) for text in texts))
    for name, text in zip(processes, texts):
        assert any(n.startswith(f"roadwatch_{name}_") for n in exported(text)), f"{name} exports no metric of its own"
    assert "roadwatch_messages_total" in available and "roadwatch_consumer_pending" in available
    used = used_metrics()
    assert len(used) > 40
    missing = sorted(used - available - NOT_FROM_SERVICES - recorded_metrics())
    assert not missing, f"used in deploy/ but exported by no service: {missing}"


def bucket_matchers(node) -> list[tuple[str, str]]:
    """(metric, le) for every `le` matcher on a selector."""
    return [(selector.name, m.value) for selector in selectors(node) for m in selector.matchers.matchers if m.name == "le"]


def test_bucket_bounds_used_are_the_histograms_own() -> None:
    """`le="8"` only means something if the histogram has that bucket (a change of buckets would silence the alert)."""
    import importlib

    from prometheus_client.metrics import MetricWrapperBase

    bounds = {}
    for module in ["services.runtime.metrics", *(f"services.{name}.metrics" for name in SERVICES)]:
        for metric in vars(importlib.import_module(module)).values():
            if isinstance(metric, MetricWrapperBase) and metric._type == "histogram":
                bounds[metric._name + "_bucket"] = {float(b) for b in metric._upper_bounds}
    used = [pair for query in dashboard_queries() + rule_queries() for pair in bucket_matchers(promql_parser.parse(query))]
    assert ("roadwatch_notify_notice_delay_seconds_bucket", "691200") in used
    for metric, le in used:
        assert float(le) in bounds[metric], f"{metric} has no bucket le={le}"


# --- legends ---------------------------------------------------------------------------------------
def result_labels(node, declared: dict[str, set[str]]) -> set[str]:
    """The labels a query's result series carry (what a legend's {{label}} can show)."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        return declared.get(node.name, set()) | TARGET_LABELS
    if kind == "MatrixSelector":
        return result_labels(node.vector_selector, declared)
    if kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        return result_labels(node.expr, declared)
    if kind == "AggregateExpr":
        if node.modifier is None:
            return set()
        labels = set(node.modifier.labels)
        return labels if str(node.modifier.type).endswith("By") else result_labels(node.expr, declared) - labels
    if kind == "Call":
        vectors = [arg for arg in node.args if type(arg).__name__ not in ("NumberLiteral", "StringLiteral")]
        labels = result_labels(vectors[0], declared) if vectors else set()
        return labels - {"le"} if node.func.name == "histogram_quantile" else labels
    if kind == "BinaryExpr":
        scalar = {"NumberLiteral", "StringLiteral"}
        if type(node.lhs).__name__ in scalar:
            return result_labels(node.rhs, declared)
        return result_labels(node.lhs, declared)
    return set()


def test_legends_name_labels_the_series_have() -> None:
    declared = declared_labels()
    problems = []
    for name, board in boards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
                have = result_labels(promql_parser.parse(substitute(target["expr"])), declared)
                if wanted - have:
                    problems.append(f"{name} / {panel['title']}: legend {sorted(wanted - have)} not in {sorted(have)}")
    assert not problems, "\n".join(problems)


def test_result_labels() -> None:
    declared = declared_labels()
    assert result_labels(promql_parser.parse(
        "histogram_quantile(0.9, sum by (le, service) (rate(roadwatch_handler_duration_seconds_bucket[5m])))"),
        declared) == {"service"}
    assert result_labels(promql_parser.parse("sum(rate(roadwatch_messages_total[5m]))"), declared) == set()
    assert "camera" in result_labels(promql_parser.parse("roadwatch_ingest_fps_in > 1"), declared)
