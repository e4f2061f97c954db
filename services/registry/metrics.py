"""The registry's Prometheus metrics (prefix roadwatch_registry_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LOOKUPS = Counter(
    "roadwatch_registry_violation_lookups_total",
    "Violations looked up, by outcome (exact, near, ambiguous, no_read, invalid_format, no_record, replayed).",
    ["outcome"],
)
MISMATCHES = Counter(
    "roadwatch_registry_mismatches_total",
    "Identified violations whose registration contradicts what the camera saw (possible cloned plate).",
    ["field"],
)
OWNER_REQUESTS = Counter(
    "roadwatch_registry_owner_requests_total",
    "lookup-owner requests, by result (found, not_found, bad_request, error).",
    ["result"],
)
OWNER_BATCH_SIZE = Histogram(
    "roadwatch_registry_owner_batch_size",
    "lookup-owner requests answered by one SQL query.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
OWNER_SECONDS = Histogram(
    "roadwatch_registry_owner_lookup_seconds",
    "Time from a lookup-owner request's arrival to its reply.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
HOTLIST_SIZE = Gauge("roadwatch_registry_hotlist_entries", "Hotlist entries held in memory.")
HOTLIST_HITS = Counter("roadwatch_registry_hotlist_hits_total", "Hotlist hits published.")
HOTLIST_RELOADS = Counter("roadwatch_registry_hotlist_reloads_total", "Hotlist reloads, by result.", ["result"])
LOOKUPS_PRUNED = Counter("roadwatch_registry_lookups_pruned_total", "Recorded lookup outcomes deleted after the retention.")
