"""The report as a PDF for the agencies' coordination meeting (Vietnamese, DejaVu fonts, A4).

Sections follow the agency's scope (report_data.SECTIONS_BY_ROLE) and are numbered as they come.
Every figure printed here is also in the CSV under a stable code (report_csv.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from fpdf import FPDF
from fpdf.fonts import FontFace

from services.portal import cases, report_format as fmt
from services.portal.report_data import ReportData
from services.portal.report_incidents import INCIDENT_LABELS

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
STATE_LABELS = {"online": "Hoạt động", "degraded": "Suy giảm", "offline": "Mất tín hiệu"}
HEADING = FontFace(emphasis="BOLD", fill_color=(222, 230, 240))
OUTAGES_SHOWN = 40
SHORT = "%H:%M %d/%m"  # the outage table: the period's year is in the title
TITLE = "BÁO CÁO TÌNH HÌNH VI PHẠM TRẬT TỰ AN TOÀN GIAO THÔNG QUA HỆ THỐNG CAMERA"


def font_paths() -> tuple[Path, Path]:
    """DejaVu Sans (regular, bold) from the system (Debian: fonts-dejavu-core): it has every
    Vietnamese glyph; fonts are read at run time, never shipped in the repository."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise FileNotFoundError("DejaVuSans.ttf not found: install the Debian package fonts-dejavu-core")


def summary_lines(data: ReportData) -> list[str]:
    """The report's key figures in a few sentences (the PDF's summary, the e-mail's body)."""
    lines = []
    if "violations" in data.scope.sections:
        t = data.totals
        lines.append(f"Tổng số vi phạm camera phát hiện: {t['total']}; đã xác nhận: {t['confirmed']}; "
                     f"đã loại bỏ: {t['rejected']}; đang chờ cán bộ xác minh: {t['awaiting_review']}.")
    if "deadlines" in data.scope.sections:
        n, r = data.notice_deadline, data.resolution_deadline
        lines.append(f"Thông báo vi phạm ({data.deadlines.notice_within_days} ngày): {n['due']} vụ đến hạn, "
                     f"{n['met']} đúng hạn, {n['late']} quá hạn.")
        lines.append(f"Giải quyết sau thông báo ({data.deadlines.warning_after_days} ngày): {r['due']} vụ đến hạn, "
                     f"{r['met']} đúng hạn, {r['late']} quá hạn ({r['warned']} đã cảnh báo đăng kiểm).")
    if "incidents" in data.scope.sections:
        lines.append("Sự cố giao thông: chưa có dữ liệu sự cố." if data.incidents is None
                     else f"Sự cố giao thông phát hiện: {data.incidents.total}.")
    if "uptime" in data.scope.sections and data.uptime_cameras:
        observed = sum(c.observed_s for c in data.uptime_cameras)
        online = sum(c.online_s for c in data.uptime_cameras)
        lines.append(f"Camera: {len(data.uptime_cameras)} camera có số liệu, tỷ lệ hoạt động chung "
                     f"{fmt.share(online, observed)}, {len(data.outages)} lần gián đoạn.")
    if "traffic" in data.scope.sections:
        lines.append(f"Lưu lượng phương tiện qua các tuyến đếm: {fmt.number(sum(r['vehicles'] for r in data.traffic))} lượt.")
    return lines


class _Pdf(FPDF):
    label = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("dejavu", size=7.5)
        self.set_text_color(90)
        self.cell(0, 6, f"{self.label} – trang {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)


class _Writer:
    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.tz = data.timezone
        regular, bold = font_paths()
        pdf = self.pdf = _Pdf(orientation="P", unit="mm", format="A4")
        pdf.set_margins(16, 14, 16)
        pdf.set_auto_page_break(True, margin=16)
        pdf.add_font("dejavu", "", str(regular))
        pdf.add_font("dejavu", "B", str(bold))
        pdf.alias_nb_pages()
        pdf.set_title("Báo cáo sơ kết vi phạm giao thông qua hình ảnh")
        pdf.set_creator("roadwatch portal")
        pdf.label = f"roadwatch – báo cáo sơ kết kỳ {fmt.period(data.start, data.end, self.tz)}"
        self.section_number = 0

    # --- building blocks ------------------------------------------------------------------------
    def heading(self, text: str) -> None:
        self.section_number += 1
        if self.pdf.get_y() > 240:
            self.pdf.add_page()
        self.pdf.ln(2)
        self.pdf.set_font("dejavu", "B", 11.5)
        self.pdf.cell(0, 8, f"{self.section_number}. {text}", new_x="LMARGIN", new_y="NEXT")

    def subheading(self, text: str) -> None:
        self.pdf.set_font("dejavu", "B", 9.5)
        self.pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")

    def note(self, text: str) -> None:
        self.pdf.set_font("dejavu", size=8.5)
        self.pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], widths: Sequence[float],
              align: Sequence[str] | None = None, empty: str = "Không có dữ liệu trong kỳ.") -> None:
        pdf = self.pdf
        pdf.set_font("dejavu", size=8.5)
        if not rows:
            self.note(empty)
            return
        align = align or ["LEFT"] + ["RIGHT"] * (len(header) - 1)
        with pdf.table(col_widths=widths, text_align=align, headings_style=HEADING, line_height=5,
                       padding=(0.8, 1.2), borders_layout="HORIZONTAL_LINES") as table:
            table.row([str(h) for h in header])
            for row in rows:
                table.row([str(value) for value in row])
        pdf.ln(3)

    # --- sections -------------------------------------------------------------------------------
    def title(self) -> None:
        pdf, data = self.pdf, self.data
        pdf.add_page()
        pdf.set_font("dejavu", "B", 9)
        pdf.cell(90, 5, "HỆ THỐNG CAMERA GIÁM SÁT GIAO THÔNG")
        pdf.set_font("dejavu", size=9)
        pdf.cell(0, 5, f"Lập lúc {fmt.local(data.generated_at, self.tz)}", align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        pdf.set_font("dejavu", "B", 14)
        pdf.multi_cell(0, 7, TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("dejavu", "B", 11)
        pdf.cell(0, 7, "(Sơ kết phục vụ giao ban liên ngành)", align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("dejavu", size=10)
        pdf.cell(0, 7, f"Kỳ báo cáo: {fmt.period(data.start, data.end, self.tz)}", align="C",
                 new_x="LMARGIN", new_y="NEXT")
        if data.scope.agency_name:
            pdf.cell(0, 6, f"Kính gửi: {data.scope.agency_name}", align="C", new_x="LMARGIN", new_y="NEXT")
        if data.scope.communes is not None:
            pdf.set_font("dejavu", size=9)
            pdf.cell(0, 5, f"Phạm vi: vụ việc của chủ phương tiện cư trú tại địa bàn (mã xã, phường "
                           f"{', '.join(data.scope.communes)})", align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)

    def summary(self) -> None:
        self.heading("Tóm tắt")
        self.pdf.set_font("dejavu", size=9.5)
        for line in summary_lines(self.data):
            self.pdf.multi_cell(0, 5.5, "• " + line, new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(2)

    def violations(self) -> None:
        data = self.data
        self.heading("Vi phạm được phát hiện")
        stats = ["Tổng", "Xác nhận", "Loại bỏ", "Chờ xác minh"]
        wide = [82, 18, 20, 18, 30]

        def stat(row: dict) -> list[str]:
            return [fmt.number(row[k]) for k in ("total", "confirmed", "rejected", "awaiting_review")]

        self.subheading("Theo loại vi phạm")
        self.table(["Loại vi phạm", *stats], [[cases.VIOLATION_LABELS.get(r["key"], r["key"]), *stat(r)]
                                              for r in data.by_type], wide)
        self.subheading("Theo địa điểm (camera)")
        self.table(["Camera", "Địa điểm", *stats], [[r["key"], r["place"] or "–", *stat(r)] for r in data.by_camera],
                   [32, 66, 14, 18, 16, 26], ["LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"])
        self.subheading("Theo khung giờ trong ngày")
        self.table(["Khung giờ", *stats], [[fmt.hour(r["key"]), *stat(r)] for r in data.by_hour], wide)
        self.subheading("Theo loại phương tiện")
        self.table(["Loại phương tiện", *stats], [[cases.VEHICLE_LABELS.get(r["key"], r["key"]), *stat(r)]
                                                  for r in data.by_vehicle_class], wide)

    def deadlines(self) -> None:
        data = self.data
        n, r = data.notice_deadline, data.resolution_deadline
        self.heading("Thời hạn xử lý")
        self.note("Tính cho các vụ việc có thời hạn rơi vào kỳ báo cáo; đúng hạn là việc đã làm xong trước thời hạn.")
        self.table(["Thời hạn", "Đến hạn", "Đúng hạn", "Quá hạn", "Tỷ lệ đúng hạn", "Ghi chú"], [
            [f"Gửi thông báo ({data.deadlines.notice_within_days} ngày từ khi vi phạm)",
             fmt.number(n["due"]), fmt.number(n["met"]), fmt.number(n["late"]), fmt.share(n["met"], n["due"]),
             f"{fmt.number(n['unsent_at_end'])} vụ đến cuối kỳ chưa gửi"],
            [f"Giải quyết ({data.deadlines.warning_after_days} ngày từ khi thông báo)",
             fmt.number(r["due"]), fmt.number(r["met"]), fmt.number(r["late"]), fmt.share(r["met"], r["due"]),
             f"{fmt.number(r['warned'])} vụ đã cảnh báo đăng kiểm"],
        ], [60, 15, 15, 15, 18, 45], ["LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT"])
        self.subheading("Thông báo vi phạm đã gửi trong kỳ, theo kênh")
        channel = {"email": "Thư điện tử", "sms": "Tin nhắn SMS", "post": "Thư bưu chính"}
        self.table(["Kênh", "Đã gửi", "Trong thời hạn", "Sau thời hạn", "Gửi không thành công"],
                   [[channel.get(row["key"], row["key"]), fmt.number(row["sent"]), fmt.number(row["on_time"]),
                     fmt.number(row["late"]), fmt.number(row["failed"])] for row in data.notices_by_channel],
                   [58, 22, 26, 26, 34])

    def incidents(self) -> None:
        data = self.data
        self.heading("Sự cố giao thông và thời gian phản ứng")
        if data.incidents is None:
            self.note("Chưa có dữ liệu sự cố: hệ thống chưa ghi nhận sự cố trong cơ sở dữ liệu của cổng thông tin.")
            return
        self.table(["Loại sự cố", "Số sự cố", "Đã tiếp nhận", "Đã đóng", "Tiếp nhận (trung vị)",
                    "Tiếp nhận (90 %)", "Đóng (trung vị)"],
                   [[INCIDENT_LABELS.get(r["key"], r["key"]), fmt.number(r["incidents"]), fmt.number(r["acknowledged"]),
                     fmt.number(r["closed"]), fmt.duration(r["ack_median_s"]), fmt.duration(r["ack_p90_s"]),
                     fmt.duration(r["close_median_s"])] for r in data.incidents.by_type],
                   [44, 17, 19, 15, 23, 23, 25])

    def uptime(self) -> None:
        data = self.data
        self.heading("Hoạt động của camera")
        self.note("Tỷ lệ hoạt động: thời gian camera ở trạng thái hoạt động bình thường trên thời gian có số liệu; "
                  "suy giảm và mất tín hiệu tính là gián đoạn. Ngày tính theo giờ Việt Nam.")
        count = {c.camera_id: 0 for c in data.uptime_cameras}
        for outage in data.outages:
            count[outage.camera_id] = count.get(outage.camera_id, 0) + 1
        self.table(["Camera", "Có số liệu", "Suy giảm", "Mất tín hiệu", "Tỷ lệ hoạt động", "Số lần gián đoạn"],
                   [[c.camera_id, fmt.duration(c.observed_s), fmt.duration(c.degraded_s), fmt.duration(c.offline_s),
                     fmt.percent(c.availability), fmt.number(count[c.camera_id])] for c in data.uptime_cameras],
                   [40, 28, 24, 26, 24, 24])
        self.subheading("Các lần gián đoạn (thời lượng từ lúc bắt đầu, kể cả trước kỳ, đến khi khắc phục hoặc cuối kỳ)")
        until = data.uptime_until
        ongoing = "chưa khắc phục" if until < data.end else "còn tiếp sau cuối kỳ"
        longest = sorted(data.outages, key=lambda o: -o.duration_s(until))[:OUTAGES_SHOWN]
        self.table(["Camera", "Bắt đầu", "Kết thúc", "Thời lượng", "Tình trạng", "Nguyên nhân"],
                   [[o.camera_id, fmt.local(o.start, self.tz, SHORT), fmt.local(o.end, self.tz, SHORT) if o.end else ongoing,
                     fmt.duration(o.duration_s(until)), STATE_LABELS.get(o.state, o.state), fmt.causes(o.causes)]
                    for o in sorted(longest, key=lambda o: (o.camera_id, o.start))],
                   [20, 20, 26, 22, 22, 68], ["LEFT"] * 6, empty="Không có gián đoạn trong kỳ.")
        if len(data.outages) > OUTAGES_SHOWN:
            self.note(f"Chỉ liệt kê {OUTAGES_SHOWN} lần gián đoạn dài nhất trên tổng số {len(data.outages)}; "
                      "danh sách đầy đủ trong tệp CSV kèm theo.")

    def traffic(self) -> None:
        data = self.data
        self.heading("Lưu lượng phương tiện theo tuyến đếm")
        classes = [c for c in cases.VEHICLE_LABELS if any(r["vehicle_class"] == c for r in data.traffic)]
        classes += sorted({r["vehicle_class"] for r in data.traffic} - set(classes))
        lines: dict[tuple[str, str], dict[str, int]] = {}
        for row in data.traffic:
            lines.setdefault((row["camera_id"], row["line"]), {})[row["vehicle_class"]] = row["vehicles"]
        rows = [[camera, line or "–", *(fmt.number(counts.get(c, 0)) for c in classes),
                 fmt.number(sum(counts.values()))] for (camera, line), counts in sorted(lines.items())]
        width = max(14.0, min(22.0, 100 / max(1, len(classes) + 1)))
        self.table(["Camera", "Tuyến đếm", *(cases.VEHICLE_LABELS.get(c, c) for c in classes), "Tổng"], rows,
                   [34, 44, *([width] * (len(classes) + 1))], ["LEFT", "LEFT"] + ["RIGHT"] * (len(classes) + 1))

    def render(self) -> bytes:
        self.title()
        self.summary()
        for section in ("violations", "deadlines", "incidents", "uptime", "traffic"):
            if section in self.data.scope.sections:
                getattr(self, section)()
        return bytes(self.pdf.output())


def render(data: ReportData) -> bytes:
    return _Writer(data).render()
