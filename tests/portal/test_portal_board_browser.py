"""The operations board in a real browser (Debian's chromium, driven by Playwright): frames of two
real clips published to FRAMES at 5 fps show on the camera wall and change; an incident published
on the bus appears without a reload, is acknowledged with a note through the page's form (audited)
and changes live when updated; the transport department sees no pictures; a citizen gets 403.
Screenshots go to var/artifacts/board/ (the review test empties var/artifacts/portal/)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from portal_samples import (camera_status, clip_frames, incident_events, publish_frame, publish_incident,
                            put_evidence, signal_phase)
from proto import codec, subjects

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture
def artifacts(repo_dir: Path) -> Path:
    folder = repo_dir / "var" / "artifacts" / "board"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("board-*.png"):
        old.unlink()
    return folder


async def _play(js, camera: str, frames: list[bytes], stop: asyncio.Event, fps: float = 5.0) -> None:
    """Publish a clip's frames in a loop at `fps`, as ingest would for a live camera."""
    for jpeg in itertools.cycle(frames):
        if stop.is_set():
            return
        await publish_frame(js, camera, jpeg)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1 / fps)
        except asyncio.TimeoutError:
            pass


async def test_operator_sees_the_board_live_and_acknowledges(portal_url, start_portal, js, street_dir, shared_dir,
                                                             artifacts, wait_for):
    from playwright.async_api import async_playwright, expect

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: apt-get install chromium (services/portal/apt-packages.txt)"
    running = await start_portal(portal_url)
    camera, second = running.camera, f"{running.camera}-2"
    intersection = f"int-{camera[4:]}"
    for cam in (camera, second):
        await js.publish(subjects.camera_status(cam), codec.encode(camera_status(cam)))
    await js.publish(subjects.signal_phase(intersection), codec.encode(signal_phase(intersection, camera, "bac", "red")))
    conn = await asyncpg.connect(portal_url)
    try:
        await wait_for(lambda: conn.fetchval("SELECT count(*) = 2 FROM portal.camera_health"), what="camera health")
        await wait_for(lambda: conn.fetchval("SELECT count(*) = 1 FROM portal.signal_phases"), what="signal phase")
    finally:
        await conn.close()
    video = shared_dir / "data" / "video"
    stop = asyncio.Event()
    players = [asyncio.create_task(_play(js, camera, clip_frames(video / "vn_haiphong_intersection.mp4", 25, every=4), stop)),
               asyncio.create_task(_play(js, second, clip_frames(video / "vn_saigon_intersection.mp4", 25, every=4), stop))]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    stopped, stopped_update, _ = incident_events(camera, 1, evidence=evidence, start=now - timedelta(seconds=95))
    jam, _, _ = incident_events(camera, 2, type_="congestion", start=now - timedelta(minutes=4))

    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1600, "height": 1000}, locale="vi-VN")
                console_errors: list[str] = []
                page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: console_errors.append(str(e)))
                await page.goto(f"{running.base}/dang-nhap")
                await page.fill("#token", "demo-ops")
                await page.click("button[type=submit]")
                await expect(page).to_have_url(f"{running.base}/dieu-hanh")  # the centre's home page
                await expect(page.locator("#live-status")).to_have_text("● Trực tiếp")
                await page.evaluate("window.loadedOnce = 'no reload since'")

                # The camera wall: both cameras' real frames, changing as new ones arrive.
                tile = page.locator(f"#cam-{camera}")
                await expect(tile.locator(".lamp.phase-red")).to_have_text("bac: Đỏ")
                await expect(page.locator(f"#cam-{second} figcaption")).to_contain_text("Hoạt động · 5.0 khung/giây")
                await page.wait_for_function(
                    "id => +(document.getElementById(id).dataset.frames || 0) >= 2", arg=f"cam-{camera}")
                first_etag = await tile.get_attribute("data-etag")
                await page.wait_for_function(
                    "([id, etag]) => document.getElementById(id).dataset.etag !== etag", arg=[f"cam-{camera}", first_etag])
                width = await tile.locator("img").evaluate("img => img.naturalWidth")
                assert width == 640  # a decoded frame of the clip, not a broken image
                await page.wait_for_function(
                    "id => +(document.getElementById(id).dataset.frames || 0) >= 2", arg=f"cam-{second}")
                # Counted over 4 s, each camera's picture is refreshed at least once a second.
                before = {c: int(await page.locator(f"#cam-{c}").get_attribute("data-frames")) for c in (camera, second)}
                await asyncio.sleep(4)
                for c in (camera, second):
                    after = int(await page.locator(f"#cam-{c}").get_attribute("data-frames"))
                    assert (after - before[c]) / 4 >= 1.0, (c, before[c], after)

                # The light changes: the tile follows without a reload.
                await js.publish(subjects.signal_phase(intersection),
                                 codec.encode(signal_phase(intersection, camera, "bac", "green")))
                await expect(tile.locator(".lamp")).to_have_text("bac: Xanh")

                # An incident on the bus appears without a reload.
                await expect(page.locator("#no-incidents")).to_be_visible()
                await publish_incident(js, stopped)
                card = page.locator(f"#inc-{stopped.incident_id}")
                await expect(card).to_be_visible(timeout=10_000)
                await expect(card.locator(".type")).to_have_text("Xe dừng đỗ bất thường")
                await expect(card.locator(".status")).to_have_text("Mới")
                await expect(card.locator(".sha-check.ok")).to_have_count(2)
                await publish_incident(js, jam)
                await expect(page.locator(f"#inc-{jam.incident_id} .traffic")).to_contain_text("Ùn ứ: 14 xe trong làn")
                await expect(page.locator("#incident-count")).to_have_text("2")
                await expect(tile.locator(".tile-incidents")).to_have_text("⚠ 2 sự cố")  # the camera's tile says so
                await expect(page.locator(f"#cam-{second} .tile-incidents")).to_have_count(0)

                # Acknowledged with a note through the page's form.
                form = card.locator("form.ack-form")
                assert len(await form.locator("input[name=csrf_token]").input_value()) == 64
                await form.locator("input[name=note]").fill("Đã báo tổ CSGT 3 đến hiện trường")
                await form.locator("button").click()
                await expect(card.locator(".status")).to_have_text("Đã tiếp nhận")
                await expect(card.locator(".ack")).to_contain_text("Đỗ Thị Lan (ttdh-lan)")
                await expect(card.locator(".ack")).to_contain_text("Đã báo tổ CSGT 3 đến hiện trường")
                await expect(card.locator("form.ack-form")).to_have_count(0)
                # An update on the bus changes the card live.
                await publish_incident(js, stopped_update)
                await expect(card.locator(".sev")).to_have_text("Khẩn cấp")
                await expect(card.locator(".change")).to_have_text("Thay đổi: dwell 120 s")
                assert await page.evaluate("window.loadedOnce") == "no reload since"
                await page.wait_for_timeout(600)  # a last frame on each tile
                await page.screenshot(path=artifacts / "board-operations-centre.png", full_page=True)
                assert not console_errors, console_errors

                # The transport department: the same board, no pictures.
                transport = await (await browser.new_context(locale="vi-VN")).new_page()
                await transport.goto(f"{running.base}/dang-nhap?tiep=/dieu-hanh")
                await transport.fill("#token", "demo-transport")
                await transport.click("button[type=submit]")
                await expect(transport.locator(f"#cam-{camera} .frame")).to_contain_text("không xem hình ảnh camera")
                await expect(transport.locator(f"#inc-{stopped.incident_id}")).to_contain_text("2 ảnh chứng cứ")
                assert await transport.locator("img").count() == 0

                # A citizen: 403.
                citizen = await (await browser.new_context(locale="vi-VN")).new_page()
                await citizen.goto(f"{running.base}/dang-nhap?tiep=/tra-cuu")
                await citizen.fill("#token", "demo-citizen")
                await citizen.click("button[type=submit]")
                response = await citizen.goto(f"{running.base}/dieu-hanh")
                assert response.status == 403
            finally:
                await browser.close()
    finally:
        stop.set()
        await asyncio.gather(*players)

    conn = await asyncpg.connect(portal_url)
    try:
        rows = await conn.fetch("SELECT user_id, action, object, purpose FROM portal.audit ORDER BY seq")
    finally:
        await conn.close()
    audit = {(r["user_id"], r["action"], r["object"], r["purpose"]) for r in rows}
    assert ("ttdh-lan", "incident_acknowledged", stopped.incident_id, "Đã báo tổ CSGT 3 đến hiện trường") in audit
    assert ("ttdh-lan", "live_view", f"camera:{camera}", "xem hình ảnh trực tiếp (bảng điều hành)") in audit
    assert {r["object"] for r in rows if r["action"] == "evidence_read"} == {
        f"incident:{stopped.incident_id}/{e.sha256}" for e in evidence}
