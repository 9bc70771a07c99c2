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

    Strong signals (each opens an alert alone):

    - settlement leaving while card turnover continues: days in a row with yesterday's POS
      turnover but no settlement credit here;
    - card turnover stopped while other credits keep arriving nearly every day, beyond the
      usual inflow (another acquirer now settles here); in the Spring Festival season, when
      closures are the norm, only after ``switch_season_days`` of such silence;
    - card turnover stopped and the balance swept to the owner's account at another bank
      (资金外流): the end-of-day balance under ``swept_balance_share`` of its 30-day mean after
      transfers out of at least ``swept_transfer_share`` of it.

    Weak signals (reasons and scores; they cannot open an alert alone, because on their own
    they mostly flag festival and seasonal closures and ordinary dips): a sustained decline
    against the merchant's own baseline (a downward Page-Hinkley alarm and the 7-day level
    under ``decline_ratio`` of the slow one) and card turnover stopped while the account is in
    use. Both are muted in the Spring Festival season.

    Examples
    --------
    >>> rules = ChurnRules()
    >>> rules.score_one({"settlement_missing_days": 4.0, "active_share_7d": 1.0})
    0.9
    >>> rules.score_one({})
    0.0
    >>> stop = {"days_since_last_txn": 6.0, "silence_ratio_q95": 3.0, "ever_active": 1.0,
    ...         "silence_credit_days": 5.0, "silence_excess_inflow": 0.8}
    >>> rules.hits(stop, stop)[0].name
    'pos_stopped_other_acquirer'
    """

    def __init__(
        self,
        settlement_missing_days: int = 3,
        stop_missed_ratio: float = 2.0,
        stop_min_days: int = 4,
        decline_ratio: float = 0.7,
        switch_min_days: int = 5,
        switch_season_days: int = 10,
        switch_excess_inflow: float = 0.2,
        stop_silence_ratio: float = 1.5,
        swept_balance_share: float = 0.2,
        swept_transfer_share: float = 0.5,
        weak_strength: float = 0.4,
    ) -> None:
        self.settlement_missing_days = settlement_missing_days
        self.stop_missed_ratio = stop_missed_ratio
        self.stop_min_days = stop_min_days
        self.decline_ratio = decline_ratio
        self.switch_min_days = switch_min_days
        self.switch_season_days = switch_season_days
        self.switch_excess_inflow = switch_excess_inflow
        self.stop_silence_ratio = stop_silence_ratio
        self.swept_balance_share = swept_balance_share
        self.swept_transfer_share = swept_transfer_share
        self.weak_strength = weak_strength

    def hits(self, d: Mapping[str, float], x: Mapping[str, float]) -> list[RuleHit]:
        """The signals that fire, strongest first (``x``: the raw features, for reason values)."""
        out: list[RuleHit] = []
        missing = feature(d, "settlement_missing_days")
        if missing >= self.settlement_missing_days:
            out.append(_hit("settlement_leaving", 0.9, "settlement_missing_days", missing, 0.0))
        season = feature(d, "festival_season") > 0
        since = feature(x, "days_since_last_txn")
        stopped = (
            feature(x, "ever_active", 1.0) >= 1.0
            and feature(x, "silence_ratio_q95") >= self.stop_silence_ratio
        )
        credit_days = feature(d, "silence_credit_days")
        if (
            stopped
            and since >= (self.switch_season_days if season else self.switch_min_days)
            and credit_days >= since - 1
            and feature(d, "silence_excess_inflow") >= self.switch_excess_inflow
        ):
            out.append(
                _hit("pos_stopped_other_acquirer", 0.85, "silence_credit_days", credit_days, 0.0)
            )
        mean = feature(x, "eod_balance_mean_30d_fen")
        balance = feature(x, "eod_balance_fen")
        swept = feature(x, "outflow_transfer_own_other_bank_30d_fen")
        if (
            stopped
            and since >= 2
            and mean > 0
            and balance < self.swept_balance_share * mean
            and swept >= self.swept_transfer_share * mean
        ):
            out.append(_hit("balance_swept_pos_stopped", 0.85, "eod_balance_fen", balance, mean))
        acct_since = feature(x, "days_since_last_acct_txn", -1.0)
        missed = feature(d, "missed_open_days_ratio")
        if (
            not season
            and since >= self.stop_min_days
            and missed >= self.stop_missed_ratio
            and 0 <= acct_since <= 3
        ):
            base = feature(x, "gap_q95_days")
            out.append(
                _hit(
                    "pos_stopped_account_active",
                    self.weak_strength,
                    "days_since_last_txn",
                    since,
                    base,
                )
            )
        ratio = feature(d, "turnover_fast_vs_slow", 1.0)
        if not season and feature(d, "drift_direction") < 0 and ratio < self.decline_ratio:
            out.append(
                _hit("turnover_decline", self.weak_strength, "turnover_fast_vs_slow", ratio, 1.0)
            )
        return sorted(out, key=lambda h: -h.strength)

    def score_one(self, x: Mapping[str, float]) -> float:
        return round(noisy_or([h.strength for h in self.hits(x, x)]), 6)


def _hit(name: str, strength: float, feat: str, value: float, baseline: float) -> RuleHit:
    reason = ReasonCode(
        feature=feat, value=round(value, 6), baseline=round(baseline, 6), contribution=strength
    )
    return RuleHit(name, strength, reason)


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
    *,
    closure_ramp_days: float = 1.0,
    decline: float = 0.0,
    decline_weight: float = 0.0,
    in_season: bool = False,
) -> float:
    """P(no sale in the next ``horizon_days``) from the merchant's own rhythm.

    Three explanations of a silence of s days compete. The merchant still trades and this is
    one of its gaps: likelihood P(gap > s) from its own gap quantiles ``gaps`` = (q50, q95),
    or, while it has too few gaps, (1 - r)^s with r its share of active days before the
    silence. It left at some point in the silence: weight ``gone_hazard`` x (s + 1), times
    (1 + ``decline_weight`` x ``decline``) for a merchant whose turnover is falling (decline
    in [0, 1]). It closed for a while (a holiday; raise ``closure_hazard`` when the silence
    began in a closure season such as the Spring Festival): weight ``closure_hazard`` x
    min(s, ``closure_ramp_days``) x S(s), S the closure survival. When the silence began in a
    closure season, or goes on a shutdown made in one after a stray sale or two
    (``in_season``), it is a closure or a departure, not an ordinary gap: the trading
    explanation is left out, so that the merchant's own rhythm (whether it usually sells
    daily) does not rank shutdowns above departures. The answer is P(gone) + P(closed)
    S(s + H) / S(s) + P(trading) P(gap > s + H | gap > s).

    >>> daily = inactivity_prior(10, 80, 90, 30)
    >>> monthly = inactivity_prior(10, 3, 90, 30)
    >>> festival = inactivity_prior(10, 80, 90, 30, closure_hazard=0.05)
    >>> daily > monthly, daily > festival, round(inactivity_prior(0, 85, 90, 30), 3)
    (True, True, 0.001)
    >>> inactivity_prior(3, 80, 90, 30, gaps=(1, 7)) < inactivity_prior(3, 80, 90, 30, gaps=(1, 2))
    True
    >>> fading = inactivity_prior(0, 85, 90, 30, decline=0.6, decline_weight=3.0)
    >>> fading > inactivity_prior(0, 85, 90, 30)
    True
    >>> season = [inactivity_prior(s, 80, 90, 30, 0.001, 0.05, in_season=True) for s in (2, 5, 9)]
    >>> season == sorted(season)  # within a closure season, a longer silence ranks higher
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
    if in_season and silence_days >= 1:
        now = later = 0.0
    fading = 1.0 + decline_weight * min(max(decline, 0.0), 1.0)
    gone = gone_hazard * (silence_days + 1.0) * fading
    survive = closure_survival(silence_days)
    closed = closure_hazard * min(silence_days, closure_ramp_days) * survive
    stays_closed = closure_survival(silence_days + horizon_days) / survive
    return float((gone + closed * stays_closed + later) / (gone + closed + now))
