"""`roadwatch registry synth --vehicles N`: a realistic, reproducible Vietnamese registry extract.

Demos and benchmarks need data shaped like the real thing without anyone's personal data: the
motorbike-heavy mix of Vietnamese traffic, plates by province code (mostly the province's own,
some from elsewhere), owners with several vehicles, companies with fleets on yellow commercial
plates, and addresses in the communes of one province read from a configurable list. The same
seed gives the same file.
"""

from __future__ import annotations

import csv
import random
import sys
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

import yaml

from services.registry import plates as plate_forms
from services.registry import rows

DEFAULT_PROVINCE = Path(__file__).resolve().parent / "data" / "ha-noi.yaml"

# Roughly the national fleet: ~90% motorbikes. (type, weight)
TYPE_MIX = (("motorcycle", 880), ("car", 90), ("van", 10), ("truck", 15), ("bus", 5))
# Share of vehicles registered in another province that still drive and get caught here.
OTHER_PROVINCES = (51, 43, 15, 14, 99, 88, 34, 17, 18, 35, 36, 37, 38, 19, 20, 21, 22, 89, 90, 98)
OUT_OF_PROVINCE = 0.12
SERIES_LETTERS = "ABCDEFGHKLMNPSTUVXYZ"
MOTORBIKE_SERIES_LETTERS = "ABCDEFGHKLMNPSTUVXYZ"
CAR_SERIES = {"car": "AAAAAAAAEFGHK", "van": "D", "truck": "C", "bus": "B"}
BRANDS = {
    "motorcycle": (("Honda", 70), ("Yamaha", 17), ("Suzuki", 3), ("SYM", 3), ("Piaggio", 3), ("VinFast", 4)),
    "car": (("Toyota", 22), ("Hyundai", 18), ("Kia", 15), ("Mazda", 10), ("Ford", 8), ("Honda", 7),
            ("Mitsubishi", 7), ("VinFast", 9), ("Mercedes-Benz", 4)),
    "van": (("Ford", 40), ("Toyota", 30), ("Hyundai", 20), ("Thaco", 10)),
    "truck": (("Hino", 25), ("Isuzu", 25), ("Hyundai", 20), ("Thaco", 20), ("Dongfeng", 10)),
    "bus": (("Thaco", 50), ("Hyundai", 30), ("Samco", 20)),
}
COLOURS = {
    "motorcycle": (("black", 30), ("red", 18), ("white", 15), ("blue", 10), ("grey", 10), ("silver", 8),
                   ("brown", 4), ("yellow", 3), ("green", 2)),
    "default": (("white", 35), ("black", 20), ("silver", 15), ("grey", 12), ("red", 8), ("blue", 6),
                ("brown", 3), ("green", 1)),
}
# Family names by their share of the population; middle and given names by sex.
FAMILY_NAMES = (("Nguyễn", 38), ("Trần", 11), ("Lê", 9), ("Phạm", 7), ("Hoàng", 5), ("Huỳnh", 2),
                ("Phan", 4), ("Vũ", 4), ("Võ", 2), ("Đặng", 2), ("Bùi", 2), ("Đỗ", 1.5), ("Hồ", 1.3),
                ("Ngô", 1.3), ("Dương", 1), ("Lý", 0.5), ("Đinh", 0.8), ("Trịnh", 0.6), ("Lương", 0.4))
MIDDLE_NAMES = {"m": ("Văn", "Đức", "Minh", "Quang", "Hữu", "Thành", "Tuấn", "Xuân", "Công", "Mạnh"),
                "f": ("Thị", "Thu", "Ngọc", "Thanh", "Hồng", "Phương", "Minh", "Thùy", "Kim", "Bích")}
GIVEN_NAMES = {"m": ("Anh", "Hùng", "Dũng", "Nam", "Long", "Tuấn", "Hải", "Sơn", "Quân", "Huy", "Cường",
                     "Thắng", "Khoa", "Đạt", "Phong", "Trung", "Hiếu", "Bình", "Tùng", "Kiên"),
               "f": ("Hương", "Lan", "Mai", "Hà", "Linh", "Trang", "Hoa", "Thảo", "Phương", "Hạnh", "Ngọc",
                     "Huyền", "Nga", "Yến", "Vân", "Nhung", "Quỳnh", "Giang", "Dung", "Oanh")}
COMPANY_FORMS = ("Công ty TNHH", "Công ty Cổ phần", "Hợp tác xã", "Công ty TNHH MTV")
COMPANY_TRADES = {"truck": "Vận tải", "bus": "Vận tải Hành khách", "van": "Thương mại Dịch vụ",
                  "car": "Du lịch", "motorcycle": "Giao nhận"}
COMPANY_NAMES = ("Thăng Long", "Hồng Hà", "Phương Đông", "Sông Đà", "Tràng An", "Kinh Bắc", "Hoàng Gia",
                 "Bình Minh", "An Phát", "Đại Việt", "Minh Long", "Hà Thành", "Tân Tiến", "Phúc Thịnh")
MOBILE_PREFIXES = ("032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077", "078",
                   "079", "081", "082", "083", "084", "085", "086", "088", "090", "091", "093", "094",
                   "096", "097", "098")


@dataclass(frozen=True)
class Province:
    name: str
    plate_codes: tuple[int, ...]
    national_id_prefix: str
    tax_code_prefix: str
    communes: tuple[tuple[str, str], ...]  # (code, name)
    streets: tuple[str, ...]


def load_province(path: Path) -> Province:
    """Read and check a province file; ValueError says what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from exc
    expected = {"province", "plate_codes", "national_id_prefix", "tax_code_prefix", "communes", "streets"}
    if not isinstance(data, dict) or set(data) != expected:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected the keys {sorted(expected)}, got {got}")
    codes = tuple(int(code) for code in data["plate_codes"])
    if not codes or any(not 11 <= code <= 99 for code in codes):
        raise ValueError(f"{path}: plate_codes must be province codes between 11 and 99")
    communes = []
    for item in data["communes"] or ():
        code = str(item.get("code", "")) if isinstance(item, dict) else ""
        if len(code) != 5 or not code.isdigit() or not item.get("name"):
            raise ValueError(f"{path}: every commune needs a 5-digit code and a name (got {item!r})")
        communes.append((code, str(item["name"])))
    if not communes or not data["streets"]:
        raise ValueError(f"{path}: communes and streets must not be empty")
    return Province(str(data["province"]), codes, str(data["national_id_prefix"]).zfill(3),
                    str(data["tax_code_prefix"]), tuple(communes), tuple(str(s) for s in data["streets"]))


def _ascii(text: str) -> str:
    text = text.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isascii() and c.isalnum()).lower()


class Generator:
    def __init__(self, province: Province, seed: int, today: date) -> None:
        self.province = province
        self.random = random.Random(seed)
        self.today = today
        self.plates: set[str] = set()
        self.owners: dict[str, list[list[str]]] = {"person": [], "organisation": []}
        self.national_ids: set[str] = set()
        self._types, self._type_weights = zip(*TYPE_MIX)

    def _pick(self, weighted: tuple[tuple[str, float], ...]) -> str:
        names, weights = zip(*weighted)
        return self.random.choices(names, weights)[0]

    def plate(self, vehicle_type: str, registered: date) -> str:
        r = self.random
        while True:
            code = r.choice(OTHER_PROVINCES) if r.random() < OUT_OF_PROVINCE else r.choice(self.province.plate_codes)
            long_serial = registered.year >= 2015 or r.random() < 0.2
            serial = f"{r.randrange(100000):05d}" if long_serial else f"{r.randrange(10000):04d}"
            serial_printed = f"{serial[:3]}.{serial[3:]}" if long_serial else serial
            if vehicle_type == "motorcycle":
                series = r.choice(MOTORBIKE_SERIES_LETTERS) + str(r.randrange(1, 10))
                printed = f"{code:02d}-{series} {serial_printed}"
            else:
                series = r.choice(CAR_SERIES[vehicle_type])
                printed = f"{code:02d}{series}-{serial_printed}"
            bare = f"{code:02d}{series}{serial}"
            if bare not in self.plates:
                self.plates.add(bare)
                return printed

    def _national_id(self, kind: str, sex: str = "m") -> str:
        r = self.random
        while True:
            if kind == "person":
                born = r.randrange(1950, 2006)
                sex_century = (0 if born < 2000 else 2) + (sex == "f")
                number = f"{self.province.national_id_prefix}{sex_century}{born % 100:02d}{r.randrange(10**6):06d}"
            else:
                number = f"{self.province.tax_code_prefix}{r.randrange(10**8):08d}"
            if number not in self.national_ids:
                self.national_ids.add(number)
                return number

    def _address(self) -> tuple[str, str]:
        r = self.random
        code, commune = r.choice(self.province.communes)
        street = r.choice(self.province.streets)
        number = r.randrange(1, 400)
        if r.random() < 0.5:
            address = f"Số {number}, ngõ {r.randrange(1, 300)} {street}, {commune}"
        else:
            address = f"Số {number} {street}, {commune}"
        return address, code

    def owner(self, kind: str, vehicle_type: str) -> list[str]:
        r = self.random
        pool = self.owners[kind]
        reuse = 0.7 if kind == "organisation" else 0.2
        if pool and r.random() < reuse:
            return r.choice(pool)
        address, commune = self._address()
        sex = r.choice("mf")
        national_id = self._national_id(kind, sex)
        if kind == "person":
            family, middle, given = self._pick(FAMILY_NAMES), r.choice(MIDDLE_NAMES[sex]), r.choice(GIVEN_NAMES[sex])
            name = f"{family} {middle} {given}"
            email = f"{_ascii(given)}.{_ascii(family)}{r.randrange(100)}@gmail.com" if r.random() < 0.3 else ""
        else:
            name = f"{r.choice(COMPANY_FORMS)} {COMPANY_TRADES[vehicle_type]} {r.choice(COMPANY_NAMES)}"
            email = f"lienhe@{_ascii(name.split()[-2] + name.split()[-1])}.vn" if r.random() < 0.6 else ""
        phone = f"{r.choice(MOBILE_PREFIXES)}{r.randrange(10**7):07d}" if r.random() < 0.9 else ""
        owner = [kind, name, national_id, address, commune, self.province.name, phone, email]
        pool.append(owner)
        return owner

    def vehicle(self, plate: str | None = None, vehicle_type: str | None = None) -> list[str]:
        """A random registration; `plate` and `vehicle_type` pin those two (demo plates)."""
        r = self.random
        vehicle_type = vehicle_type or r.choices(self._types, self._type_weights)[0]
        organisation_share = {"motorcycle": 0.01, "car": 0.2, "van": 0.6, "truck": 0.7, "bus": 0.95}[vehicle_type]
        kind = "organisation" if r.random() < organisation_share else "person"
        # Registrations grow year on year: draw the age from a skewed distribution.
        registered = self.today - timedelta(days=int(r.betavariate(1.2, 3.0) * 20 * 365))
        plate_colour = "white"
        if kind == "organisation":
            plate_colour = "yellow" if vehicle_type != "car" or r.random() < 0.5 else \
                ("blue" if r.random() < 0.3 else "white")
        if vehicle_type == "motorcycle":
            inspection, expires = "not_required", ""
        else:
            roll = r.random()
            if roll < 0.85:
                inspection, expires = "valid", (self.today + timedelta(days=r.randrange(1, 540))).isoformat()
            elif roll < 0.97:
                inspection, expires = "expired", (self.today - timedelta(days=r.randrange(1, 400))).isoformat()
            else:
                inspection, expires = "held", (self.today + timedelta(days=r.randrange(1, 300))).isoformat()
        colours = COLOURS.get(vehicle_type, COLOURS["default"])
        return [plate or self.plate(vehicle_type, registered), plate_colour, vehicle_type, self._pick(BRANDS[vehicle_type]),
                self._pick(colours), registered.isoformat(), inspection, expires, *self.owner(kind, vehicle_type)]


def read_plates(path: Path) -> list[tuple[str, str]]:
    """`PLATE,VEHICLE_TYPE` lines (the plate as printed; `#` starts a comment): plates that must
    resolve to an owner, such as those the demo clips show."""
    plates: list[tuple[str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        plate, _, vehicle_type = (part.strip() for part in line.partition(","))
        if vehicle_type not in dict(TYPE_MIX):
            raise ValueError(f"{path}:{number}: vehicle type {vehicle_type!r} is not one of {', '.join(dict(TYPE_MIX))}")
        try:
            printed = plate_forms.parse_printed(plate)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        plates.append((printed.display, vehicle_type))
    return plates


def write(out: TextIO, vehicles: int, province: Province, seed: int = 1, today: date | None = None,
          hotlist_out: TextIO | None = None, hotlist: int = 0, pinned: list[tuple[str, str]] = ()) -> list[str]:
    """Write the vehicles CSV (and optionally a hotlist of some of them); returns the hotlist plates."""
    generator = Generator(province, seed, today or date.today())
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows.VEHICLE_COLUMNS)
    for plate, vehicle_type in pinned:
        generator.plates.add(plate_forms.normalise(plate))
        row = generator.vehicle(plate, vehicle_type)
        if not row[-1]:
            # A demo plate's owner always has an e-mail address, so that its notice shows up in
            # the local outbox (the owner is the last 8 columns: kind, name, national id, ...,
            # phone, email). The owner may own other vehicles too: the same details everywhere.
            email = f"{_ascii(row[-7])}@example.vn"
            row[-1] = email
            for owner in (o for pool in generator.owners.values() for o in pool if o[2] == row[-6]):
                owner[-1] = email
        writer.writerow(row)
    every = max(vehicles // hotlist, 1) if hotlist else 0
    wanted: list[str] = []
    for number in range(vehicles):
        row = generator.vehicle()
        writer.writerow(row)
        if every and number % every == every - 1 and len(wanted) < hotlist:
            wanted.append(row[0])
    if hotlist_out is not None:
        hot = csv.writer(hotlist_out, lineterminator="\n")
        hot.writerow(rows.HOTLIST_COLUMNS)
        reasons = ("xe bị mất cắp (stolen)", "truy nã liên quan vụ án hình sự (wanted in a criminal case)",
                   "bỏ chạy sau tai nạn (hit and run)", "chưa nộp phạt quá hạn (unpaid fines)")
        for number, plate in enumerate(wanted):
            hot.writerow([plate, reasons[number % len(reasons)], "police", (generator.today - timedelta(days=number % 30)).isoformat(), ""])
    return wanted


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="roadwatch registry synth",
                                     description="Write a synthetic Vietnamese vehicle-registration extract as CSV.")
    parser.add_argument("--vehicles", type=int, required=True, help="number of vehicles")
    parser.add_argument("--out", type=Path, help="CSV file to write (default: standard output)")
    parser.add_argument("--hotlist", type=int, default=0, help="also pick this many of the vehicles as wanted")
    parser.add_argument("--hotlist-out", type=Path, help="where to write the hotlist CSV (with --hotlist)")
    parser.add_argument("--communes", type=Path, default=DEFAULT_PROVINCE,
                        help="province file: plate codes, communes, streets (default: Hà Nội)")
    parser.add_argument("--plates", type=Path,
                        help="file of PLATE,VEHICLE_TYPE lines: these plates are registered too (demo clips)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--today", type=date.fromisoformat, help="reference date (default: today)")
    args = parser.parse_args(argv)
    if args.vehicles < 1:
        parser.error("--vehicles must be at least 1")
    if args.hotlist and not args.hotlist_out:
        parser.error("--hotlist needs --hotlist-out FILE")
    try:
        province = load_province(args.communes)
        pinned = read_plates(args.plates) if args.plates else []
    except ValueError as exc:
        print(f"roadwatch registry synth: {exc}", file=sys.stderr)
        return 2
    out = args.out.open("w", newline="", encoding="utf-8") if args.out else sys.stdout
    hot = args.hotlist_out.open("w", newline="", encoding="utf-8") if args.hotlist_out else None
    try:
        write(out, args.vehicles, province, args.seed, args.today, hot, args.hotlist, pinned)
    finally:
        if args.out:
            out.close()
        if hot:
            hot.close()
    if args.out:
        print(f"wrote {args.vehicles} vehicles to {args.out}", file=sys.stderr)
    return 0
