"""A real browser (Debian's chromium, driven by Playwright) reviews a case with real evidence
images: logs in as an officer, opens the case from the queue by keyboard, sees both SHA-256
checks pass, corrects the plate, confirms; rejects the next case by keyboard; the public lookup
then shows the confirmed case with its photo. Screenshots go to var/artifacts/portal/."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from proto import codec, subjects
from proto.v1 import CaseReviewed
from portal_samples import (OWNER_SECRETS, case_for, identified, publish_violation, put_evidence,
                            unidentified)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture
def artifacts(repo_dir: Path) -> Path:
    folder = repo_dir / "var" / "artifacts" / "portal"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("[0-9]-*.png"):  # this test's own; other tests leave theirs here too
        old.unlink()
    return folder


async def test_officer_reviews_in_browser_and_public_sees_it(portal_url, start_portal, js, nc, street_dir, artifacts,
                                                             wait_for):
    from playwright.async_api import async_playwright, expect

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: apt-get install chromium (services/portal/apt-packages.txt)"
    running = await start_portal(portal_url)
    camera = running.camera
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    # A motorbike from behind, too far away for its plate to be read.
    other_evidence = await put_evidence(js, street_dir, image="vn_cam_g30_Image3154.jpg", crop=(240, 170, 330, 270), subject_box=None,
                                          bucket=running.bucket)
    # The camera read 68H-5934; the plate crop shows 68H-5984 (checked by eye), so the officer corrects it.
    first = identified(camera, 1, plate="68H-5934", evidence=evidence)
    second = unidentified(camera, 2, plate=None, evidence=other_evidence)
    for event in (first, second):
        await publish_violation(js, event)
    case1 = (await wait_for(lambda: case_for(portal_url, first.violation.id)))["case_id"]
    case2 = (await wait_for(lambda: case_for(portal_url, second.violation.id)))["case_id"]
    reviewed = await nc.subscribe(f"traffic.case.reviewed.v1.{camera}.>")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000}, locale="vi-VN")
            console_errors: list[str] = []  # a CSP violation or a script error shows up here
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            await page.goto(f"{running.base}/dang-nhap")
            await page.fill("#token", "demo-police")
            await page.click("button[type=submit]")
            await expect(page).to_have_url(f"{running.base}/hang-cho")
            await expect(page.locator("#queue tbody tr")).to_have_count(2)
            await expect(page.locator("h1")).to_have_text("Hàng chờ xác minh vi phạm")
            await page.screenshot(path=artifacts / "1-hang-cho.png", full_page=True)

            await page.keyboard.press("Enter")  # the oldest case, selected by default
            await expect(page).to_have_url(f"{running.base}/ho-so/{case1}")
            checks = page.locator(".sha-check.ok")
            await expect(checks).to_have_count(2)
            await expect(checks.first).to_have_text("✓ khớp mã SHA-256")
            for sha in (e.sha256 for e in evidence):
                await expect(page.locator(f"figure[data-sha256='{sha}'] code")).to_have_text(sha)
                width = await page.locator(f"figure[data-sha256='{sha}'] img").evaluate("img => img.naturalWidth")
                assert width >= 90  # the plate crop is 100 px wide
            await expect(page.locator(".facts")).to_contain_text("Nguyễn Văn An")  # police see the owner
            await page.screenshot(path=artifacts / "2-ho-so-truoc-khi-xac-nhan.png", full_page=True)

            # The form carries the session's anti-forgery token; the browser sends it with Origin.
            assert len(await page.locator("#review-form input[name=csrf_token]").input_value()) == 64
            await page.keyboard.press("b")  # focus the plate field
            await page.keyboard.press("Control+A")
            await page.keyboard.type("68h5984")
            await page.keyboard.press("Enter")  # submits with the first button: confirm
            await expect(page).to_have_url(f"{running.base}/ho-so/{case2}?da=confirmed&ma={case1}")
            await expect(page.locator(".flash")).to_have_text(f"Đã xác nhận vi phạm {case1}.")
            await expect(page.locator(".sha-check.ok")).to_have_count(2)
            await page.screenshot(path=artifacts / "3-vu-tiep-theo.png", full_page=True)

            # The next case has no readable plate: reject it, by keyboard.
            await page.keyboard.press("l")
            await page.select_option("#reason", "plate_unreadable")
            await page.locator("#reason").evaluate("el => el.blur()")
            await page.keyboard.press("t")
            await expect(page).to_have_url(f"{running.base}/hang-cho?da=rejected&ma={case2}")
            await expect(page.locator("#queue tbody")).to_contain_text("Không có vụ việc nào.")

            assert not console_errors, console_errors
            response = await page.goto(f"{running.base}/hang-cho")
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

            # A citizen (a fresh context: no cookie) looks the plate up.
            citizen = await (await browser.new_context(locale="vi-VN")).new_page()
            await citizen.goto(f"{running.base}/tra-cuu")
            await citizen.fill("#q", "68H-5984")
            await citizen.click("button[type=submit]")
            card = citizen.locator("article.public-case")
            await expect(card).to_have_count(1)
            await expect(card).to_contain_text("68H-5984")
            await expect(card).to_contain_text("Không chấp hành hiệu lệnh đèn tín hiệu giao thông")
            await expect(card).to_contain_text("Phòng Cảnh sát giao thông – Công an thành phố Hải Phòng")
            await expect(card).to_contain_text("0225 3842 135")
            photo = card.locator("img").first
            await expect(photo).to_be_visible()
            await citizen.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            html = await citizen.content()
            assert not [s for s in OWNER_SECRETS if s in html]
            await citizen.screenshot(path=artifacts / "4-tra-cuu-cong-khai.png", full_page=True)
            # The old (wrong) reading finds nothing.
            await citizen.goto(f"{running.base}/tra-cuu?plate=68H5934")
            await expect(citizen.locator(".found")).to_contain_text("Không tìm thấy")

            # The operations centre: statistics, and the case without its owner.
            ops = await (await browser.new_context(locale="vi-VN")).new_page()
            await ops.goto(f"{running.base}/thong-ke?from=2026-11-20&to=2026-11-20")
            await ops.fill("#token", "demo-ops")
            await ops.click("button[type=submit]")
            await expect(ops).to_have_url(f"{running.base}/thong-ke?from=2026-11-20&to=2026-11-20")
            camera_row = ops.locator("table.stats").nth(1).locator("tbody tr")
            await expect(camera_row).to_have_text(f"{camera}\t2\t1\t1\t0".replace("\t", ""), use_inner_text=False)
            await ops.screenshot(path=artifacts / "5-thong-ke.png", full_page=True)
            await ops.goto(f"{running.base}/ho-so/{case1}")
            await expect(ops.locator(".sha-check.ok")).to_have_count(2)
            assert not [s for s in OWNER_SECRETS if s in await ops.content()]
            await expect(ops.locator("#review-form")).to_have_count(0)  # may look, not decide
        finally:
            await browser.close()

    decisions = {}
    for _ in range(2):
        msg = await reviewed.next_msg(timeout=10)
        event = codec.decode(msg.data, CaseReviewed)
        decisions[event.case_id] = (msg.subject, event)
    assert decisions[case1][0] == subjects.case_reviewed(camera, "confirmed")
    assert decisions[case1][1].plate == "68H-5984" and decisions[case1][1].plate_corrected
    assert decisions[case2][1].decision == "rejected"
    conn = await asyncpg.connect(portal_url)
    try:
        rows = await conn.fetch("SELECT user_id, action, object, purpose FROM portal.audit")
        actions = {(r["action"], r["object"].split("/")[0]) for r in rows}
        officer = {r["purpose"] for r in rows if r["user_id"] == "csgt-binh"}
    finally:
        await conn.close()
    assert {("owner_read", case1), ("evidence_read", case1), ("evidence_read", case2)} <= actions
    assert officer == {"xác minh vi phạm"}  # why the officer looked, as the page said
    assert sorted(p.name for p in artifacts.glob("[0-9]-*.png")) == [
        "1-hang-cho.png", "2-ho-so-truoc-khi-xac-nhan.png", "3-vu-tiep-theo.png", "4-tra-cuu-cong-khai.png",
        "5-thong-ke.png"]
