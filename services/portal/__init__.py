"""roadwatch portal."""
