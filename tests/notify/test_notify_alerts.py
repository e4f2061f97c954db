"""Incident alerts without I/O: the configuration (valid file loads, a bad one names file, line
and field), who gets an alert, and the Vietnamese wording of each incident type."""

from __future__ import annotations

import pytest

from notify_samples import EXAMPLE, example, incident, incident_cleared
from proto.v1.incident import LaneTraffic
from services.notify import alerts, config

ADDRESS = "Ngã tư Lạch Tray – Văn Cao, Ngô Quyền, Hải Phòng"


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


# --- configuration ----------------------------------------------------------------------------------
def test_example_has_recipients_for_the_three_agencies():
    loaded = example().incident_alerts
    assert loaded is not None
    assert [(r.name, r.agency, r.min_severity) for r in loaded.recipients] == [
        ("ttdh-truc-ban", "ttdh-ubnd", "warning"),
        ("so-xay-dung-giao-thong", "so-xay-dung", "warning"),
        ("csgt-truc-chi-huy", "hp-csgt", "critical"),
    ]
    assert loaded.types["wrong_way_driving"] == "Phương tiện đi ngược chiều"
    assert loaded.recipients[0].cleared and not loaded.recipients[1].cleared


@pytest.mark.parametrize("old, new, field, problem", [
    ("      min_severity: critical", "      min_severity: urgent", "incident_alerts.recipients[2].min_severity",
     "expected one of critical, info, warning, got 'urgent'"),
    ("      types: [congestion, stopped_vehicle]", "      types: [congestion, fire]",
     "incident_alerts.recipients[1].types[1]", "got 'fire'"),
    ("      email: [giaothong.sxd@haiphong.gov.vn]", "      email: [giaothong.sxd]",
     "incident_alerts.recipients[1].email[0]", "expected an e-mail address, got 'giaothong.sxd'"),
    ("      agency: so-xay-dung", "      agency: so-giao-thong", "incident_alerts.recipients[1].agency",
     "no agency 'so-giao-thong'"),
    ("      agency: so-xay-dung", "      agency: cong-dan", "incident_alerts.recipients[1].agency",
     "no agency 'cong-dan' with role"),
    ('  subject: "[{severity}] {type} – {place}"', '  subject: "[{muc_do}] {type} – {place}"',
     "incident_alerts.subject", "unknown placeholder {muc_do}"),
    ("    congestion: Ùn tắc giao thông", "    congestion: ''", "incident_alerts.types.congestion",
     "expected a non-empty text"),
    ("    congestion: Ùn tắc giao thông\n", "", "incident_alerts.types", "no wording for 'congestion'"),
    ("    jammed: ùn tắc nghiêm trọng", "    jammed: ùn tắc nghiêm trọng\n    gridlock: kẹt cứng",
     "incident_alerts.levels.gridlock", "unknown"),
    ("      cleared: true", "      cleared: yes please", "incident_alerts.recipients[0].cleared", "expected bool, got str"),
    ("      cleared: true", "      clear: true", "incident_alerts.recipients[0].clear", "unknown field"),
    ('    short: "{minutes} phút {seconds} giây"', '    short: "{phut} phút"', "incident_alerts.durations.short",
     "unknown placeholder {phut}"),
    ('  board_url: "http://127.0.0.1:8080/dieu-hanh#inc-{incident_id}"', '  board_url: "/dieu-hanh"',
     "incident_alerts.board_url", "http(s) URL"),
    ("    - name: so-xay-dung-giao-thong", "    - name: ttdh-truc-ban", "incident_alerts.recipients[1].name",
     "duplicate"),
])
def test_a_bad_alert_setting_names_file_line_and_field(tmp_path, old, new, field, problem):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    broken = text.replace(old, new)
    path = tmp_path / "notify.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    error = caught.value
    assert error.field == field
    assert problem in error.reason
    # The line of the changed key (one line below for an added key; the section's for a removed one).
    expected = line_of(text, old.splitlines()[0]) + new.count("\n")
    if not new:
        expected = line_of(text, "  types:")
    assert error.line == expected
    assert str(error).startswith(f"{path}:{error.line}: {field}: ")


def test_recipient_without_address_and_cleared_without_wording(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "notify.yaml"
    path.write_text(text.replace("      email: [trucban.csgt@haiphong.gov.vn]\n", ""), encoding="utf-8")
    with pytest.raises(config.ConfigError, match="needs an email or a webhook") as caught:
        config.load(path, environ={})
    assert caught.value.field == "incident_alerts.recipients[2]"
    assert caught.value.line == line_of(text, "    - name: csgt-truc-chi-huy")
    path.write_text(text.replace('  cleared_subject: "[Đã kết thúc] {type} – {place}"\n', ""), encoding="utf-8")
    with pytest.raises(config.ConfigError, match="needs incident_alerts.cleared_subject") as caught:
        config.load(path, environ={})
    assert caught.value.field == "incident_alerts.recipients[0].cleared"


def test_a_webhook_recipient_needs_its_secret(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace("      # webhook: {secret_env:", "      webhook: {secret_env:")
    path = tmp_path / "notify.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(config.ConfigError, match="ALERT_WEBHOOK_SECRET_CSGT is not set") as caught:
        config.load(path, environ={})
    assert caught.value.field == "incident_alerts.recipients[2].webhook.secret_env"
    loaded = config.load(path, environ={"ALERT_WEBHOOK_SECRET_CSGT": "s3cret"})
    assert loaded.secrets["ALERT_WEBHOOK_SECRET_CSGT"] == "s3cret"


def test_without_the_section_nothing_is_planned(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "notify.yaml"
    path.write_text(text[: text.index("incident_alerts:")], encoding="utf-8")
    loaded = config.load(path, environ={})
    assert loaded.incident_alerts is None
    assert alerts.plan(loaded.incident_alerts, incident(), alerts.ALERT) == []


# --- who gets what ---------------------------------------------------------------------------------
def test_recipients_by_type_and_severity():
    rules = example().incident_alerts

    def who(event, kind=alerts.ALERT):
        return sorted((p.recipient, p.channel) for p in alerts.plan(rules, event, kind))

    # The operations centre takes every type from warning up; transport only congestion and stopped
    # vehicles; the police's command desk only critical ones of its three types.
    assert who(incident("stopped_vehicle", severity="warning")) == [
        ("so-xay-dung-giao-thong", "email"), ("ttdh-truc-ban", "email")]
    assert who(incident("stopped_vehicle", severity="info")) == []
    assert who(incident("wrong_way_driving", severity="warning")) == [("ttdh-truc-ban", "email")]
    assert who(incident("wrong_way_driving", severity="critical")) == [
        ("csgt-truc-chi-huy", "email"), ("ttdh-truc-ban", "email")]
    assert who(incident("congestion", severity="critical")) == [
        ("so-xay-dung-giao-thong", "email"), ("ttdh-truc-ban", "email")]
    # The end message only where `cleared: true`.
    assert who(incident("stopped_vehicle", severity="critical"), alerts.CLEARED) == [("ttdh-truc-ban", "email")]


def test_alert_ids_are_per_incident_recipient_kind_and_channel():
    rules = example().incident_alerts
    first = alerts.plan(rules, incident("stopped_vehicle"), alerts.ALERT)
    again = alerts.plan(rules, incident("stopped_vehicle"), alerts.ALERT)
    assert [p.notice_id for p in first] == [p.notice_id for p in again]
    ids = {p.notice_id for p in first} | {p.notice_id for p in alerts.plan(rules, incident("stopped_vehicle"),
                                                                           alerts.CLEARED)}
    other = {p.notice_id for p in alerts.plan(rules, incident("stopped_vehicle", incident_id="other"), alerts.ALERT)}
    assert len(ids) == 3 and not ids & other
    assert all(p.incident_id == incident().incident_id and p.case_id == "" for p in first)


# --- wording ------------------------------------------------------------------------------------------
def test_stopped_vehicle_wording():
    subject, body = alerts.wording(example(), incident("stopped_vehicle", duration_s=90), alerts.ALERT)
    assert subject == f"[Cảnh báo] Phương tiện dừng, đỗ trên làn đường – {ADDRESS}"
    assert body.splitlines() == [
        "Cảnh báo: Phương tiện dừng, đỗ trên làn đường",
        f"Địa điểm: {ADDRESS}",
        "Camera: Camera giám sát giao thông số 01, nút giao Lạch Tray – Văn Cao",
        "Làn đường: làn giữa",
        "Loại phương tiện: Xe ô tô con",
        "Bắt đầu lúc: 07 giờ 45 phút, ngày 20/11/2026",
        "Phát hiện lúc: 07 giờ 46 phút, ngày 20/11/2026 (đã kéo dài 1 phút 30 giây)",
        f"Mã sự cố: {incident().incident_id}",
        "",
        f"Xem hình ảnh và theo dõi trên bảng điều hành: http://127.0.0.1:8080/dieu-hanh#inc-{incident().incident_id}",
    ]


def test_pedestrian_wording_has_no_lane_or_vehicle_lines():
    event = incident("pedestrian_on_carriageway", severity="critical", lane=None, vehicle_class=None,
                     zone="lòng đường Lạch Tray", duration_s=12)
    subject, body = alerts.wording(example(), event, alerts.ALERT)
    assert subject == f"[Khẩn cấp] Người đi bộ trên phần đường xe chạy – {ADDRESS}"
    assert "Khẩn cấp: Người đi bộ trên phần đường xe chạy" in body
    assert "Khu vực: lòng đường Lạch Tray" in body
    assert "(đã kéo dài 0 phút 12 giây)" in body
    assert "Làn đường" not in body and "Loại phương tiện" not in body and "Mức độ ùn tắc" not in body


def test_wrong_way_wording_names_the_vehicle_and_an_unlisted_lane_by_its_id():
    event = incident("wrong_way_driving", severity="critical", lane="lane-7", vehicle_class="motorcycle",
                     camera="hp-cam-99", duration_s=4)
    subject, body = alerts.wording(example(), event, alerts.ALERT)
    assert subject == f"[Khẩn cấp] Phương tiện đi ngược chiều – {ADDRESS}"
    assert "Loại phương tiện: Xe mô tô" in body
    assert "Làn đường: lane-7" in body
    assert "Camera: Camera giám sát hp-cam-99" in body  # device_default for an unlisted camera


def test_congestion_wording_has_level_occupancy_queue_and_a_calibrated_speed_only():
    traffic = LaneTraffic(lane="left", occupancy=0.834, queue_vehicles=27, vehicles=31, mean_speed=3.5,
                          speed_unit="km/h", level="jammed")
    event = incident("congestion", severity="critical", lane="left", vehicle_class=None, traffic=traffic,
                     duration_s=3725)
    subject, body = alerts.wording(example(), event, alerts.ALERT)
    assert subject == f"[Khẩn cấp] Ùn tắc giao thông – {ADDRESS}"
    for line in ("Làn đường: làn bên trái", "Mức độ ùn tắc: ùn tắc nghiêm trọng", "Tỷ lệ chiếm dụng làn: 83 %",
                 "Hàng chờ: 27 phương tiện", "Tốc độ trung bình: 3,5 km/h", "(đã kéo dài 1 giờ 02 phút)"):
        assert line in body, line
    uncalibrated = incident("congestion", lane="left", vehicle_class=None, traffic=LaneTraffic(
        lane="left", occupancy=0.5, queue_vehicles=9, vehicles=12, mean_speed=14.0, level="heavy"))
    _, body = alerts.wording(example(), uncalibrated, alerts.ALERT)
    assert "Mức độ ùn tắc: ùn ứ" in body and "Tốc độ trung bình" not in body  # px/s is not for readers


def test_times_are_in_ho_chi_minh_city_whatever_the_events_offset():
    from datetime import timezone

    event = incident("stopped_vehicle")
    utc = type(event)(**{**{f: getattr(event, f) for f in event.__struct_fields__},
                         "detected_at": event.detected_at.astimezone(timezone.utc),
                         "occurred_at": event.occurred_at.astimezone(timezone.utc)})
    assert alerts.wording(example(), utc, alerts.ALERT) == alerts.wording(example(), event, alerts.ALERT)
    assert "Phát hiện lúc: 07 giờ 46 phút, ngày 20/11/2026" in alerts.wording(example(), utc, alerts.ALERT)[1]


@pytest.mark.parametrize("reason, words", [
    ("resolved", "sự cố đã kết thúc"),
    ("track_lost", "không còn thấy phương tiện, người trong khung hình"),
    ("stream_break", "camera mất tín hiệu, chưa xác định được tình trạng"),
])
def test_cleared_wording(reason, words):
    event = incident("stopped_vehicle", duration_s=90)
    subject, body = alerts.wording(example(), event, alerts.CLEARED, cleared=incident_cleared(event, after_s=300,
                                                                                              reason=reason))
    assert subject == f"[Đã kết thúc] Phương tiện dừng, đỗ trên làn đường – {ADDRESS}"
    assert body.splitlines()[0] == (
        f"Phương tiện dừng, đỗ trên làn đường tại {ADDRESS} (Camera giám sát giao thông số 01, nút giao Lạch Tray"
        f" – Văn Cao) đã kết thúc lúc 07 giờ 51 phút, ngày 20/11/2026: {words}.")
    assert "Thời gian kéo dài: 6 phút 30 giây." in body


def test_webhook_body_carries_facts_and_wording():
    import msgspec

    event = incident("wrong_way_driving", severity="critical")
    body = msgspec.json.decode(alerts.webhook_body(example(), event, alerts.ALERT, alert="alert-1",
                                                   recipient="csgt-truc-chi-huy"))
    assert body["alert_id"] == "alert-1" and body["incident_id"] == event.incident_id
    assert body["type"] == "wrong_way_driving" and body["severity"] == "critical"
    assert body["title"] == f"[Khẩn cấp] Phương tiện đi ngược chiều – {ADDRESS}"
    assert "Loại phương tiện: Xe ô tô con" in body["text"]
    assert body["board_url"].endswith(event.incident_id)


def test_service_exits_2_on_a_bad_alert_recipient(tmp_path, repo_dir):
    import subprocess
    import sys

    path = tmp_path / "notify.yaml"
    text = EXAMPLE.read_text(encoding="utf-8").replace("      min_severity: critical", "      min_severity: khẩn")
    path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "notify"], cwd=repo_dir, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "NOTIFY_CONFIG": str(path), "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})
    assert done.returncode == 2
    assert f"{path}:{line_of(text, 'min_severity: khẩn')}: incident_alerts.recipients[2].min_severity:" in done.stderr
