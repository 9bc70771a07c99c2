"""The brains: pure computation of features, detectors and policies (no I/O)."""
