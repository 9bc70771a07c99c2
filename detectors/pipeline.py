"""The one pure entry point per closed merchant-day, shared by the worker and the backtest."""

from __future__ import annotations

import logging
import math
import pickle
import zlib
from dataclasses import dataclass, field

from detectors.alerts import ALERT_TYPES, AlertPolicy, Decision
from detectors.base import DetectorError, clip, feature
from detectors.churn import ChurnRules, churn_heads, inactivity_prior, noisy_or
from detectors.credit import CreditRules, SegmentAnomaly, delinquency_head, loan_category
from detectors.dormancy import (
    DormancyDetector,
    DormancyState,
    DormancyVerdict,
    note_silence,
)
from detectors.features.close import DaySnapshot
from detectors.features.params import BusinessCalendar
from detectors.inputs import CHURN_INPUTS, CREDIT_INPUTS, as_dict, derived, vector
from detectors.lifecycle import LifecycleRules
from detectors.monitoring import Rivalry
from detectors.online import OnlineClassifier
from detectors.seasonal import days_from_spring_festival
from detectors.state import MAX_PENDING, DetectorState, half_precision
from schemas.dashboard_rows import LifecycleStage, LoanCategory, ModelMetricRow
from schemas.outputs import Alert, AlertType, ReasonCode

log = logging.getLogger(__name__)
MODELS_FORMAT = 1
#: Days of the exponential averages of inflow and card turnover on sale days.
_INFLOW_DAYS = 30.0
#: Shortest POS silence that can be a festival shutdown (as ``pos_stopped``: 2 days).
_SHUTDOWN_MIN_DAYS = 2
#: A silence in the festival window starting this many days after the remembered shutdown
#: began belongs to a later festival.
_SHUTDOWN_NEW_DAYS = 60


@dataclass(frozen=True)
class MonitorParams:
    """Every parameter of the detectors and policies (from settings, once, at the edge)."""

    horizon_days: int = 30
    delinquency_horizon_days: int = 60
    label_stride_days: int = 7
    churn_open_score: float = 0.75
    #: Whether the warm churn head may open churn alerts on its own (see ``_churn``).
    churn_model_opens: bool = False
    credit_open_score: float = 0.75
    #: Whether the warm delinquency head may raise the credit review on its own (``_credit``).
    credit_model_opens: bool = False
    #: A rule score from which the credit review is raised again during the cooldown after the
    #: last one was closed (about two strong signals at once, or overdue beyond grace): the
    #: cooldown keeps a closed review from coming back on the evidence it was closed on, not
    #: from escalation while the borrower's account runs dry before a due date.
    credit_reraise_score: float = 0.95
    anomaly_score: float = 0.9
    festival_before_days: int = 14
    festival_after_days: int = 30
    #: Daily hazards of the inactivity rules: leaving, closing for a while, closing when the
    #: silence began in a closure season (``detectors.churn.inactivity_prior``).
    gone_hazard: float = 0.001
    closure_hazard: float = 0.003
    closure_hazard_season: float = 0.05
    #: Days over which the weight of the closure explanation grows with the silence.
    closure_ramp_days: float = 1.0
    #: How much a falling turnover (1 - fast / slow) multiplies the leaving hazard.
    inactive_decline_weight: float = 3.0
    #: Sale days after a Spring Festival shutdown that are still stray sales in it: a silence
    #: after at most this many is the shutdown going on (``_shut_for_festival``).
    shutdown_stray_sale_days: int = 2
    dormancy: DormancyDetector = field(default_factory=DormancyDetector)
    churn_rules: ChurnRules = field(default_factory=ChurnRules)
    credit_rules: CreditRules = field(default_factory=CreditRules)
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)
    policy: AlertPolicy = field(default_factory=AlertPolicy)

    def __post_init__(self) -> None:
        longest = max(self.horizon_days, self.delinquency_horizon_days)
        if longest // self.label_stride_days + 2 > MAX_PENDING:
            msg = f"horizon / label_stride_days must stay under {MAX_PENDING - 2} pending samples"
            raise DetectorError(msg)


class MonitorModels:
    """The shared, segment-level online models (never one per merchant), with their health.

    Pickle-able (``to_bytes`` / ``from_bytes`` add a format byte and zlib): the worker saves
    them periodically and restores them at start, so a restart does not relearn.
    """

    def __init__(
        self, horizon_days: int = 30, delinquency_horizon_days: int = 60, seed: int = 42
    ) -> None:
        self.churn, self.inactive = churn_heads(horizon_days)
        self.delinquency: OnlineClassifier = delinquency_head(delinquency_horizon_days)
        self.segments: dict[str, SegmentAnomaly] = {}
        self.seed = seed
        #: The inactive head against the rules (``inactivity_prior``) on the same labels.
        self.inactive_rivalry = Rivalry()

    def segment(self, name: str) -> SegmentAnomaly:
        model = self.segments.get(name)
        if model is None:
            model = self.segments[name] = SegmentAnomaly(seed=self.seed)
        return model

    def metric_rows(self, day: int) -> list[ModelMetricRow]:
        """Today's ``model_metrics`` rows of every classifier (call once per closed day)."""
        when = BusinessCalendar.date_of_day(day)
        rows: list[ModelMetricRow] = []
        for model in (self.churn, self.inactive, self.delinquency):
            rows += model.health.rows(when, model.version)
        return rows

    def to_bytes(self) -> bytes:
        return bytes([MODELS_FORMAT]) + zlib.compress(pickle.dumps(self, protocol=5))

    @staticmethod
    def from_bytes(data: bytes) -> MonitorModels:
        if not data or data[0] != MODELS_FORMAT:
            raise DetectorError(f"unknown models format (this build reads {MODELS_FORMAT})")
        models = pickle.loads(zlib.decompress(data[1:]))  # noqa: S301 - our own saved models
        if not isinstance(models, MonitorModels):
            raise DetectorError("saved models are not MonitorModels")
        if not hasattr(models, "inactive_rivalry"):  # saved before the rivalry existed
            models.inactive_rivalry = Rivalry()
        return models


@dataclass(frozen=True, slots=True)
class DayScores:
    """What the detectors say about one merchant-day (a row of scores.csv / the warehouse)."""

    merchant_id: str
    day: int
    p_inactive: float
    inactive_decided_by: str
    dormancy_state: DormancyState
    dormancy_score: float
    reactivated: bool
    churn_score: float
    churn_decided_by: str
    credit_score: float
    credit_decided_by: str
    loan_category: LoanCategory
    review_flag: bool
    lifecycle_stage: LifecycleStage


def _sampled(merchant_id: str, day: int, stride: int) -> bool:
    """Whether this merchant-day feeds the label queues: every stride-th day, spread by merchant."""
    return (day + zlib.crc32(merchant_id.encode())) % stride == 0


def is_sample_day(merchant_id: str, day: int, params: MonitorParams) -> bool:
    """The days a backtest must close with features for the models to learn (besides as-of)."""
    return _sampled(merchant_id, day, params.label_stride_days)


def _track(state: DetectorState, snapshot: DaySnapshot, params: MonitorParams) -> bool:
    """Updates that need only the day's totals; returns whether the day is festival season."""
    day, totals = snapshot.day, snapshot.totals
    if state.first_day < 0:
        state.first_day = day
    offset = days_from_spring_festival(day)
    festival = -params.festival_before_days <= offset <= params.festival_after_days
    if state.prev_pos_fen > 0 and totals.acct_settlement_amount_fen == 0:
        state.settlement_missing_days += 1
    elif totals.acct_settlement_amount_fen > 0 or state.prev_pos_fen == 0:
        state.settlement_missing_days = 0
    state.prev_pos_fen = float(totals.pos_approved_amount_fen)
    memory = state.dormancy
    sold = totals.pos_approved_count > 0
    if sold and state.sale_fen >= 0:  # a silence after a first sale (read before it is set)
        _track_shutdown(state, day, memory.last_silence_days, params.dormancy)
    _track_inflows(state, snapshot)
    if not festival:  # the festival is not a change of the merchant's level
        state.drift.update(float(totals.pos_approved_amount_fen), day)
    silence = 0 if sold else memory.last_silence_days + 1
    if silence > state.dormant_threshold_days and memory.last_silence_days >= 0:
        memory.last_dormant_day = day
    return festival


def _track_shutdown(state: DetectorState, day: int, ended: int, det: DormancyDetector) -> None:
    """On a sale day that ends a silence of ``ended`` days: the merchant's Spring Festival
    shutdown is the longest silence of at least ``_SHUTDOWN_MIN_DAYS`` with a day in the
    dormancy detector's festival window (a later festival's replaces it); every sale day from
    its end on is counted."""
    if ended >= _SHUTDOWN_MIN_DAYS:
        first = day - ended
        if det.in_festival_window(first, day - 1) and (
            ended > state.shutdown_days or first - state.shutdown_day > _SHUTDOWN_NEW_DAYS
        ):
            state.shutdown_day, state.shutdown_days, state.shutdown_sale_days = first, ended, 0
    if state.shutdown_day >= 0:
        state.shutdown_sale_days += 1


def _shut_for_festival(
    state: DetectorState, verdict: DormancyVerdict, params: MonitorParams
) -> bool:
    """Whether a POS silence is a Spring Festival shutdown for ``inactivity_prior``: seasonal for
    the dormancy detector (begun in or run into the festival window, a customary closure, or
    resumed within two days of a closure of 10 days or more in the window), or begun after at
    most ``shutdown_stray_sale_days`` sale days since the merchant's festival shutdown, when
    that shutdown was a stop by its own rhythm (at least ``stop_silence_ratio`` times its q95
    gap). Closed shops make stray sales (the owner, a regular): they split a shutdown into
    silences the detector's window and closure memory do not all see."""
    if verdict.seasonal:
        return True
    return (
        verdict.silence_days >= 1
        and state.shutdown_day >= 0
        and state.shutdown_sale_days <= params.shutdown_stray_sale_days
        and state.shutdown_days >= params.churn_rules.stop_silence_ratio * verdict.expected_gap_days
    )


def _track_inflows(state: DetectorState, snapshot: DaySnapshot) -> None:
    """Credits other than POS settlement: their usual level on sale days, and how they run
    during a POS silence (another acquirer settling here keeps them coming every day)."""
    totals = snapshot.totals
    settled = totals.acct_settlement_amount_fen > 0
    inflow = float(totals.acct_credit_amount_fen - totals.acct_settlement_amount_fen)
    if totals.pos_approved_count > 0:
        state.silence_credit_days, state.silence_inflow_fen = 0, 0.0
        sale = float(totals.pos_approved_amount_fen)
        if state.inflow_fen < 0:
            state.inflow_fen, state.sale_fen = inflow, sale
        else:
            state.inflow_fen += (inflow - state.inflow_fen) / _INFLOW_DAYS
            state.sale_fen += (sale - state.sale_fen) / _INFLOW_DAYS
        return
    state.silence_credit_days += totals.acct_credit_count - int(settled) > 0
    state.silence_inflow_fen += inflow


def _silence_extras(state: DetectorState, silence_days: int) -> dict[str, float]:
    """Churn rule inputs of a POS silence: days with other credits, and the inflow beyond the
    usual one as a share of the usual card turnover (about 1 when another acquirer settles)."""
    if silence_days <= 0 or state.inflow_fen < 0:
        return {"silence_credit_days": 0.0, "silence_excess_inflow": 0.0}
    excess = state.silence_inflow_fen - state.inflow_fen * silence_days
    return {
        "silence_credit_days": float(state.silence_credit_days),
        "silence_excess_inflow": excess / max(state.sale_fen * silence_days, 1.0),
    }


def _resolve_churn_labels(
    state: DetectorState, day: int, silence: int, models: MonitorModels, params: MonitorParams
) -> None:
    pending = state.pending_churn
    if len(pending) <= MAX_PENDING and (not pending or day - pending[0][0] < params.horizon_days):
        return  # queued in day order: nothing is due before the oldest
    last_active = day - silence
    keep = []
    for t, vec in pending:
        if day - t < params.horizon_days:
            keep.append((t, vec))
            continue
        x = as_dict(vec, CHURN_INPUTS)
        inactive = last_active <= t
        logit = min(max(feature(x, "inactivity_prior_logit"), -30.0), 30.0)
        rules = 1.0 / (1.0 + math.exp(-logit))
        models.inactive_rivalry.observe(models.inactive.proba_one(x), rules, inactive)
        models.inactive.learn_one(x, inactive)
        models.churn.learn_one(x, state.dormancy.last_dormant_day > t)
    state.pending_churn = keep[-MAX_PENDING:]


def _resolve_credit_labels(
    state: DetectorState, day: int, models: MonitorModels, params: MonitorParams
) -> None:
    if not state.pending_credit:
        return
    keep = []
    for t, vec in state.pending_credit:
        if state.loan.last_overdue_day > t:
            models.delinquency.learn_one(as_dict(vec, CREDIT_INPUTS), True)
        elif day - t >= params.delinquency_horizon_days:
            models.delinquency.learn_one(as_dict(vec, CREDIT_INPUTS), False)
        else:
            keep.append((t, vec))
    state.pending_credit = keep[-MAX_PENDING:]


def on_loan_event(
    state: DetectorState | None,
    kind: str,
    day: int,
    days_past_due: int,
    amount_fen: int,
    models: MonitorModels,
    params: MonitorParams,
) -> DetectorState:
    """Apply one POS-loan event (kind as in ``schemas.inputs.LoanEventKind``): loan facts, and
    positive delinquency labels resolved at once (the label is known the day it happens)."""
    state = state or DetectorState()
    loan = state.loan
    loan.borrower = True
    if kind == "overdue":
        loan.days_past_due = days_past_due
        loan.last_overdue_day = day
        _resolve_credit_labels(state, day, models, params)
    elif kind == "repaid":
        loan.days_past_due = 0
    elif kind == "disbursed":
        loan.exposure_fen += amount_fen
    return state


def on_profile(state: DetectorState | None, outstanding_fen: int) -> DetectorState:
    """A merchant profile update: the POS-loan exposure (the credit alert's ``exposure_fen``)."""
    state = state or DetectorState()
    state.loan.exposure_fen = outstanding_fen
    state.loan.borrower = state.loan.borrower or outstanding_fen > 0
    return state


def on_day_closed(
    state: DetectorState | None,
    snapshot: DaySnapshot,
    segment: str,
    models: MonitorModels,
    params: MonitorParams,
) -> tuple[DetectorState, list[Alert], DayScores | None]:
    """One closed merchant-day: ``(state, snapshot) -> (state, alerts, scores)``.

    ``state`` is mutated and returned (re-assign it to the table). A snapshot closed without
    features (a backtest's fast path) only updates what the totals drive (silence, drift,
    settlement, label resolution) and returns no scores. ``segment`` is the merchant's industry
    (its shared anomaly model). Models learn in place from labels resolved today.
    """
    state = state or DetectorState()
    day, x = snapshot.day, snapshot.features
    festival = _track(state, snapshot, params)
    memory = state.dormancy
    if not x:
        silence = 0 if snapshot.totals.pos_approved_count else memory.last_silence_days + 1
        # As ``DormancyDetector.remember`` on a day with features: a backtest closes most days
        # without them, and its seasonal verdicts need the same closures.
        note_silence(memory, silence, day)
        _resolve_churn_labels(state, day, silence, models, params)
        _resolve_credit_labels(state, day, models, params)
        return state, [], None
    verdict = params.dormancy.assess(x, day, memory)
    state.dormant_threshold_days = int(verdict.threshold_days)
    params.dormancy.remember(memory, verdict, day)
    _resolve_churn_labels(state, day, verdict.silence_days, models, params)
    _resolve_credit_labels(state, day, models, params)
    drift = state.drift
    observed = min(feature(x, "history_days"), 90.0)
    # A silence that began in a closure season (the Spring Festival, a closure the merchant
    # made a year ago), or that goes on a festival shutdown after a stray sale or two, is more
    # likely a temporary closure than the merchant leaving.
    shut = _shut_for_festival(state, verdict, params)
    prior = inactivity_prior(
        verdict.silence_days,
        feature(x, "active_days_90d"),
        observed,
        params.horizon_days,
        gone_hazard=params.gone_hazard,
        closure_hazard=params.closure_hazard_season if shut else params.closure_hazard,
        gaps=(feature(x, "gap_q50_days"), feature(x, "gap_q95_days"))
        if verdict.decided_by == "rules:own_gaps"
        else None,
        closure_ramp_days=params.closure_ramp_days,
        # A fading merchant that still sells is likelier to leave; once silent, the silence
        # itself is the evidence.
        decline=1.0 - drift.fast_fen / drift.slow_fen
        if drift.slow_fen > 0 and verdict.silence_days == 0
        else 0.0,
        decline_weight=params.inactive_decline_weight,
        in_season=shut,
    )
    extra = {
        "inactivity_prior_logit": math.log(max(prior, 1e-6) / max(1.0 - prior, 1e-6)),
        "missed_open_days_ratio": verdict.missed_open_days
        / max(verdict.expected_gap_days * 0.5, 1.0),
        "turnover_fast_vs_slow": drift.fast_fen / drift.slow_fen if drift.slow_fen > 0 else 1.0,
        "drift_direction": float(drift.recent(day)),
        "festival_season": float(festival),
        "settlement_missing_days": float(state.settlement_missing_days),
    }
    d = derived(x, extra)
    ever_active = verdict.decided_by != "rules:never_active"
    d.update(_silence_extras(state, verdict.silence_days))
    mean_balance = feature(x, "eod_balance_mean_30d_fen")
    d["eod_vs_mean_30d"] = feature(x, "eod_balance_fen") / mean_balance if mean_balance > 0 else 1.0
    # Selling stopped beyond the merchant's own gaps: its cash-flow "stress" is a departure.
    d["pos_stopped"] = float(
        ever_active and verdict.silence_days >= 2 and feature(x, "silence_ratio_q95") >= 1.5
    )
    sampled = _sampled(snapshot.merchant_id, day, params.label_stride_days)
    if sampled and ever_active:
        state.pending_churn.append((day, half_precision(vector(d, CHURN_INPUTS))))
    if sampled and state.loan.borrower:
        state.pending_credit.append((day, half_precision(vector(d, CREDIT_INPUTS))))
    # Inactivity: P(no POS sale in the next H days): the rules, unless the head is warm and
    # has been ranking the recent labels better than they did.
    if models.inactive.is_warm and models.inactive_rivalry.model_decides and ever_active:
        p_inactive, inactive_by = models.inactive.score_one(d), f"model:{models.inactive.version}"
        models.inactive.health.observe_score(p_inactive)
    else:
        p_inactive, inactive_by = prior, "rules:own_activity_rate"
    churn_score, churn_by, churn_reasons, churn_fire = _churn(d, x, models, params)
    credit_score, credit_by, credit_reasons, review = _credit(
        state, d, sampled, segment, models, params
    )
    category = loan_category(state.loan.days_past_due, borrowing_to_repay=False)
    # The churn stage (whose task is a win-back) counts a churn score only where that score
    # may open an alert: the rules', or the warm head's with ``churn_model_opens``. Measured
    # (evaluate, seed 7, 1000 x 180): stages from the head's score made 133 of the 137 wrong
    # win-backs, on seasonal closures, new and stable merchants.
    may_act = churn_by.startswith("rules") or params.churn_model_opens
    stage = params.lifecycle.stage(
        day - state.first_day + 1,
        verdict.state,
        churn_score if may_act else 0.0,
        extra["turnover_fast_vs_slow"],
        d["trend_28d_vs_quarter_ago"],
    )
    scores = DayScores(
        snapshot.merchant_id,
        day,
        clip(p_inactive),
        inactive_by,
        verdict.state,
        verdict.score,
        verdict.reactivated,
        churn_score,
        churn_by,
        credit_score,
        credit_by,
        category,
        review,
        stage,
    )
    dormancy_reasons = [
        ReasonCode(
            feature="days_since_last_txn",
            value=float(verdict.silence_days),
            baseline=verdict.expected_gap_days,
            contribution=verdict.score,
        ),
    ]
    decisions = (
        Decision(
            AlertType.DORMANCY,
            verdict.state >= DormancyState.DORMANT,
            verdict.score,
            2 if verdict.state is DormancyState.LOST else 1,
            verdict.decided_by,
            reasons=dormancy_reasons,
            resolved_by_data=verdict.silence_days == 0,
        ),
        Decision(
            AlertType.CHURN,
            churn_fire,
            churn_score,
            2 if churn_score >= 0.9 else 1,
            churn_by,
            models.churn.version if churn_by.startswith("model") else "",
            churn_reasons,
        ),
        Decision(
            AlertType.CREDIT,
            review,
            credit_score,
            2 if state.loan.days_past_due > 7 or credit_score >= 0.85 else 1,
            credit_by,
            models.delinquency.version if credit_by.startswith("model") else "",
            credit_reasons,
            exposure_fen=state.loan.exposure_fen,
            overrides_cooldown=credit_by.startswith("rules:")
            and credit_score >= params.credit_reraise_score,
        ),
    )
    alerts = []
    for i, decision in enumerate(decisions):
        assert decision.alert_type is ALERT_TYPES[i]
        state.alerts[i], alert = params.policy.step(
            state.alerts[i], decision, snapshot.merchant_id, day
        )
        if alert is not None:
            alerts.append(alert)
    return state, alerts, scores


def _churn(
    d: dict[str, float], x: dict[str, float], models: MonitorModels, params: MonitorParams
) -> tuple[float, str, list[ReasonCode], bool]:
    """Churn score, who decided, reasons, and whether an alert should be open.

    The rules open alerts. The warm head's P(dormant or lost within H days) is reported when it
    scores above the rules, but opens an alert only with ``churn_model_opens``: its label is a
    dormancy, which seasonal closures share, not the loss of the merchant (measured: most of
    its alerts fell on merchants that did not churn)."""
    hits = params.churn_rules.hits(d, x)
    rule_score = round(noisy_or([h.strength for h in hits]), 6)
    by = f"rules:{hits[0].name}" if hits else "rules:none"
    reasons = [h.reason for h in hits]
    if rule_score >= params.churn_open_score:
        if models.churn.is_warm:
            models.churn.health.observe_score(models.churn.score_one(d))
        return rule_score, by, reasons, True
    if models.churn.is_warm:
        p = models.churn.score_one(d)
        models.churn.health.observe_score(p)
        if p > rule_score:
            fire = params.churn_model_opens and p >= params.churn_open_score
            return round(p, 6), f"model:{models.churn.version}", models.churn.reasons(d), fire
    return rule_score, by, reasons, False


def _credit(
    state: DetectorState,
    d: dict[str, float],
    sampled: bool,
    segment: str,
    models: MonitorModels,
    params: MonitorParams,
) -> tuple[float, str, list[ReasonCode], bool]:
    """Credit score, who decided, reasons, and the 关注 review flag (borrowers only).

    The rules raise the review. The warm delinquency head's probability is reported when it
    scores above the rules, but raises the review only with ``credit_model_opens`` (measured:
    on its own it flagged about one healthy borrower in eight per month)."""
    if state.loan.days_past_due > 7:
        reason = ReasonCode(
            feature="days_past_due",
            value=float(state.loan.days_past_due),
            baseline=0.0,
            contribution=1.0,
        )
        return 1.0, "rules:overdue_beyond_grace", [reason], state.loan.borrower
    hits = params.credit_rules.hits(d)
    strengths = [h.strength for h in hits]
    reasons = [h.reason for h in hits]
    by = f"rules:{hits[0].name}" if hits else "rules:none"
    if state.loan.borrower:
        seg = models.segment(segment)
        anomaly = seg.score_one(d)
        if anomaly >= params.anomaly_score:
            strengths.append(0.2)
            reasons.append(
                ReasonCode(
                    feature="segment_anomaly",
                    value=round(anomaly, 6),
                    baseline=params.anomaly_score,
                    contribution=0.2,
                )
            )
        if sampled and not hits:  # confirmed stress stays out of the normal-behaviour model
            seg.learn_one(d)
    score = round(noisy_or(strengths), 6)
    fire = state.loan.borrower and score >= params.credit_open_score
    if state.loan.borrower and models.delinquency.is_warm:
        p = models.delinquency.score_one(d)
        models.delinquency.health.observe_score(p)
        if p > score and not fire:
            by_model = f"model:{models.delinquency.version}"
            fire = params.credit_model_opens and p >= params.credit_open_score
            return round(p, 6), by_model, models.delinquency.reasons(d), fire
    return score, by, reasons[:5], fire
