"""The first run, headless: `make run`'s own code (stack-env + honcho + Procfile) on one real clip.

A red-light runner in the Hải Phòng clip becomes a case whose evidence hashes verify; an
officer corrects the plate to the one the clip shows and confirms; exactly one owner notice is
sent per channel (the e-mail, when the owner has one, lands in the local SMTP outbox), and the public lookup
finds the case. The corrected plate fits the class the camera saw (the portal refuses a car plate on
a motorbike): the demo plates have one of each.
"""

from __future__ import annotations

import asyncio
import hashlib
import mailbox
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from proto import codec
from proto.v1 import NoticeSent
from services import localstack

REPO = Path(__file__).resolve().parents[2]
POLICE = {"Authorization": "Bearer demo-police"}
DEMO_PLATE = "30K-558.78"  # in deploy/local/demo-plates.txt: registered with a synthetic owner
DEMO_BIKE_PLATE = "29-Z8 316.85"  # the demo plates' motorbike: the portal refuses a car plate on a motorbike


@pytest.fixture
def first_run(tmp_path: Path, shared_dir: Path, database_url: str):
    """Start the demo stack as `make run` does, with free ports and one camera."""
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "cameras:\n"
        "  - id: demo-haiphong\n"
        "    name: \"Ngã tư Lạch Tray – Văn Cao, Hải Phòng (clip)\"\n"
        f"    url: {shared_dir / 'data' / 'video' / 'vn_haiphong_intersection.mp4'}\n"
        "    fps: 5\n"
        "    scene: demo-haiphong.yaml\n"
        "    location: {latitude: 20.8449, longitude: 106.6881, address: \"Ngã tư Lạch Tray – Văn Cao, Hải Phòng\","
        " commune_code: \"11311\"}\n",
        encoding="utf-8",
    )
    ports = {name: str(localstack.free_port()) for name in
             ("NATS_PORT", "PORTAL_PORT", "INGEST_PORT", "DETECT_PORT", "TRACK_PORT", "REGISTRY_PORT", "NOTIFY_PORT",
              "SMTP_PORT")}
    env = {**os.environ, **ports, "DATABASE_URL": database_url, "CAMERAS_FILE": str(cameras),
           "MODELS_DIR": str(shared_dir / "models"), "DEMO_VEHICLES": "2000"}
    var = tmp_path / "var"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "services.cli", "stack-env", str(var)], cwd=REPO, env=env, check=True,
                   capture_output=True)
    log = (tmp_path / "honcho.log").open("wb")
    honcho = subprocess.Popen([str(Path(sys.executable).with_name("honcho")), "-d", str(REPO), "-f", str(var / "Procfile"),
                               "-e", str(var / "run.env"), "start"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        run_env = dict(line.split("=", 1) for line in (var / "run.env").read_text().splitlines() if "=" in line)
        # nats-server runs the production accounts: the test reads as the notify service would.
        yield {"portal": f"http://127.0.0.1:{ports['PORTAL_PORT']}", "nats": run_env["NATS_URL_NOTIFY"],
               "outbox": var / "outbox", "started": started, "log": tmp_path / "honcho.log", "honcho": honcho}
    finally:
        os.killpg(honcho.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
        log.close()


async def _json(client: aiohttp.ClientSession, url: str, **kwargs):
    async with client.get(url, **kwargs) as response:
        assert response.status == 200, (url, response.status, await response.text())
        return await response.json()


async def test_a_clip_becomes_a_confirmed_case_with_one_notice_and_a_public_entry(first_run, nc_factory) -> None:
    portal = first_run["portal"]
    async with aiohttp.ClientSession() as client:
        case = None
        deadline = time.monotonic() + 300
        while case is None:
            assert time.monotonic() < deadline, "no case with evidence within 5 minutes:\n" + first_run["log"].read_text()[-4000:]
            assert first_run["honcho"].poll() is None, "the stack stopped:\n" + first_run["log"].read_text()[-4000:]
            try:
                listing = await _json(client, f"{portal}/api/cases?state=unidentified&state=identified", headers=POLICE)
                case = next((item for item in listing["items"] if item["camera_id"] == "demo-haiphong"), None)
            except aiohttp.ClientError:
                pass
            if case is None:
                await asyncio.sleep(1)
            if case is None:
                await asyncio.sleep(2)
        print(f"first case {case['case_id']} {time.monotonic() - first_run['started']:.0f} s after start")

        detail = await _json(client, f"{portal}/api/cases/{case['case_id']}", headers=POLICE)
        assert detail["violation_type"] == "red_light" and detail["evidence"]
        for evidence in detail["evidence"]:
            async with client.get(f"{portal}{evidence['url']}" if evidence["url"].startswith("/") else evidence["url"],
                                  headers=POLICE) as response:
                assert response.status == 200
                assert hashlib.sha256(await response.read()).hexdigest() == evidence["sha256"]

        await screenshot_case(portal, case["case_id"], REPO / "var" / "artifacts" / "first-run" / "case.png")

        plate = DEMO_BIKE_PLATE if detail.get("vehicle_class") in ("motorcycle", "moped") else DEMO_PLATE
        async with client.post(f"{portal}/api/cases/{case['case_id']}/review", headers=POLICE,
                               json={"decision": "confirmed", "plate": plate}) as response:
            assert response.status == 200, await response.text()

        async def notified() -> dict:
            data = await _json(client, f"{portal}/api/cases/{case['case_id']}", headers=POLICE)
            return data if data["state"] == "notified" else {}

        deadline = time.monotonic() + 120
        while not await notified():
            assert time.monotonic() < deadline, "the confirmed case was not notified:\n" + first_run["log"].read_text()[-4000:]
            await asyncio.sleep(1)

        public = await _json(client, f"{portal}/api/public/lookup", params={"plate": plate})
        assert [item["case_id"] for item in public["items"]] == [case["case_id"]]
        assert "owner" not in str(public).lower()

    nc = await nc_factory(first_run["nats"])
    sub = await nc.jetstream().pull_subscribe("traffic.notice.sent.v1.demo-haiphong.>", stream="NOTICES")
    sent: list[NoticeSent] = []
    try:
        while True:
            sent += [codec.decode(msg.data, NoticeSent) for msg in await sub.fetch(50, timeout=2)]
    except Exception:
        pass
    owner_notices = [notice for notice in sent if notice.case_id == case["case_id"] and notice.kind == "owner_notice"]
    channels = [notice.channel for notice in owner_notices]
    assert "post" in channels and len(channels) == len(set(channels)), channels  # exactly one per channel
    # The owner's letter, and (the synthetic owner lives in another commune) the transfer to that
    # commune's police: one e-mail each, never two to the same recipient.
    mails = [message for message in mailbox.Maildir(first_run["outbox"], create=False)
             if case["case_id"] in message.as_string()]
    emailed = [notice for notice in sent if notice.case_id == case["case_id"] and notice.channel in ("email", "commune_police")]
    assert len(mails) == len(emailed)  # none when the (synthetic) owner has no e-mail and lives in the commune
    assert len({message["To"] for message in mails}) == len(mails)


@pytest.fixture
async def nc_factory():
    import nats

    clients = []

    async def connect(url: str):
        client = await nats.connect(url)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]


async def screenshot_case(portal: str, case_id: str, path: Path) -> None:
    """What an officer sees first: the case from the clip, in a real browser (the README's picture)."""
    from playwright.async_api import async_playwright, expect

    path.parent.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900}, locale="vi-VN")
            await page.goto(f"{portal}/dang-nhap")
            await page.fill("#token", "demo-police")
            await page.click("button[type=submit]")
            await page.goto(f"{portal}/ho-so/{case_id}")
            await expect(page.locator("h1")).to_contain_text(case_id)
            await page.wait_for_load_state("networkidle")
            await page.screenshot(path=path, full_page=True)
        finally:
            await browser.close()
