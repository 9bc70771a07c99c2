"""Lifecycle stage (客户生命周期): acquisition, growth, maturity, decline, churn."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.dormancy import DormancyState
from schemas.dashboard_rows import LifecycleStage


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """Stage from the merchant's age, dormancy, churn score and turnover against its baseline.

    Churn: dormant or lost, or a churn score at least ``churn_score``. Acquisition: the first
    ``acquisition_days`` of acquiring history. Decline / growth: the 7-day level against the
    slow baseline under ``decline_ratio`` / over ``growth_ratio``, or the 28-day trend against a
    quarter ago beyond ``quarter_trend``. Otherwise maturity.

    >>> rules = LifecycleRules()
    >>> rules.stage(30, DormancyState.ACTIVE, 0.1, 1.0, 0.0).value
    'acquisition'
    >>> rules.stage(200, DormancyState.ACTIVE, 0.1, 0.5, 0.0).value
    'decline'
    >>> rules.stage(200, DormancyState.LOST, 0.1, 0.0, 0.0).value
    'churn'
    """

    acquisition_days: int = 90
    churn_score: float = 0.8
    decline_ratio: float = 0.7
    growth_ratio: float = 1.3
    quarter_trend: float = 0.15

    def stage(
        self,
        history_days: float,
        dormancy: DormancyState,
        churn_score: float,
        fast_vs_slow: float,
        trend_quarter: float,
    ) -> LifecycleStage:
        if dormancy >= DormancyState.DORMANT or churn_score >= self.churn_score:
            return LifecycleStage.CHURN
        if history_days <= self.acquisition_days:
            return LifecycleStage.ACQUISITION
        if fast_vs_slow < self.decline_ratio or trend_quarter < -self.quarter_trend:
            return LifecycleStage.DECLINE
        if fast_vs_slow > self.growth_ratio or trend_quarter > self.quarter_trend:
            return LifecycleStage.GROWTH
        return LifecycleStage.MATURITY
