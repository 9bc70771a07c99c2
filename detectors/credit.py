"""Credit deterioration (贷后预警): cash-flow stress rules, a shared anomaly model per industry
segment, an online delinquency classifier, and the five-category convention (五级分类)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from river import anomaly

from detectors.base import Detector, feature
from detectors.churn import RuleHit
from detectors.inputs import CREDIT_INPUTS
from detectors.online import OnlineClassifier
from schemas.dashboard_rows import LoanCategory
from schemas.outputs import ReasonCode

#: Value ranges of the credit inputs for the half-space trees (which need bounded inputs).
CREDIT_LIMITS: dict[str, tuple[float, float]] = {
    "trend_7d_vs_prev_28d": (-1.0, 1.0),
    "active_share_30d": (0.0, 1.0),
    "returned_item_count_30d": (0.0, 10.0),
    "overdraft_days_30d": (0.0, 1.0),
    "other_lender_new_30d": (0.0, 5.0),
    "log_other_lender_count_90d": (0.0, 2.0),
    "eod_min_vs_turnover": (-2.0, 2.0),
    "eod_slope_vs_turnover": (-2.0, 2.0),
    "net_cashflow_vs_inflow_30d": (-2.0, 1.0),
    "cash_withdrawal_share_30d": (0.0, 1.0),
    "other_bank_outflow_share_30d": (0.0, 1.0),
    "payroll_late": (0.0, 3.0),
    "tax_late": (0.0, 3.0),
    "utility_late": (0.0, 3.0),
    "decline_ratio_7d": (0.0, 1.0),
    "turnover_fast_vs_slow": (0.0, 3.0),
}


def loan_category(
    days_past_due: int, *, other_bank_npl: bool = False, borrowing_to_repay: bool = False
) -> LoanCategory:
    """Five-category classification from days past due and explicit facts (2023 rules).

    Over 7 days past due (beyond the technical grace), non-performing at another bank, or new
    borrowing to repay old: special mention (关注). Over 90: substandard; 270: doubtful; 360:
    loss. Transaction signals only raise a review flag; they never reclassify by themselves.

    >>> [loan_category(d).value for d in (0, 7, 8, 91, 271, 361)]
    ['normal', 'normal', 'special_mention', 'substandard', 'doubtful', 'loss']
    >>> loan_category(0, borrowing_to_repay=True).value
    'special_mention'
    """
    if days_past_due > 360:
        return LoanCategory.LOSS
    if days_past_due > 270:
        return LoanCategory.DOUBTFUL
    if days_past_due > 90:
        return LoanCategory.SUBSTANDARD
    if days_past_due > 7 or other_bank_npl or borrowing_to_repay:
        return LoanCategory.SPECIAL_MENTION
    return LoanCategory.NORMAL


def _hit(name: str, strength: float, feat: str, value: float, baseline: float) -> RuleHit:
    reason = ReasonCode(
        feature=feat, value=round(value, 6), baseline=baseline, contribution=strength
    )
    return RuleHit(name, strength, reason)


class CreditRules(Detector):
    """Explicit cash-flow stress signals on model inputs (``detectors.inputs.derived``).

    Strong signals (each raises the review alone): returned or bounced items; the balance run
    down near zero (30-day minimum under ``balance_floor_share`` of the month's flows, on a
    falling slope); new borrowing at another lender (多头借贷) while the end-of-day balance is
    under ``draining_share`` of its 30-day mean. All three only while the merchant still sells
    (``pos_stopped`` 0): the account of a merchant that stopped, and emptied it, is a dormancy
    or churn case, and its loan's overdue events still raise the review through days past due.
    One exception: returned items while the merchant also borrows at a new lender stay strong
    after the sales stop. A departed or closed shop's emptied account bounces its standing
    orders too, but it does not take up new loans; a borrower that does both is in credit stress
    whether or not it still sells (measured: no healthy borrower more flagged, see
    docs/detectors.md).
    Weak signals add up but cannot raise it alone, since each of them also marks many borrowers
    who repay (measured on the simulated default scenario): overdraft days, new borrowing at
    other lenders, late payroll, tax or utility, a turnover decline, and the industry
    segment's anomaly score (added by the pipeline).

    Examples
    --------
    >>> rules = CreditRules()
    >>> rules.score_one({"returned_item_count_30d": 2.0})
    0.85
    >>> rules.score_one({"other_lender_new_30d": 1.0}) < 0.75
    True
    >>> rules.score_one({})
    0.0
    """

    def __init__(
        self,
        balance_floor_share: float = 0.03,
        decline_ratio: float = 0.6,
        strong_strength: float = 0.8,
        draining_share: float = 0.5,
    ) -> None:
        self.balance_floor_share = balance_floor_share
        self.decline_ratio = decline_ratio
        self.strong_strength = strong_strength
        self.draining_share = draining_share

    def hits(self, d: Mapping[str, float]) -> list[RuleHit]:
        out: list[RuleHit] = []
        stopped = feature(d, "pos_stopped") > 0
        strong = 0.0 if stopped else self.strong_strength
        returned = feature(d, "returned_item_count_30d")
        new_lenders = feature(d, "other_lender_new_30d")
        if returned >= 1 and (not stopped or new_lenders >= 1):
            base = self.strong_strength
            strength = base if returned < 2 else min(base + 0.05, 0.95)
            out.append(_hit("returned_items", strength, "returned_item_count_30d", returned, 0.0))
        balance = feature(d, "eod_min_vs_turnover", 1.0)
        slope = feature(d, "eod_slope_vs_turnover")
        if balance < self.balance_floor_share and slope < 0 and strong:
            out.append(
                _hit(
                    "balance_near_zero",
                    strong,
                    "eod_min_vs_turnover",
                    balance,
                    self.balance_floor_share,
                )
            )
        draining = feature(d, "eod_vs_mean_30d", 1.0)
        if new_lenders >= 1 and draining < self.draining_share and strong:
            out.append(
                _hit(
                    "new_lender_balance_draining",
                    strong,
                    "eod_vs_mean_30d",
                    draining,
                    self.draining_share,
                )
            )
        overdraft = feature(d, "overdraft_days_30d") * 30.0
        if overdraft >= 2:
            out.append(_hit("overdraft", 0.25, "overdraft_days_30d", overdraft, 0.0))
        if new_lenders >= 1:
            out.append(
                _hit(
                    "new_other_lender",
                    0.35 if new_lenders < 2 else 0.55,
                    "other_lender_new_30d",
                    new_lenders,
                    0.0,
                )
            )
        late = max(feature(d, "payroll_late"), feature(d, "tax_late"), feature(d, "utility_late"))
        if late > 0:
            out.append(_hit("regular_payment_late", 0.2, "payroll_late", late, 0.0))
        ratio = feature(d, "turnover_fast_vs_slow", 1.0)
        if feature(d, "festival_season") <= 0 and ratio < self.decline_ratio:
            out.append(_hit("turnover_decline", 0.15, "turnover_fast_vs_slow", ratio, 1.0))
        return sorted(out, key=lambda h: -h.strength)

    def score_one(self, x: Mapping[str, float]) -> float:
        rest = 1.0
        for h in self.hits(x):
            rest *= 1.0 - h.strength
        return round(1.0 - rest, 6)


class SegmentAnomaly(Detector):
    """Half-space trees on the credit inputs, one model per industry segment (never per merchant).

    Neutral until it has learned ``window_size`` samples (HalfSpaceTrees' reference window).

    Examples
    --------
    >>> seg = SegmentAnomaly(window_size=20, seed=1)
    >>> seg.score_one({"trend_7d_vs_prev_28d": 0.0})
    0.0
    >>> for _ in range(60):
    ...     seg.learn_one({"active_share_30d": 0.9, "eod_min_vs_turnover": 0.5})
    >>> 0.0 <= seg.score_one({"returned_item_count_30d": 9.0, "overdraft_days_30d": 1.0}) <= 1.0
    True
    """

    def __init__(
        self, n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int = 42
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        limits: dict[Hashable, tuple[float, float]] = dict(CREDIT_LIMITS.items())
        self._hst: Any = anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, limits=limits, seed=seed
        )
        self._seen = 0

    @staticmethod
    def _x(x: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for name, (low, high) in CREDIT_LIMITS.items():
            out[name] = min(max(feature(x, name), low), high)
        return out

    @property
    def is_warm(self) -> bool:
        return self._seen >= 2 * self.window_size

    def learn_one(self, x: Mapping[str, float], y: float | bool | None = None) -> None:
        self._hst.learn_one(self._x(x))
        self._seen += 1

    def score_one(self, x: Mapping[str, float]) -> float:
        if not self.is_warm:
            return self.neutral_score
        return float(min(max(self._hst.score_one(self._x(x)), 0.0), 1.0))


def delinquency_head(
    horizon_days: int = 60, min_labels: int = 1000, min_positives: int = 30
) -> OnlineClassifier:
    """The shared online classifier of P(overdue within ``horizon_days``) for borrowers.

    >>> delinquency_head().name
    'delinquency_h60'
    """
    return OnlineClassifier(
        f"delinquency_h{horizon_days}",
        CREDIT_INPUTS,
        min_labels=min_labels,
        min_positives=min_positives,
    )
