"""Public evidence shows the violating vehicle and its plate, and nothing else recognisable; the
police keep the original, which still hashes to its name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from portal_samples import AMBULANCE, case_for, identified, publish_violation, put_evidence
from services.portal import privacy


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian: high where there are edges (characters, faces), ~0 when blurred."""
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


async def test_public_copy_blurs_bystanders_and_police_keep_the_original(portal_url, start_portal, js, street_dir,
                                                                          repo_dir: Path, wait_for):
    running = await start_portal(portal_url)
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    no_box = await put_evidence(js, street_dir, image="vn_cam_g30_Image3154.jpg", crop=(240, 170, 330, 270),
                                bucket=running.bucket, subject_box=None)
    event = identified(running.camera, 1, plate="68H-598.40", evidence=(*evidence, no_box[0]))
    await publish_violation(js, event)
    case_id = (await wait_for(lambda: case_for(portal_url, event.violation.id)))["case_id"]
    async with running.http.post(f"{running.base}/api/cases/{case_id}/review", json={"decision": "confirmed"},
                                 headers=running.headers("police")) as r:
        assert r.status == 200

    async with running.http.get(f"{running.base}/api/public/lookup?plate=68H59840") as r:
        (item,) = (await r.json())["items"]
    listed = {e["sha256"]: e["kind"] for e in item["evidence"]}
    frame_sha, crop_sha = evidence[0].sha256, evidence[1].sha256
    assert listed == {frame_sha: "frame", crop_sha: "plate_crop"}  # the frame without a box is not public
    async with running.http.get(f"{running.base}/api/public/cases/{case_id}/evidence/{no_box[0].sha256}") as r:
        assert r.status == 404

    async with running.http.get(f"{running.base}/api/public/cases/{case_id}/evidence/{frame_sha}") as r:
        assert r.status == 200 and r.headers["X-Evidence-Derived-From"] == frame_sha
        assert "X-Evidence-SHA256" not in r.headers
        public = await r.read()
    async with running.http.get(f"{running.base}/api/cases/{case_id}/evidence/{frame_sha}",
                                headers=running.headers("police")) as r:
        assert r.status == 200
        original = await r.read()
    assert hashlib.sha256(original).hexdigest() == frame_sha  # the police see the original, unchanged
    assert hashlib.sha256(public).hexdigest() != frame_sha
    async with running.http.get(f"{running.base}/api/public/cases/{case_id}/evidence/{crop_sha}") as r:
        assert hashlib.sha256(await r.read()).hexdigest() == crop_sha  # the violator's plate, as it is

    a, b = decode(original), decode(public)
    assert a.shape == b.shape
    x1, y1, x2, y2 = privacy.keep_region(msgspec_box(AMBULANCE), a.shape[1], a.shape[0])
    # The ambulance and its plate: the same picture (up to JPEG re-encoding).
    assert float(np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2].astype(int)).mean()) < 4
    assert sharpness(b[y1:y2, x1:x2]) > 0.7 * sharpness(a[y1:y2, x1:x2])
    # Bystanders: the pedestrians on the left, the motorbikes ahead, the green taxi on the right.
    for name, (bx1, by1, bx2, by2) in {"pedestrians": (150, 480, 255, 720), "motorbikes": (420, 150, 680, 220),
                                       "taxi": (1180, 440, 1280, 580), "shop signs": (560, 0, 1000, 120)}.items():
        before, after = sharpness(a[by1:by2, bx1:bx2]), sharpness(b[by1:by2, bx1:bx2])
        assert after < 0.05 * before, (name, before, after)
    folder = repo_dir / "var" / "artifacts" / "portal"
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "public-evidence.png"), b)  # looked at by eye: only the ambulance is sharp


def msgspec_box(box) -> dict[str, float]:
    return {"x1": box.x1, "y1": box.y1, "x2": box.x2, "y2": box.y2}
