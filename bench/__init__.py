"""Benchmark harness: `python -m bench` writes bench.json and docs/benchmarks.md."""
