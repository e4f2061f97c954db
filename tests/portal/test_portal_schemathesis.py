"""schemathesis against the OpenAPI document of a running portal: no server errors, and the
responses conform to the document (status codes, content types, schemas)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from portal_samples import (case_for, clip_frames, identified, incident_events, publish_frame, publish_incident,
                            publish_violation, put_evidence, unidentified)

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


async def run_schemathesis(base: str, token: str, out: Path, examples: int, workdir: Path) -> tuple[int, str]:
    """The CLI in a scratch folder: it keeps a cache of crashes in its working directory."""
    st = Path(sys.executable).parent / "st"
    process = await asyncio.create_subprocess_exec(
        str(st), "run", f"{base}/api/openapi.json", "--url", base, "-H", f"Authorization: Bearer {token}",
        "--checks", CHECKS, "--max-examples", str(examples), "--seed", "20261129", "--workers", "1",
        "--no-color", "--generation-database", "none",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=workdir,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "COLUMNS": "120"})
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    text = stdout.decode("utf-8", "replace")
    out.write_text(text, encoding="utf-8")
    return process.returncode, text


async def test_no_server_errors_and_conformance(portal_url, start_portal, js, street_dir, repo_dir, wait_for, tmp_path):
    running = await start_portal(portal_url, public_rate_per_minute=10000)
    evidence = await put_evidence(js, street_dir, bucket=running.bucket)
    events = [identified(running.camera, 1, evidence=evidence), unidentified(running.camera, 2, evidence=evidence)]
    for event in events:
        await publish_violation(js, event)
    for event in events:
        await wait_for(lambda: case_for(portal_url, event.violation.id))
    # Something on the board: an incident with evidence, and a frame of the camera.
    detected, _, _ = incident_events(running.camera, 1, evidence=evidence)
    await publish_incident(js, detected)
    await publish_frame(js, running.camera, clip_frames(street_dir.parent / "video" / "vn_haiphong_intersection.mp4", 1)[0])
    folder = repo_dir / "var" / "artifacts" / "portal"
    folder.mkdir(parents=True, exist_ok=True)
    code, text = await run_schemathesis(running.base, "demo-police", folder / "schemathesis-police.txt", 25, tmp_path)
    assert code == 0, text[-6000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", text)
    assert summary and summary[1] == summary[2] and int(summary[1]) > 300, text[-3000:]
    assert "Tested: 27" in text  # every operation of the document was exercised
    # The same against the role that sees the least, so that 403 paths are exercised too.
    code, text = await run_schemathesis(running.base, "demo-transport", folder / "schemathesis-transport.txt", 10, tmp_path)
    assert code == 0, text[-6000:]
