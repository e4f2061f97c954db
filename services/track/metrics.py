"""Metrics of the track service (prefix roadwatch_track_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CAMERAS = Gauge("roadwatch_track_cameras_owned", "Cameras this replica tracks (its partition).")
DETECTIONS = Counter("roadwatch_track_detections_total",
                     "Detection events by outcome: tracked, late (older than what was already tracked), foreign, "
                     "replayed (redelivered after a restart, already tracked by the recovery).",
                     ["camera", "outcome"])
OBJECTS = Counter("roadwatch_track_vehicle_detections_total", "Vehicle boxes fed to the tracker.", ["camera"])
TRACKS = Gauge("roadwatch_track_tracks_active", "Live tracks (seen or briefly lost).", ["camera"])
BUFFERED = Gauge("roadwatch_track_reorder_buffered", "Detections waiting in the reorder window.", ["camera"])
VIOLATIONS = Counter("roadwatch_track_violations_total", "Violations published, by type and evidence status.",
                     ["camera", "type", "evidence"])
VIOLATIONS_PENDING = Gauge("roadwatch_track_violations_unpublished",
                           "Violations judged but not yet published (object store or NATS failing).", ["camera"])
EVIDENCE = Counter("roadwatch_track_evidence_objects_total", "Evidence objects stored, by kind.", ["kind"])
FRAMES_MISSING = Counter("roadwatch_track_evidence_frames_missing_total",
                         "Evidence frames no longer in the FRAMES stream (expired).", ["camera"])
COUNTS = Counter("roadwatch_track_counts_published_total", "Per-minute count events published.", ["camera"])
SIGNAL_CHANGES = Counter("roadwatch_track_signal_changes_total", "Signal phase changes seen, by head and source.",
                         ["camera", "head", "phase", "source"])
STEP_SECONDS = Histogram("roadwatch_track_step_seconds", "Time to track and judge one frame's detections.",
                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
UNJUDGED = Counter("roadwatch_track_red_light_unjudged_total",
                   "Stop-line crossings not judged because the signal phase was unknown (feed down, lamps unread).",
                   ["camera"])
INCIDENTS = Counter("roadwatch_track_incidents_total", "Incident events published, by type and action "
                    "(detected, updated, cleared).", ["camera", "type", "action"])
INCIDENTS_PENDING = Gauge("roadwatch_track_incidents_unpublished",
                          "Incident events not yet published (object store or NATS failing).", ["camera"])
CHECKPOINTS = Counter("roadwatch_track_checkpoints_total", "Checkpoints of a camera's tracking state, by result "
                      "(saved, failed).", ["camera", "result"])
CHECKPOINT_BYTES = Gauge("roadwatch_track_checkpoint_bytes", "Size of the camera's last checkpoint.", ["camera"])
CHECKPOINT_SECONDS = Histogram("roadwatch_track_checkpoint_seconds", "Time to take, encode and save one checkpoint.",
                               buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
RECOVERIES = Counter("roadwatch_track_recoveries_total", "Starts of a camera, by how its state was found "
                     "(restored, none, discarded: another scene, settings or version, or ahead of the stream).",
                     ["camera", "result"])
