"""Sample events and registrations for the registry tests."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import asyncpg

from proto.v1 import (
    Box, DetectedPlate, DetectionMade, FrameRef, Location, Owner, PlateAlternative, PlateText, Vehicle,
    ViolationDetected,
)

from services.registry import importer, rows

AT = datetime(2026, 11, 29, 7, 15, 0, tzinfo=timezone.utc)


def read(text: str, confidence: float = 0.93, alternatives: tuple[tuple[str, float], ...] = (),
         valid: bool = True) -> PlateText:
    return PlateText(text=text, raw=text, confidence=confidence, format_valid=valid,
                     layout="two_line" if " " in text else "one_line",
                     alternatives=tuple(PlateAlternative(text=t, confidence=c) for t, c in alternatives))


def violation(plate: PlateText | None, *, id: str = "v-1", camera: str = "cam-07", vehicle_class: str = "car",
              colour: str | None = None, type: str = "red_light") -> ViolationDetected:
    return ViolationDetected(
        id=id, camera_id=camera, occurred_at=AT, type=type,
        location=Location(latitude=21.0285, longitude=105.8542, address="Ngã tư Kim Mã - Liễu Giai", commune_code="00008"),
        vehicle_class=vehicle_class, vehicle_colour=colour, track_id=42, plate=plate)


def registration(plate: str, printed: str, vehicle_type: str = "car", colour: str = "white") -> tuple[Vehicle, Owner]:
    return (
        Vehicle(plate=plate, plate_printed=printed, plate_colour="white", vehicle_type=vehicle_type, brand="Toyota",
                colour=colour, registration_date=date(2020, 5, 1), inspection_status="valid"),
        Owner(kind="person", name="Nguyễn Văn An", national_id="001090123456", address="Số 12 Kim Mã, Phường Ngọc Hà",
              commune_code="00008", province="Hà Nội", phone="0912345678"),
    )


def detection(*texts: str, id: str = "d-1", camera: str = "cam-07", at: datetime = AT, seq: int = 1) -> DetectionMade:
    box = Box(x1=10, y1=10, x2=60, y2=30)
    return DetectionMade(
        id=id, camera_id=camera, occurred_at=at,
        frame=FrameRef(stream_seq=seq, frame_seq=seq, captured_at=at, width=1920, height=1080),
        plates=tuple(DetectedPlate(box=box, read=read(t)) for t in texts))


VEHICLES = [
    "30A-123.45,white,car,Toyota,white,2020-05-01,valid,2027-05-01,person,Nguyễn Văn An,001090123456,"
    "\"Số 12 Kim Mã, Phường Ngọc Hà\",00008,Hà Nội,0912345678,",
    "29-B1 123.45,white,motorcycle,Honda,black,2019-03-02,not_required,,person,Trần Thị Bình,001190654321,"
    "\"Số 3 ngõ 45 Láng Hạ, Phường Láng\",00199,Hà Nội,,binh.tran@gmail.com",
]


async def load_vehicles(database_url: str, tmp_path: Path, lines: list[str] = VEHICLES) -> None:
    path = tmp_path / "vehicles.csv"
    path.write_text(",".join(rows.VEHICLE_COLUMNS) + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    conn = await asyncpg.connect(database_url)
    try:
        report = await importer.import_csv(conn, path)
    finally:
        await conn.close()
    assert report.ok, importer.describe(report)
