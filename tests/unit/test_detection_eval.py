"""Evaluation smoke test: the real detectors run through the harness on a small simulation."""

from __future__ import annotations

from streams.evaluate import evaluation_report, render_table
from streams.sim import Scenario, simulate


def test_evaluate_runs_real_detectors() -> None:
    simulation = simulate(Scenario.default().resized(merchants=150, days=60), 7)
    report = evaluation_report(simulation)
    detectors = report["detectors"]
    for task in ("dormancy", "churn", "credit"):
        assert detectors[task]["source"].startswith("detectors:")
        assert "extra" in detectors[task]
        assert "baseline_" in " ".join(detectors)
    assert report["runner"]["merchant_days"] > 150 * 50
    assert "dormancy" in render_table(report)
