"""roadwatch registry."""
