"""roadwatch detect."""
