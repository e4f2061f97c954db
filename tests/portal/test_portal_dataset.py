"""Reviewed cases as training data, on a running portal with real evidence in the object store:
the zip's frames and labels, plate crops and manifest against the cases; an appeal keeps a case
out; only the police may export, with a purpose, and every export is audited and recorded."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import sys
import zipfile
from datetime import date

import asyncpg
from PIL import Image

from portal_samples import AMBULANCE, case_for, identified, publish_violation, put_evidence

PURPOSE = "huấn luyện lại mô hình phát hiện xe (thử nghiệm)"


async def test_confirmed_cases_become_labels_and_an_appeal_keeps_one_out(portal_url, start_portal, js, street_dir,
                                                                          wait_for, repo_dir, tmp_path):
    running = await start_portal(portal_url)
    police = running.headers("police")
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    events = [identified(running.camera, n, plate=plate, evidence=evidence)
              for n, plate in ((1, "15A-123.45"), (2, "15A-678.90"), (3, "15A-222.33"))]
    for event in events:
        await publish_violation(js, event)
    case_ids = [(await wait_for(lambda e=e: case_for(portal_url, e.violation.id)))["case_id"] for e in events]
    confirmed, appealed, rejected = case_ids
    for case_id in (confirmed, appealed):
        async with running.http.post(f"{running.base}/api/cases/{case_id}/review", json={"decision": "confirmed"},
                                     headers=police) as r:
            assert r.status == 200, await r.text()
    async with running.http.post(f"{running.base}/api/cases/{rejected}/review",
                                 json={"decision": "rejected", "reason": "not_a_violation"}, headers=police) as r:
        assert r.status == 200, await r.text()
    async with running.http.post(f"{running.base}/api/cases/{appealed}/appeal",
                                 json={"note": "Đơn khiếu nại số 12/KN ngày 02/12/2026"}, headers=police) as r:
        assert r.status == 200, await r.text()
    async with running.http.post(f"{running.base}/api/cases/{appealed}/appeal", json={"note": "lần hai"},
                                 headers=police) as r:
        assert r.status == 409  # one appeal is on record already
    async with running.http.post(f"{running.base}/api/cases/{rejected}/appeal", json={"note": "không áp dụng"},
                                 headers=police) as r:
        assert r.status == 409  # a rejected case has nothing to appeal

    today = date.today().isoformat()
    url = f"{running.base}/api/dataset/export"
    for role in ("transport", "operations_centre", "commune_police", "citizen"):
        async with running.http.get(url, params={"since": today, "purpose": PURPOSE}, headers=running.headers(role)) as r:
            assert r.status == 403, role
    async with running.http.get(url, params={"since": today, "purpose": "thử"}, headers=police) as r:
        assert r.status == 400 and "mục đích" in (await r.json())["error"]
    async with running.http.get(url, params={"since": "hôm nay", "purpose": PURPOSE}, headers=police) as r:
        assert r.status == 400
    async with running.http.get(url, params={"since": today, "purpose": PURPOSE}, headers=police) as r:
        assert r.status == 200 and r.content_type == "application/zip"
        body, export_id, manifest_sha = await r.read(), r.headers["X-Export-Id"], r.headers["X-Manifest-Sha256"]

    archive = zipfile.ZipFile(io.BytesIO(body))
    names = set(archive.namelist())
    frame, crop = evidence  # the same two objects back every case
    assert f"images/{frame.sha256}.jpg" in names and f"plates/{crop.sha256}.jpg" in names
    for name in (n for n in names if n.startswith(("images/", "plates/"))):
        assert hashlib.sha256(archive.read(name)).hexdigest() == name.split("/")[1][:-4], name
    # The YOLO label is the ambulance's box (checked by eye in portal_samples), as class "car" (2).
    width, height = Image.open(io.BytesIO(archive.read(f"images/{frame.sha256}.jpg"))).size
    label = archive.read(f"labels/{frame.sha256}.txt").decode().split()
    assert label[0] == "2"
    cx, cy, w, h = map(float, label[1:])
    assert abs(cx * width - (AMBULANCE.x1 + AMBULANCE.x2) / 2) < 0.5 and abs(w * width - (AMBULANCE.x2 - AMBULANCE.x1)) < 0.5
    assert abs(cy * height - (AMBULANCE.y1 + AMBULANCE.y2) / 2) < 0.5 and abs(h * height - (AMBULANCE.y2 - AMBULANCE.y1)) < 0.5
    manifest_bytes = archive.read("manifest.csv")
    assert hashlib.sha256(manifest_bytes).hexdigest() == manifest_sha
    manifest = list(csv.DictReader(io.StringIO(manifest_bytes.decode())))
    assert {row["case_id"] for row in manifest} == {confirmed}  # not the appealed one, not the rejected one
    assert {(row["kind"], row["sha256"]) for row in manifest} == {("frame", frame.sha256), ("plate_crop", crop.sha256)}
    plates = list(csv.DictReader(io.StringIO(archive.read("plates.csv").decode())))
    assert [(p["text"], p["case_id"]) for p in plates] == [("15A-123.45", confirmed)]
    readme = archive.read("README.txt").decode()
    assert PURPOSE in readme and appealed in readme and "by csgt-binh" in readme

    conn = await asyncpg.connect(portal_url)
    try:
        recorded = await conn.fetchrow("SELECT * FROM portal.dataset_exports WHERE export_id = $1", export_id)
        audit = await conn.fetch("SELECT user_id, action, object, purpose FROM portal.audit "
                                 "WHERE action IN ('dataset_export', 'appeal') ORDER BY seq")
    finally:
        await conn.close()
    assert (recorded["cases"], recorded["images"], recorded["plates"], recorded["under_appeal"]) == (1, 1, 1, 1)
    assert recorded["manifest_sha256"] == manifest_sha and recorded["purpose"] == PURPOSE
    assert [(a["user_id"], a["action"]) for a in audit][-2:] == [("csgt-binh", "appeal"), ("csgt-binh", "dataset_export")]
    assert audit[-1]["purpose"] == PURPOSE and manifest_sha in audit[-1]["object"]

    # The command line: the same export through the portal, unpacked into a folder (the portal
    # runs in this test's event loop: the command must not block it).
    async def command(out, token: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "dataset", "export", "--since", today, "--out", str(out),
            "--purpose", PURPOSE, "--portal", running.base, cwd=repo_dir, env={**os.environ, "ROADWATCH_TOKEN": token},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        return process.returncode, stdout.decode(), stderr.decode()

    out = tmp_path / "dataset"
    code, stdout, stderr = await command(out, "demo-police")
    assert code == 0, stderr
    assert "1 labelled frames, 1 plate crops" in stdout
    assert (out / "labels" / f"{frame.sha256}.txt").read_text().split()[0] == "2"
    code, _, stderr = await command(tmp_path / "other", "demo-transport")
    assert code == 1 and "403" in stderr
