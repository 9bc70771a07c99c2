"""Churn (流失预警): explicit rules for cold start and hard signals, plus online River heads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from detectors.base import Detector, feature
from detectors.inputs import CHURN_INPUTS
from detectors.online import OnlineClassifier
from schemas.outputs import ReasonCode


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One explicit signal: its strength in [0, 1] and the reason code behind it."""

    name: str
    strength: float
    reason: ReasonCode


def noisy_or(strengths: list[float]) -> float:
    """Combine independent signal strengths: 1 - prod(1 - s).

    >>> round(noisy_or([0.5, 0.5]), 2), noisy_or([])
    (0.75, 0.0)
    """
    rest = 1.0
    for s in strengths:
        rest *= 1.0 - s
    return 1.0 - rest


class ChurnRules(Detector):
    """Explicit churn signals on model inputs (``detectors.inputs.derived``): no training needed.

    Signals: settlement leaving while card turnover continues (days in a row with yesterday's
    POS turnover but no settlement credit here); card turnover stopped while the account stays
    in use (another acquirer); a sustained decline against the merchant's own baseline (a
    downward Page-Hinkley alarm and the 7-day level under ``decline_ratio`` of the slow one).
    Decline and stop signals are muted in the Spring Festival season, when they are the norm.

    Examples
    --------
    >>> rules = ChurnRules()
    >>> rules.score_one({"settlement_missing_days": 4.0, "active_share_7d": 1.0})
    0.9
    >>> rules.score_one({})
    0.0
    """

    def __init__(
        self,
        settlement_missing_days: int = 3,
        stop_missed_ratio: float = 2.0,
        stop_min_days: int = 4,
        decline_ratio: float = 0.7,
    ) -> None:
        self.settlement_missing_days = settlement_missing_days
        self.stop_missed_ratio = stop_missed_ratio
        self.stop_min_days = stop_min_days
        self.decline_ratio = decline_ratio

    def hits(self, d: Mapping[str, float], x: Mapping[str, float]) -> list[RuleHit]:
        """The signals that fire, strongest first (``x``: the raw features, for reason values)."""
        out: list[RuleHit] = []
        missing = feature(d, "settlement_missing_days")
        if missing >= self.settlement_missing_days:
            out.append(
                RuleHit(
                    "settlement_leaving",
                    0.9,
                    ReasonCode(
                        feature="settlement_missing_days",
                        value=missing,
                        baseline=0.0,
                        contribution=0.9,
                    ),
                )
            )
        season = feature(d, "festival_season") > 0
        since = feature(x, "days_since_last_txn")
        acct_since = feature(x, "days_since_last_acct_txn", -1.0)
        missed = feature(d, "missed_open_days_ratio")
        if (
            not season
            and since >= self.stop_min_days
            and missed >= self.stop_missed_ratio
            and 0 <= acct_since <= 3
        ):
            out.append(
                RuleHit(
                    "pos_stopped_account_active",
                    0.8,
                    ReasonCode(
                        feature="days_since_last_txn",
                        value=since,
                        baseline=feature(x, "gap_q95_days"),
                        contribution=0.8,
                    ),
                )
            )
        ratio = feature(d, "turnover_fast_vs_slow", 1.0)
        if not season and feature(d, "drift_direction") < 0 and ratio < self.decline_ratio:
            strength = min(0.95, 0.6 + (self.decline_ratio - ratio))
            out.append(
                RuleHit(
                    "turnover_decline",
                    strength,
                    ReasonCode(
                        feature="turnover_fast_vs_slow",
                        value=round(ratio, 6),
                        baseline=1.0,
                        contribution=round(strength, 6),
                    ),
                )
            )
        return sorted(out, key=lambda h: -h.strength)

    def score_one(self, x: Mapping[str, float]) -> float:
        return round(noisy_or([h.strength for h in self.hits(x, x)]), 6)


def churn_heads(
    horizon_days: int = 30, min_labels: int = 2000, min_positives: int = 50
) -> tuple[OnlineClassifier, OnlineClassifier]:
    """The two shared online heads learned from the same delayed labels (H days later):
    ``churn`` P(dormant or lost within H days) and ``inactive`` P(no POS sale within H days).

    >>> churn, inactive = churn_heads()
    >>> churn.name, inactive.name, churn.inputs == CHURN_INPUTS
    ('churn_h30', 'inactive_h30', True)
    """
    return (
        OnlineClassifier(
            f"churn_h{horizon_days}",
            CHURN_INPUTS,
            min_labels=min_labels,
            min_positives=min_positives,
        ),
        OnlineClassifier(
            f"inactive_h{horizon_days}",
            CHURN_INPUTS,
            min_labels=min_labels,
            min_positives=min_positives,
        ),
    )


def closure_survival(days: float, min_days: float = 14.0, max_days: float = 31.0) -> float:
    """P(a temporary closure lasts at least ``days``): 1 up to ``min_days``, then falling
    linearly to a small floor at ``max_days`` (a Spring Festival shutdown lasts 2 to 4 weeks).

    >>> closure_survival(10), round(closure_survival(22.5), 2), closure_survival(60)
    (1.0, 0.5, 0.001)
    """
    if days <= min_days:
        return 1.0
    return max((max_days - days) / (max_days - min_days), 1e-3)


def gap_survival(gap_days: float, gap_q50_days: float, gap_q95_days: float) -> float:
    """P(a gap between active days lasts at least ``gap_days``) from the merchant's own gap
    quantiles: 0.5 at the median, 0.05 at q95, geometric beyond with a power-law floor (real
    gaps have heavier tails than any one rate implies).

    >>> round(gap_survival(2, 1, 2), 3), round(gap_survival(8, 1, 2), 5), gap_survival(1, 1, 8)
    (0.05, 0.00313, 1.0)
    """
    decay = 0.1 ** (1.0 / max(gap_q95_days - gap_q50_days, 1.0))
    geometric = min(1.0, 0.5 * decay ** (gap_days - gap_q50_days))
    floor = 0.05 * (max(gap_q95_days, 1.0) / max(gap_days, 1.0)) ** 2
    return float(min(1.0, max(geometric, floor)))


def inactivity_prior(
    silence_days: float,
    active_days: float,
    observed_days: float,
    horizon_days: int,
    gone_hazard: float = 0.001,
    closure_hazard: float = 0.003,
    gaps: tuple[float, float] | None = None,
) -> float:
    """P(no sale in the next ``horizon_days``) from the merchant's own rhythm.

    Three explanations of a silence of s days compete. The merchant still trades and this is
    one of its gaps: likelihood P(gap > s) from its own gap quantiles ``gaps`` = (q50, q95),
    or, while it has too few gaps, (1 - r)^s with r its share of active days before the
    silence. It left at some point in the silence: weight ``gone_hazard`` x (s + 1). It closed
    for a while (a holiday; raise ``closure_hazard`` when the silence began in a closure season
    such as the Spring Festival): weight ``closure_hazard`` x min(s, 7) x S(s), S the closure
    survival. The answer is P(gone) + P(closed) S(s + H) / S(s) + P(trading) P(gap > s + H |
    gap > s). The same silence weighs more for a merchant that sells every day than for one
    that sells monthly, and less when it began in a season of customary closures.

    >>> daily = inactivity_prior(10, 80, 90, 30)
    >>> monthly = inactivity_prior(10, 3, 90, 30)
    >>> festival = inactivity_prior(10, 80, 90, 30, closure_hazard=0.05)
    >>> daily > monthly, daily > festival, round(inactivity_prior(0, 85, 90, 30), 3)
    (True, True, 0.001)
    >>> inactivity_prior(3, 80, 90, 30, gaps=(1, 7)) < inactivity_prior(3, 80, 90, 30, gaps=(1, 2))
    True
    """
    if gaps is not None:
        q50, q95 = gaps
        now = gap_survival(silence_days + 1.0, q50, q95)
        later = gap_survival(silence_days + 1.0 + horizon_days, q50, q95)
    else:
        before = max(observed_days - silence_days, 0.0)  # the days the rate is measured on
        rate = min(max((active_days + 0.5) / (before + 1.0), 1e-3), 0.999)
        now, later = (1.0 - rate) ** silence_days, (1.0 - rate) ** (silence_days + horizon_days)
    gone = gone_hazard * (silence_days + 1.0)
    survive = closure_survival(silence_days)
    closed = closure_hazard * min(silence_days, 7.0) * survive
    stays_closed = closure_survival(silence_days + horizon_days) / survive
    return float((gone + closed * stays_closed + later) / (gone + closed + now))
