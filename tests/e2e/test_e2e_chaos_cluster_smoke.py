"""Smoke version of `make chaos-cluster` (chaos/cluster_run.py): three nats-servers on loopback
with the production accounts, roadwatch's streams at 3 replicas, 300 violations published and
consumed by the runtime's loop while the stream's leader is killed (-9) and started again:
nothing lost, nothing kept twice, and the restarted node, made leader, holds every violation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from chaos import cluster_run  # noqa: E402


def test_a_cluster_node_killed_mid_run_loses_and_duplicates_nothing() -> None:
    code = asyncio.run(cluster_run.run(cluster_run.parse(["--smoke"])))
    result = cluster_run.run.result
    assert code == 0, result
    assert result["published"] == result["kept"] == 300
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["restarted_kept"] == 300
    assert result["caught_up_s"] is not None
    # The leader's death is seen: the flow stopped for at least the election, and came back.
    assert result["publish_gap_s"] > 0.5 and result["delivery_gap_s"] > 0.5
