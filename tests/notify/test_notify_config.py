"""The notify configuration file: the example loads, and each kind of mistake stops the service
with the file, line and field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from notify_samples import EXAMPLE, example
from services.notify import config


def test_example_loads_with_vietnamese_wording_and_deadlines():
    loaded = example()
    assert loaded.deadlines.warning_after_days == 20
    assert loaded.deadlines.respond_within_days == 20
    assert loaded.unit("hp-csgt").parent == "Công an thành phố Hải Phòng"  # from the agencies file
    assert loaded.violations["red_light"].title == "Không chấp hành hiệu lệnh của đèn tín hiệu giao thông"
    assert loaded.tz.key == "Asia/Ho_Chi_Minh"


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old, new, field, problem", [
    ("  warning_after_days: 20 ", "  warning_after_day: 20 ", "deadlines.warning_after_day", "unknown field"),
    ("  warning_after_days: 20 ", "  warning_after_days: twenty ", "deadlines.warning_after_days",
     "expected a number of days from 1 to 365, got 'twenty'"),
    ("  warning_after_days: 20 ", "  warning_after_days: 0 ", "deadlines.warning_after_days",
     "expected a number of days from 1 to 365, got 0"),
    ("    signer: TRƯỞNG PHÒNG", "    signer: [TRƯỞNG PHÒNG]", "units.hp-csgt.signer", "expected str, got array"),
    ("    signer: TRƯỞNG PHÒNG", '    phone: "0225 3842 135"', "units.hp-csgt.phone",
     "contact details come from the agencies file"),
    ("      motorbike:\n        legal_basis: Điểm c khoản 7", "      moto:\n        legal_basis: Điểm c khoản 7",
     "violations.red_light.by_class.moto", "unknown vehicle class"),
    ("        fine: Từ 4.000.000 đồng đến 6.000.000 đồng\n        extra_penalty: Trừ 04",
     "        fine: \"\"\n        extra_penalty: Trừ 04", "violations.red_light.by_class.motorbike.fine",
     "expected a non-empty text, got ''"),
    ("  motorbike: [motorcycle, moped]", "  motorbike: [motorcycle, moped, van]", "vehicle_classes.motorbike[2]",
     "'van' is already in the class on line "),
    ("  window_s: 600", "  window_s: -1", "duplicates.window_s", "from 0 to 604800, got -1"),
    ('  sms: "CSGT: xe {plate}', '  sms: "CSGT: xe {bien_so}', "templates.sms", "unknown placeholder {bien_so}"),
    ('    communes: ["11311", "11312", "11314"]', '    communes: ["11311", "1131"]',
     "units.hp-csgt.communes[1]", "5-digit commune code"),
    ("timezone: Asia/Ho_Chi_Minh", "timezone: Asia/Hanoi_City", "timezone", "unknown time zone"),
    ('  date: "{day}/{month}/{year}"', '  date: "{day}/{month}/{nam}"', "formats.date", "unknown placeholder {nam}"),
    ('device_default: "Camera giám sát {camera_id}"', 'device_default: "Camera {camera}"', "device_default",
     "unknown placeholder {camera}"),
])
def test_a_bad_value_names_file_line_and_field(tmp_path, old, new, field, problem):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    broken = text.replace(old, new, 1)
    path = tmp_path / "notify.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    error = caught.value
    assert error.field == field
    assert problem in error.reason
    assert error.line == line_of(broken, new.splitlines()[0])
    assert str(error).startswith(f"{path}:{error.line}: {field}: ")


def test_missing_section_and_missing_webhook_secret(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "notify.yaml"
    path.write_text(text.replace("  # webhook: {url:", "  webhook: {url:").replace("  email: canhbao@vr.org.vn\n", ""),
                    encoding="utf-8")
    with pytest.raises(config.ConfigError, match="INSPECTION_WEBHOOK_SECRET is not set") as caught:
        config.load(path, environ={})
    assert caught.value.field == "inspection_registry.webhook.secret_env"
    loaded = config.load(path, environ={"INSPECTION_WEBHOOK_SECRET": "s3cret"})
    assert loaded.secrets == {"INSPECTION_WEBHOOK_SECRET": "s3cret"}
    path.write_text(text.replace("inspection_registry:\n", "inspection_registr:\n"), encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    assert caught.value.field == "inspection_registr"


@pytest.mark.parametrize("old, new, at, message", [
    ('  "11410":', '  "1141":', '  "1141":', "communes.1141: key: expected str matching regex"),
    ("  base_s: 30\n", "  base_s: 7200\n", "retry:", "retry: base_s (7200.0) must be at most max_s (3600.0)"),
    ("webhooks: []\n", 'webhooks:\n  - {name: a, agency: b, url: "https://x.vn", subjects: ["traffic..v1"], secret_env: S}\n',
     "  - {name: a", "webhooks[0].subjects[0]: expected a NATS subject pattern, got 'traffic..v1'"),
])
def test_a_rule_of_a_section_names_it(tmp_path, old, new, at, message):
    """Rules carried by the types: a mapping's key, a section's own rule, a list entry."""
    broken = EXAMPLE.read_text(encoding="utf-8").replace(old, new, 1)
    path = tmp_path / "notify.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    assert str(caught.value).startswith(f"{path}:{line_of(broken, at)}: {message}")


def test_service_exits_2_naming_the_file_and_line(tmp_path, repo_dir):
    path = tmp_path / "notify.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace("attempts: 6", "attempts: -1"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "notify"], cwd=repo_dir, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "NOTIFY_CONFIG": str(path), "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})
    assert done.returncode == 2
    assert f"{path}:{line_of(path.read_text(encoding='utf-8'), 'attempts: -1')}: retry.attempts:" in done.stderr


@pytest.mark.parametrize("pattern, subject, expected", [
    ("traffic.notice.sent.v1.>", "traffic.notice.sent.v1.cam-1.email", True),
    ("traffic.notice.*.v1.cam-1.*", "traffic.notice.failed.v1.cam-1.sms", True),
    ("traffic.notice.sent.v1.*", "traffic.notice.sent.v1.cam-1.email", False),
    ("traffic.notice.sent.v1.>", "traffic.notice.sent.v1", False),
])
def test_subject_patterns(pattern, subject, expected):
    assert config.subject_matches(pattern, subject) is expected
