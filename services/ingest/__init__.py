"""roadwatch ingest."""
