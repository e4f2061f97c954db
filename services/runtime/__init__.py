"""roadwatch runtime."""
