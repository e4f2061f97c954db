"""The case state machine of DESIGN.md §4, as plain data.

The database enforces the same table (portal.case_transitions and its trigger); this copy lets
the pages offer only the actions that can succeed, and a test keeps the two identical.
"""

from __future__ import annotations

import re

STATES = ("detected", "identified", "unidentified", "confirmed", "rejected", "notified", "warned", "resolved",
          "merged")

TRANSITIONS: frozenset[tuple[str, str]] = frozenset({
    ("detected", "identified"), ("detected", "unidentified"),
    ("identified", "confirmed"), ("identified", "rejected"),
    ("unidentified", "confirmed"), ("unidentified", "rejected"),
    ("confirmed", "notified"), ("confirmed", "resolved"),
    ("notified", "warned"), ("notified", "resolved"),
    ("warned", "resolved"),
    # A second case of one event is merged into the first (final; notify never notifies it).
    ("identified", "merged"), ("unidentified", "merged"), ("confirmed", "merged"),
})

# Awaiting a police officer's decision: the review queue.
REVIEWABLE = frozenset({"identified", "unidentified"})
# Confirmed and not yet resolved: the owner has something to do, so the public lookup shows it.
OPEN = frozenset({"confirmed", "notified", "warned"})
RESOLVABLE = frozenset(to_from[0] for to_from in TRANSITIONS if to_from[1] == "resolved")

STATE_LABELS = {
    "detected": "Mới phát hiện",
    "identified": "Đã xác định chủ xe",
    "unidentified": "Chưa xác định chủ xe",
    "confirmed": "Đã xác nhận vi phạm",
    "rejected": "Đã loại bỏ",
    "notified": "Đã gửi thông báo",
    "warned": "Đã cảnh báo đăng kiểm",
    "resolved": "Đã xử lý xong",
    "merged": "Đã gộp vào vụ việc khác",
}
# Why notify holds a confirmed case's notices (notice.held).
HOLD_LABELS = {"no_legal_basis": "cần căn cứ pháp lý", "possible_duplicate": "có thể trùng vụ việc đã thông báo"}
MERGEABLE = frozenset({"identified", "unidentified", "confirmed"})  # confirmed: only while notify holds it

VIOLATION_LABELS = {
    "red_light": "Không chấp hành hiệu lệnh đèn tín hiệu giao thông",
    "wrong_way": "Đi ngược chiều",
    "wrong_lane": "Đi không đúng làn đường quy định",
    "no_stopping": "Dừng, đỗ xe nơi có biển cấm",
    "speeding": "Chạy quá tốc độ quy định",
    "no_helmet": "Không đội mũ bảo hiểm",
}

VEHICLE_LABELS = {
    "car": "Ô tô", "motorcycle": "Mô tô, xe máy", "bus": "Xe khách", "truck": "Ô tô tải",
    "van": "Xe bán tải", "bicycle": "Xe đạp", "other": "Khác", "person": "Người đi bộ",
}

UNIDENTIFIED_LABELS = {"no_read": "Camera không đọc được biển số",
                       "invalid_format": "Biển số đọc được không đúng định dạng",
                       "no_record": "Biển số không có trong dữ liệu đăng ký xe",
                       "lookup_unavailable": "Chưa tra cứu được chủ xe của biển số đã sửa (hệ thống đăng ký không trả lời)"}

COLOUR_LABELS = {"black": "đen", "white": "trắng", "silver": "bạc", "grey": "xám", "red": "đỏ", "blue": "xanh dương",
                 "yellow": "vàng", "green": "xanh lá", "brown": "nâu", "orange": "cam", "other": "màu khác", "": ""}

PLATE_COLOUR_LABELS = {"white": "Nền trắng", "yellow": "Nền vàng", "blue": "Nền xanh", "red": "Nền đỏ",
                       "other": "Khác", "": ""}


def allowed(from_state: str, to_state: str) -> bool:
    return (from_state, to_state) in TRANSITIONS


def next_states(state: str) -> tuple[str, ...]:
    return tuple(sorted(to for frm, to in TRANSITIONS if frm == state))


def state_after_notice(state: str, kind: str) -> str | None:
    """The state a sent notice moves a case to, or None when it changes nothing.

    An owner notice (or a transfer to the owner's commune) is what `notified` means; the
    inspection warning is sent when the deadline passed (`warned`). A repeat (another channel
    of the same notice) finds the case already there and changes nothing.
    """
    if kind in ("owner_notice", "commune_transfer") and state == "confirmed":
        return "notified"
    if kind == "inspection_warning" and state == "notified":
        return "warned"
    if kind == "inspection_warning" and state == "confirmed":
        return "notified"  # no owner notice recorded yet: the warning implies one went out
    return None


# --- plates ----------------------------------------------------------------------------------------
_KEY = re.compile(r"[^0-9A-Z]")
# Province code, series, then 4 or 5 digits: cars have one or two letters (15A-123.45,
# 51LD-123.45), motorbikes a letter and a digit (29-B1 123.45).
_CAR = re.compile(r"^(?P<province>[1-9][0-9])(?P<series>[A-Z]{1,2})(?P<number>[0-9]{4,5})$")
_MOTORBIKE = re.compile(r"^(?P<province>[1-9][0-9])(?P<series>[A-Z][0-9]|[A-Z]{2})(?P<number>[0-9]{4,5})$")
# As typed: '29-B1 ...' or '29-AA 123.45' (province, dash, series, space) is a motorbike plate;
# '30K-...' or '51LD-...' (letters then the dash) is a car plate. Bare text says neither.
_TYPED_MOTORBIKE = re.compile(r"^\s*[0-9]{2}\s*-\s*([A-Za-z][0-9]|[A-Za-z]{2})(\s|$)")
_TYPED_CAR = re.compile(r"^\s*[0-9]{2}[A-Za-zĐđ]{1,2}\s*-")


def plate_kinds(text: str) -> set[str]:
    """The plate formats ('car', 'motorbike') this text can be, as typed."""
    key = plate_key(text)
    if _TYPED_MOTORBIKE.match(text):
        return {"motorbike"} if _MOTORBIKE.match(key) else set()
    if _TYPED_CAR.match(text):
        return {"car"} if _CAR.match(key) else set()
    kinds = set()
    if _CAR.match(key):
        kinds.add("car")
    if _MOTORBIKE.match(key):
        kinds.add("motorbike")
    return kinds


def plate_fits_class(text: str, vehicle_class: str) -> bool:
    """False when the plate cannot be of this class's format (a car plate on a motorbike)."""
    wanted = PLATE_KIND.get(vehicle_class)
    return wanted is None or wanted in plate_kinds(text)


# Which plate format a vehicle class carries: cars (and vehicles like cars) one line with a
# series of one or two letters (30K-558.78, 51LD-123.45); motorbikes and mopeds two lines with a
# series of a letter and a digit (29-B1 / 123.45), or two letters for mopeds (29-AA 123.45).
PLATE_KIND = {"car": "car", "van": "car", "truck": "car", "bus": "car", "motorcycle": "motorbike",
              "moped": "motorbike"}
PLATE_KIND_LABELS = {"car": "biển ô tô (một hàng, ví dụ 30K-558.78)",
                     "motorbike": "biển mô tô, xe máy (hai hàng, ví dụ 29-B1 123.45)"}


def plate_key(text: str) -> str:
    """The bare [0-9A-Z] form a citizen's query and a stored plate are compared in."""
    return _KEY.sub("", (text or "").upper().replace("Đ", "D"))


def format_plate(text: str, vehicle_class: str = "") -> str:
    """The printed form of a plate an officer typed, e.g. '15a12345' → '15A-123.45';
    raises ValueError for something that is not a Vietnamese plate.

    '15A12345' could be a car (15A-123.45) or an old motorbike plate (15-A1 2345): the form typed
    decides ('15-A1 ...' or '15A-...'), else the case's vehicle class, else the car reading.
    """
    key = plate_key(text)
    car, motorbike = _CAR.match(key), _MOTORBIKE.match(key)
    if _TYPED_MOTORBIKE.match(text) or (PLATE_KIND.get(vehicle_class) == "motorbike" and not _TYPED_CAR.match(text)):
        match = motorbike or car
    else:
        match = car or motorbike
    if not match or not 11 <= int(match["province"]) <= 99:
        raise ValueError(f"{text!r} is not a Vietnamese plate (e.g. 30A-123.45 or 29-B1 123.45)")
    number = match["number"]
    shown = f"{number[:3]}.{number[3:]}" if len(number) == 5 else number
    if match is motorbike:
        return f"{match['province']}-{match['series']} {shown}"
    return f"{match['province']}{match['series']}-{shown}"
