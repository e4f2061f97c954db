"""roadwatch notify."""
