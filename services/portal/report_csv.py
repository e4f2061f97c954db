"""The report as CSV: one figure per row (section, key, subkey, label, measure, value), so that a
spreadsheet can pivot it and a program can read any figure back without knowing the layout.
Section and measure names are stable codes; labels are Vietnamese. UTF-8 with a BOM (Excel)."""

from __future__ import annotations

import csv
import io
import zoneinfo
from typing import Any, Iterator

from services.portal import cases, report_format
from services.portal.report_data import ReportData
from services.portal.report_incidents import INCIDENT_LABELS

HEADER = ["Mục (section)", "Khóa (key)", "Khóa phụ (subkey)", "Tên", "Chỉ số (measure)", "Giá trị (value)"]
STAT_MEASURES = ("total", "confirmed", "rejected", "awaiting_review")


def rows(data: ReportData) -> Iterator[list[Any]]:
    tz = data.timezone
    yield ["report", "agency", "", data.scope.agency_name, "agency_id", data.scope.agency_id]
    yield ["report", "period", "", report_format.period(data.start, data.end, tz), "from", data.start.isoformat()]
    yield ["report", "period", "", "", "to_exclusive", data.end.isoformat()]
    yield ["report", "generated", "", "", "generated_at", data.generated_at.isoformat()]
    yield ["report", "deadlines", "", "Thời hạn gửi thông báo (ngày)", "notice_within_days",
           data.deadlines.notice_within_days]
    yield ["report", "deadlines", "", "Thời hạn giải quyết sau thông báo (ngày)", "warning_after_days",
           data.deadlines.warning_after_days]
    if "violations" in data.scope.sections:
        for section, items, label in (
            ("violations_by_type", data.by_type, lambda r: cases.VIOLATION_LABELS.get(r["key"], r["key"])),
            ("violations_by_camera", data.by_camera, lambda r: r["place"] or ""),
            ("violations_by_hour", data.by_hour, lambda r: report_format.hour(r["key"])),
            ("violations_by_vehicle_class", data.by_vehicle_class,
             lambda r: cases.VEHICLE_LABELS.get(r["key"], r["key"])),
        ):
            for row in items:
                for measure in STAT_MEASURES:
                    yield [section, row["key"], "", label(row), measure, row[measure]]
    if "deadlines" in data.scope.sections:
        for measure, value in data.notice_deadline.items():
            yield ["notice_deadline", "", "", "", measure, value]
        for measure, value in data.resolution_deadline.items():
            yield ["resolution_deadline", "", "", "", measure, value]
        for row in data.notices_by_channel:
            for measure in ("sent", "on_time", "late", "failed"):
                yield ["notices_by_channel", row["key"], "", "", measure, row[measure]]
    if "incidents" in data.scope.sections:
        if data.incidents is None:
            yield ["incidents", "", "", "Chưa có dữ liệu sự cố", "available", 0]
        else:
            yield ["incidents", "", "", "", "available", 1]
            for row in data.incidents.by_type:
                for measure in ("incidents", "acknowledged", "closed", "ack_median_s", "ack_p90_s", "close_median_s"):
                    value = row[measure]
                    yield ["incidents", row["key"], "", INCIDENT_LABELS.get(row["key"], row["key"]), measure,
                           "" if value is None else round(float(value), 1) if "_s" in measure else value]
    if "uptime" in data.scope.sections:
        outages = {c.camera_id: 0 for c in data.uptime_cameras}
        for outage in data.outages:
            outages[outage.camera_id] = outages.get(outage.camera_id, 0) + 1
        for camera in data.uptime_cameras:
            yield from _uptime("uptime_by_camera", camera, "")
            yield ["uptime_by_camera", camera.camera_id, "", "", "outages", outages[camera.camera_id]]
        for day in data.uptime_days:
            yield from _uptime("uptime_by_day", day, day.day.isoformat())
        zone = zoneinfo.ZoneInfo(tz)
        for outage in data.outages:
            start = outage.start.astimezone(zone).isoformat()
            end = outage.end.astimezone(zone).isoformat() if outage.end else ""
            yield ["outages", outage.camera_id, start, outage.cause, "end", end]
            yield ["outages", outage.camera_id, start, outage.cause, "state", outage.state]
            yield ["outages", outage.camera_id, start, outage.cause, "duration_s",
                   round(outage.duration_s(data.uptime_until), 1)]
    if "traffic" in data.scope.sections:
        for row in data.traffic:
            yield ["traffic", row["camera_id"], row["line"], cases.VEHICLE_LABELS.get(row["vehicle_class"], ""),
                   row["vehicle_class"], row["vehicles"]]


def _uptime(section: str, row, subkey: str) -> Iterator[list[Any]]:
    for measure in ("observed_s", "online_s", "degraded_s", "offline_s"):
        yield [section, row.camera_id, subkey, "", measure, round(getattr(row, measure), 1)]
    availability = row.availability
    yield [section, row.camera_id, subkey, "", "availability", "" if availability is None else round(availability, 6)]


def render(data: ReportData) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows(data))
    return out.getvalue().encode("utf-8-sig")
