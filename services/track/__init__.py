"""roadwatch track."""
