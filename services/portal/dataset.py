"""Reviewed cases as training data: `GET /api/dataset/export` and `roadwatch dataset export`.

A police officer's decision on a case is a label a person checked: the evidence frame with the
violating vehicle's box (`EvidenceRef.subject_box`) and its class, and the plate crop with the
confirmed plate text. The export hands these out as a zip for the detector and plate reader's
training (issue: the learning loop), police only, with a stated purpose, written to the audit log
and to `portal.dataset_exports` with the SHA-256 of its manifest.

Which cases: reviewed on or after `since` (the portal's local date), confirmed and not taken
back — confirmed, notified, warned, or resolved as paid. Rejected, merged, cancelled and
appeal-upheld cases are not labels (the decision was no or was overturned), and a case with an
open appeal is left out and counted (its evidence and decision are contested).

Layout of the zip (YOLO for the detector, CSV for everything):
  images/<sha256>.jpg   evidence frames, byte for byte as stored (the name is their hash)
  labels/<sha256>.txt   YOLO: `class cx cy w h`, normalised; ONE box: the violating vehicle
  plates/<sha256>.jpg   plate crops
  plates.csv            file, text (the confirmed printed plate), plate_key, case_id, sha256
  manifest.csv          every file: kind, sha256, case, camera, type, time, class, box, size
  data.yaml             YOLO class names (the project detector's order)
  README.txt            what this is, who exported it, why, and what it does not contain
Only the violating vehicle is boxed in a frame: other vehicles are not labelled, so frames are
positives for that box, not complete labels (merge them with pseudo-labels before training a
detector on them).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import sys
import zipfile
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any

import msgspec
from PIL import Image

from proto import ids
from services.portal import audit, store
from services.portal.agencies import User
from services.portal.context import EvidenceError

# The project detector's classes, in its output order (models/vn_yolox_nano_ft1.names).
CLASSES = ("motorcycle", "bicycle", "car", "bus", "truck")
LABELLED_STATES = ("confirmed", "notified", "warned", "resolved")
MAX_CASES = 5000  # one export; ask for a later `since` for more


class ExportError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Export:
    export_id: str
    cases: int = 0
    images: int = 0
    plates: int = 0
    under_appeal: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)  # a class the detector has no name for, or no box
    missing: list[str] = field(default_factory=list)  # evidence no longer in the store (retention)
    manifest_sha256: str = ""
    data: bytes = b""


SELECT = (f"SELECT {store.CASE_COLUMNS} FROM portal.cases WHERE reviewed_at >= $1 AND state = ANY($2) "
          "AND (state <> 'resolved' OR resolution = 'paid') ORDER BY reviewed_at, case_id LIMIT $3")


def yolo_line(vehicle_class: str, box: dict[str, float], width: int, height: int) -> str | None:
    """`class cx cy w h` normalised to the image, the box clipped to it; None for a class the
    detector has no name for or a box with no area inside the image."""
    if vehicle_class not in CLASSES:
        return None
    x1, y1 = max(0.0, box["x1"]), max(0.0, box["y1"])
    x2, y2 = min(float(width), box["x2"]), min(float(height), box["y2"])
    if x2 <= x1 or y2 <= y1:
        return None
    return (f"{CLASSES.index(vehicle_class)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the image's header (nothing is decoded)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def evidence_of(case: dict[str, Any]) -> list[dict[str, Any]]:
    value = case["evidence"]
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else list(value)


async def export(portal, user: User, *, since: date, purpose: str, client: str = "") -> Export:
    """Build the zip and record the export (audit line and portal.dataset_exports) in one
    transaction; the evidence is checked against its SHA-256 as it is read (Portal.evidence)."""
    purpose = purpose.strip()
    if len(purpose) < 10 or len(purpose) > 500:
        raise ExportError(400, "nêu mục đích xuất dữ liệu (10–500 ký tự), ví dụ: huấn luyện lại mô hình phát hiện xe")
    start = datetime.combine(since, time(), zoneinfo.ZoneInfo(portal.config.timezone))
    now = datetime.now(timezone.utc)
    result = Export(export_id=ids.event_id("dataset", user.id, now.isoformat()))
    buffer = io.BytesIO()
    manifest = io.StringIO()
    plates = io.StringIO()
    manifest_csv = csv.writer(manifest)
    manifest_csv.writerow(["file", "kind", "sha256", "case_id", "camera_id", "violation_type", "violation_at",
                           "vehicle_class", "plate", "x1", "y1", "x2", "y2", "width", "height"])
    plates_csv = csv.writer(plates)
    plates_csv.writerow(["file", "text", "plate_key", "case_id", "sha256"])
    async with portal.pool.acquire() as conn, conn.transaction():
        rows = [dict(r) for r in await conn.fetch(SELECT, start, list(LABELLED_STATES), MAX_CASES)]
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            written: set[str] = set()
            for case in rows:
                if case["appeal_lodged_at"] is not None and case["state"] != "resolved":
                    result.under_appeal.append(case["case_id"])
                    continue
                result.cases += 1
                for ref in evidence_of(case):
                    kind, sha = ref.get("kind"), ref.get("sha256", "")
                    if kind not in ("frame", "plate_crop") or not sha:
                        continue
                    try:
                        data = await portal.evidence(sha)
                    except EvidenceError as exc:
                        if exc.status != 404:
                            raise ExportError(exc.status, f"{case['case_id']}: {exc}") from exc
                        result.missing.append(sha)  # purged by retention, or never stored
                        continue
                    folder = "images" if kind == "frame" else "plates"
                    name = f"{folder}/{sha}.jpg"
                    width, height = image_size(data)
                    box = ref.get("subject_box") if kind == "frame" else None
                    if name not in written:
                        archive.writestr(name, data)
                        written.add(name)
                    if kind == "frame":
                        line = yolo_line(case["vehicle_class"], box, width, height) if box else None
                        if line is None:
                            result.unlabelled.append(case["case_id"])
                        else:
                            archive.writestr(f"labels/{sha}.txt", line + "\n")
                            result.images += 1
                    else:
                        plates_csv.writerow([name, case["plate"], case["plate_key"], case["case_id"], sha])
                        result.plates += 1
                    corners = [round(box[k], 1) for k in ("x1", "y1", "x2", "y2")] if box else ["", "", "", ""]
                    manifest_csv.writerow([name, kind, sha, case["case_id"], case["camera_id"], case["violation_type"],
                                           case["violation_at"].isoformat(), case["vehicle_class"], case["plate"],
                                           *corners, width, height])
            manifest_bytes = manifest.getvalue().encode()
            result.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
            archive.writestr("manifest.csv", manifest_bytes)
            archive.writestr("plates.csv", plates.getvalue().encode())
            archive.writestr("data.yaml", "# roadwatch dataset export: YOLO class names\n"
                                          "path: .\ntrain: images\nnames:\n"
                             + "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES)))
            archive.writestr("README.txt", readme(result, user, since, purpose, now))
        await audit.append(conn, user_id=user.id, agency=user.agency.id, role=user.role, action="dataset_export",
                           object=f"{result.export_id}: {result.cases} cases since {since.isoformat()}, "
                                  f"manifest {result.manifest_sha256}", purpose=purpose, client=client)
        await conn.execute(
            "INSERT INTO portal.dataset_exports (export_id, at, user_id, agency, purpose, since, cases, images, plates, "
            "under_appeal, manifest_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            result.export_id, now, user.id, user.agency.id, purpose, since, result.cases, result.images, result.plates,
            len(result.under_appeal), result.manifest_sha256)
    result.data = buffer.getvalue()
    return result


def readme(result: Export, user: User, since: date, purpose: str, now: datetime) -> str:
    return (
        "roadwatch: reviewed cases as training data\n\n"
        f"Export {result.export_id}, {now.isoformat(timespec='seconds')}, by {user.id} ({user.agency.id}).\n"
        f"Purpose: {purpose}\n"
        f"Cases reviewed since {since.isoformat()}: {result.cases} exported; {len(result.under_appeal)} left out "
        f"(appeal open): {', '.join(result.under_appeal) or '-'}.\n"
        f"Frames with a box: {result.images}; plate crops: {result.plates}; frames without a usable box or class: "
        f"{len(result.unlabelled)}; evidence objects no longer stored: {len(result.missing)}.\n\n"
        "Each frame has ONE box: the violating vehicle a police officer confirmed. Other vehicles in the frame are\n"
        "not labelled. Plate texts are the confirmed printed plates. manifest.csv lists every file with its SHA-256\n"
        "and source case; its own SHA-256 is recorded in the portal with this export.\n\n"
        "These images show people and vehicles: personal data under Law 91/2025. Use them only for the purpose\n"
        "above, keep them no longer than it needs, and do not publish them.\n"
    )


# --- the command line: roadwatch dataset export ---------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="roadwatch dataset",
        description="Export reviewed cases as training data (police only, audited): asks the portal's "
                    "GET /api/dataset/export and unpacks the zip into --out.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("export", help="export cases reviewed since a date")
    run.add_argument("--since", required=True, type=date.fromisoformat, help="first review date, YYYY-MM-DD")
    run.add_argument("--out", required=True, help="folder to write the dataset into (created; must be empty)")
    run.add_argument("--purpose", required=True, help="why the data is exported (audited), 10-500 characters")
    run.add_argument("--portal", default=os.environ.get("PORTAL_URL", "http://127.0.0.1:8080"),
                     help="the portal's URL (default $PORTAL_URL or http://127.0.0.1:8080)")
    run.add_argument("--token-env", default="ROADWATCH_TOKEN",
                     help="environment variable holding a police API token (default ROADWATCH_TOKEN)")
    args = parser.parse_args(argv)
    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"roadwatch dataset: set {args.token_env} to a police API token", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    if os.path.exists(out) and os.listdir(out):
        print(f"roadwatch dataset: {out} is not empty", file=sys.stderr)
        return 2
    import urllib.error
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"since": args.since.isoformat(), "purpose": args.purpose})
    request = urllib.request.Request(f"{args.portal.rstrip('/')}/api/dataset/export?{query}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 (the operator's own portal)
            body = response.read()
            export_id = response.headers.get("X-Export-Id", "")
    except urllib.error.HTTPError as exc:
        print(f"roadwatch dataset: the portal refused ({exc.code}): {exc.read().decode(errors='replace')}",
              file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"roadwatch dataset: cannot reach {args.portal}: {exc.reason}", file=sys.stderr)
        return 1
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        archive.extractall(out)
        names = archive.namelist()
    print(f"export {export_id}: {sum(n.startswith('labels/') for n in names)} labelled frames, "
          f"{sum(n.startswith('plates/') for n in names)} plate crops in {out}")
    return 0


def summary(result: Export) -> dict[str, Any]:
    return {"export_id": result.export_id, "cases": result.cases, "images": result.images, "plates": result.plates,
            "under_appeal": result.under_appeal, "missing": len(result.missing),
            "manifest_sha256": result.manifest_sha256}
