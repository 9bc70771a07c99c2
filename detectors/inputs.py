"""Model inputs: the feature subsets the River models see, scaled to comparable ranges."""

from __future__ import annotations

import math
from collections.abc import Mapping

from detectors.base import feature


def _log(x: Mapping[str, float], name: str) -> float:
    return math.log1p(max(feature(x, name), 0.0))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


#: Inputs of the inactivity / churn heads, in a fixed order (pending queues store vectors).
CHURN_INPUTS: tuple[str, ...] = (
    "inactivity_prior_logit",
    "log_days_since_last_txn",
    "log_silence_ratio_q95",
    "log_gap_q95_days",
    "log_gap_q50_days",
    "active_share_7d",
    "active_share_30d",
    "active_share_90d",
    "log_txn_count_7d",
    "log_txn_count_30d",
    "log_txn_count_90d",
    "log_amount_sum_30d_fen",
    "trend_7d_vs_prev_28d",
    "trend_28d_vs_quarter_ago",
    "amount_cv_daily_30d",
    "cards_7d_vs_30d",
    "settlement_to_pos_ratio_30d",
    "other_bank_outflow_share_30d",
    "log_days_since_last_acct_txn",
    "log_history_days",
    "missed_open_days_ratio",
    "turnover_fast_vs_slow",
    "drift_direction",
    "festival_season",
    "settlement_missing_days",
)

#: Inputs of the credit models (anomaly per segment and delinquency classifier).
CREDIT_INPUTS: tuple[str, ...] = (
    "trend_7d_vs_prev_28d",
    "active_share_30d",
    "returned_item_count_30d",
    "overdraft_days_30d",
    "other_lender_new_30d",
    "log_other_lender_count_90d",
    "eod_min_vs_turnover",
    "eod_slope_vs_turnover",
    "net_cashflow_vs_inflow_30d",
    "cash_withdrawal_share_30d",
    "other_bank_outflow_share_30d",
    "payroll_late",
    "tax_late",
    "utility_late",
    "decline_ratio_7d",
    "turnover_fast_vs_slow",
)


def _late(x: Mapping[str, float], name: str) -> float:
    """How late a monthly payment is: days since it beyond a month, in months (0 if never)."""
    since = feature(x, f"days_since_{name}", -1.0)
    return min(max(since - 31.0, 0.0) / 30.0, 3.0) if since >= 0 else 0.0


def derived(x: Mapping[str, float], extra: Mapping[str, float]) -> dict[str, float]:
    """Every model input from a day's features and the detector's own per-merchant values.

    ``extra`` carries what the feature engine does not: missed_open_days_ratio,
    turnover_fast_vs_slow, drift_direction, festival_season, settlement_missing_days.

    >>> d = derived({"days_since_last_txn": 3.0, "active_days_30d": 15.0}, {})
    >>> round(d["log_days_since_last_txn"], 3), d["active_share_30d"]
    (1.386, 0.5)
    """
    turnover_30d = feature(x, "amount_sum_30d_fen")
    inflow = feature(x, "acct_credit_amount_sum_30d_fen")
    scale = max(turnover_30d + inflow, 1.0)
    out = {
        "log_days_since_last_txn": _log(x, "days_since_last_txn"),
        "log_silence_ratio_q95": math.log1p(min(max(feature(x, "silence_ratio_q95"), 0.0), 100.0)),
        "log_gap_q95_days": _log(x, "gap_q95_days"),
        "log_gap_q50_days": _log(x, "gap_q50_days"),
        "active_share_7d": feature(x, "active_days_7d") / 7.0,
        "active_share_30d": feature(x, "active_days_30d") / 30.0,
        "active_share_90d": feature(x, "active_days_90d") / 90.0,
        "log_txn_count_7d": _log(x, "txn_count_7d"),
        "log_txn_count_30d": _log(x, "txn_count_30d"),
        "log_txn_count_90d": _log(x, "txn_count_90d"),
        "log_amount_sum_30d_fen": math.log1p(max(turnover_30d, 0.0)),
        "trend_7d_vs_prev_28d": feature(x, "trend_7d_vs_prev_28d"),
        "trend_28d_vs_quarter_ago": feature(x, "trend_28d_vs_quarter_ago"),
        "amount_cv_daily_30d": min(feature(x, "amount_cv_daily_30d"), 5.0),
        "cards_7d_vs_30d": min(
            _ratio(feature(x, "distinct_cards_7d"), feature(x, "distinct_cards_30d")), 1.0
        ),
        "settlement_to_pos_ratio_30d": min(feature(x, "settlement_to_pos_ratio_30d", 1.0), 2.0),
        "other_bank_outflow_share_30d": feature(x, "other_bank_outflow_share_30d"),
        "log_days_since_last_acct_txn": math.log1p(
            max(feature(x, "days_since_last_acct_txn", -1.0), 0.0)
        ),
        "log_history_days": _log(x, "history_days"),
        "returned_item_count_30d": min(feature(x, "returned_item_count_30d"), 10.0),
        "overdraft_days_30d": feature(x, "overdraft_days_30d") / 30.0,
        "other_lender_new_30d": min(feature(x, "other_lender_new_30d"), 5.0),
        "log_other_lender_count_90d": _log(x, "other_lender_count_90d"),
        "eod_min_vs_turnover": max(min(feature(x, "eod_balance_min_30d_fen") / scale, 2.0), -2.0),
        "eod_slope_vs_turnover": max(
            min(30.0 * feature(x, "eod_balance_slope_30d_fen_per_day") / scale, 2.0), -2.0
        ),
        "net_cashflow_vs_inflow_30d": max(
            min(feature(x, "net_cashflow_30d_fen") / max(inflow, 1.0), 1.0), -2.0
        ),
        "cash_withdrawal_share_30d": feature(x, "cash_withdrawal_share_30d"),
        "payroll_late": _late(x, "payroll"),
        "tax_late": _late(x, "tax"),
        "utility_late": _late(x, "utility"),
        "decline_ratio_7d": feature(x, "decline_ratio_7d"),
    }
    for name in (
        "inactivity_prior_logit",
        "missed_open_days_ratio",
        "turnover_fast_vs_slow",
        "drift_direction",
        "festival_season",
        "settlement_missing_days",
    ):
        out[name] = feature(extra, name)
    return out


def vector(values: Mapping[str, float], names: tuple[str, ...]) -> list[float]:
    """The values of ``names`` in order (missing = 0)."""
    return [feature(values, name) for name in names]


def as_dict(vec: list[float], names: tuple[str, ...]) -> dict[str, float]:
    """A stored vector back as a River feature dict."""
    return dict(zip(names, vec, strict=False))
