"""How the report writes numbers, shares, durations and times (Vietnamese conventions: 12.345,
98,5 %), shared by the PDF and the e-mail text so that both read alike."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta


def number(value: int | float) -> str:
    return f"{int(value):,}".replace(",", ".")


def share(part: float, whole: float) -> str:
    return percent(part / whole) if whole else "–"


def percent(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.1f}".replace(".", ",") + " %"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} ngày"] * bool(days) + [f"{hours} giờ"] * bool(hours) + [f"{minutes} phút"] * bool(minutes)
    return " ".join(parts) or "0 phút"


def local(value: datetime | None, tz_name: str, fmt: str = "%H:%M %d/%m/%Y") -> str:
    return value.astimezone(zoneinfo.ZoneInfo(tz_name)).strftime(fmt) if value else "–"


def period(start: datetime, end: datetime, tz_name: str) -> str:
    """'20/11/2026 – 26/11/2026' for [start, end) in local days."""
    last = end - timedelta(seconds=1)
    return f"{local(start, tz_name, '%d/%m/%Y')} – {local(last, tz_name, '%d/%m/%Y')}"


def hour(h: int) -> str:
    return f"{h:02d}:00–{h:02d}:59"


# ingest's reasons (services/ingest/health.py) as the meeting reads them; the original follows in
# brackets, and a reason not listed is shown as it is.
CAUSES = (
    ("connected but no frame", "Có kết nối nhưng không nhận được hình ảnh"),
    ("decode errors", "Lỗi giải mã hình ảnh"),
    ("publishing lags", "Chậm truyền hình ảnh, mất khung hình"),
    ("below the target", "Tốc độ khung hình thấp hơn yêu cầu"),
    ("connect", "Không kết nối được camera"),
    ("timed out", "Không kết nối được camera"),
)


def cause(reason: str) -> str:
    lowered = reason.lower()
    label = next((label for key, label in CAUSES if key in lowered), None)
    return f"{label} ({reason})" if label else reason


def causes(reasons: list[str]) -> str:
    return "; ".join(cause(r) for r in reasons) or "–"
