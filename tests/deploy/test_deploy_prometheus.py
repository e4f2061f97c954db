"""Alert rules: promtool checks them, runs their unit tests, and every alert has a test that fires it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is needed (Debian package prometheus; make deploy-deps)")
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def test_rules_check() -> None:
    done = run("check", "rules", "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = run("test", "rules", "tests.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expectation makes promtool fail: the passing run above means something."""
    tests = yaml.safe_load((PROMETHEUS / "tests.yml").read_text())
    tests["rule_files"] = [str(PROMETHEUS / "rules.yml")]
    first = tests["tests"][0]["alert_rule_test"]
    firing = next(case for case in first if case["exp_alerts"])
    firing["exp_alerts"][0]["exp_labels"]["camera"] = "cam-99"
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(tests))
    done = subprocess.run([promtool(), "test", "rules", str(tmp_path / "broken.yml")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0


def test_every_alert_has_a_test_that_fires_it() -> None:
    tests = yaml.safe_load((PROMETHEUS / "tests.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    names = {rule["alert"] for rule in alerts()}
    assert fired == names, f"alerts without a firing test: {sorted(names - fired)}"
    for rule in alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_required_alerts_exist() -> None:
    """The issue's list: camera offline, lag growing, dead letters, evidence store errors, notices near deadline."""
    names = {rule["alert"] for rule in alerts()}
    assert {"CameraOffline", "ConsumerLagGrowing", "DeadLettersArriving", "EvidenceStoreErrors",
            "NoticesNearDeadline"} <= names


def test_prometheus_rule_resource_carries_the_same_groups() -> None:
    resource = yaml.safe_load((REPO / "deploy" / "base" / "prometheusrule.yaml").read_text())
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    kustomization = yaml.safe_load((REPO / "deploy" / "base" / "kustomization.yaml").read_text())
    assert "prometheusrule.yaml" in kustomization["resources"]


def test_camera_down_alert_follows_its_configured_threshold(tmp_path: Path) -> None:
    """CameraDownTooLong reads its threshold from the recording rule: the unit test that fires it
    at 31 minutes down passes with 1800 s, and fails once the threshold is raised to an hour
    (promtool runs the same tests against the edited rule)."""
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    (threshold,) = [rule for group in groups["groups"] for rule in group["rules"]
                    if rule.get("record") == "roadwatch:camera_down_alert_after_seconds"]
    assert threshold["expr"] == "vector(1800)"
    tests = yaml.safe_load((PROMETHEUS / "tests.yml").read_text())
    (uptime,) = [test for test in tests["tests"]
                 if any(case["alertname"] == "CameraDownTooLong" for case in test.get("alert_rule_test", []))]
    only = {**tests, "rule_files": ["rules.yml"], "tests": [uptime]}
    for value, passes in (("vector(1800)", True), ("vector(3600)", False)):
        threshold["expr"] = value
        folder = tmp_path / value.strip("vector()")
        folder.mkdir()
        (folder / "rules.yml").write_text(yaml.safe_dump(groups, allow_unicode=True))
        (folder / "tests.yml").write_text(yaml.safe_dump(only, allow_unicode=True))
        done = subprocess.run([promtool(), "test", "rules", "tests.yml"], cwd=folder, capture_output=True, text=True,
                              timeout=120)
        assert (done.returncode == 0) is passes, (value, done.stdout + done.stderr)
