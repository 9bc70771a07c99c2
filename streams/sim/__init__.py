"""Merchant simulator with ground truth: scenario, deterministic generation, files, publishing."""

from __future__ import annotations

from streams.sim.scenario import TRAJECTORIES, Scenario
from streams.sim.simulation import Simulation, simulate

__all__ = ["TRAJECTORIES", "Scenario", "Simulation", "simulate"]
