"""Merchant drill-down: one merchant's sales, cash flow, alerts, reasons, limits and tasks."""

from __future__ import annotations

from dashboards.common import (
    MERCHANT_DASHBOARD_UID,
    Annotation,
    Dashboard,
    Format,
    Query,
    Variable,
    day_time,
    sql,
    step_series,
    table,
    timeseries,
)

UID = MERCHANT_DASHBOARD_UID
CNY = "prefix:¥"
#: The selected merchant, quoted: every query of this dashboard filters on it.
MERCHANT = "${merchant:singlequote}"

MERCHANT_VARIABLE = Variable(
    name="merchant",
    label="Merchant",
    query=Query(
        """
        SELECT p.merchant_id AS merchant_id, concat(p.merchant_id, ' · ', p.name) AS label
        FROM merchant_profiles AS p FINAL
        LEFT JOIN
        (
            SELECT merchant_id, count() AS alerts, sum(exposure_fen) AS total_exposure_fen
            FROM alerts_current
            GROUP BY merchant_id
        ) AS a ON a.merchant_id = p.merchant_id
        ORDER BY a.alerts DESC, a.total_exposure_fen DESC, p.merchant_id
        LIMIT 2000
        """,
        columns=("merchant_id", "label"),
    ),
    description="Merchants with the most alerts first; type an id to pick any other.",
)

PROFILE = table(
    "Profile",
    "Who the merchant is, who looks after it, its lifecycle stage, facility and current POS-loan "
    "limit. For: risk desk, account manager.",
    Query(
        sql(
            """
            SELECT p.merchant_id AS merchant_id, p.name AS name, p.industry AS industry,
                p.region AS region, p.grid_id AS grid_id, p.account_manager_id AS manager_id,
                p.onboarding_date AS onboarding_date,
                coalesce(nullIf(l.current_stage, ''), 'unclassified') AS stage,
                p.pos_loan_facility_fen / 100 AS facility_cny,
                p.pos_loan_outstanding_fen / 100 AS outstanding_cny,
                c.limit_fen / 100 AS limit_cny, c.eligible AS limit_eligible
            FROM (SELECT * FROM merchant_profiles FINAL WHERE merchant_id = @M@) AS p
            LEFT JOIN
            (
                SELECT merchant_id, argMax(stage, effective_from) AS current_stage
                FROM merchant_lifecycle FINAL
                WHERE merchant_id = @M@ AND effective_from <= @END_DAY@
                GROUP BY merchant_id
            ) AS l ON l.merchant_id = p.merchant_id
            LEFT JOIN
            (
                SELECT merchant_id, limit_fen, eligible
                FROM pos_loan_limits_current
                WHERE merchant_id = @M@
            ) AS c ON c.merchant_id = p.merchant_id
            """,
            M=MERCHANT,
        ),
        columns=(
            "merchant_id",
            "name",
            "industry",
            "region",
            "grid_id",
            "manager_id",
            "onboarding_date",
            "stage",
            "facility_cny",
            "outstanding_cny",
            "limit_cny",
            "limit_eligible",
        ),
    ),
    units={"facility_cny": CNY, "outstanding_cny": CNY, "limit_cny": CNY},
    height=4,
)

TURNOVER = timeseries(
    "POS turnover, refunds and chargebacks",
    "Approved card turnover, refunds and chargebacks per business day (CNY); alerts appear as "
    "annotations. Question: did sales fall, and did it happen before or after the alert? For: "
    "risk desk, account manager.",
    Query(
        sql(
            """
            SELECT @TIME@, pos_approved_amount_fen / 100 AS turnover_cny,
                pos_refund_amount_fen / 100 AS refunds_cny,
                pos_chargeback_amount_fen / 100 AS chargebacks_cny
            FROM merchant_daily FINAL
            WHERE merchant_id = @M@ AND $__dateFilter(day)
            ORDER BY time
            """,
            M=MERCHANT,
            TIME=day_time(),
        ),
        columns=("time", "turnover_cny", "refunds_cny", "chargebacks_cny"),
        format=Format.TIME_SERIES,
    ),
    unit=CNY,
    bars=True,
)

CASH_FLOW = timeseries(
    "Cash flow on the business account",
    "Inflows, outflows and POS settlement credited per business day, and the day-end balance "
    "(CNY). Question: is settlement leaving for another bank, is money flowing out, is the "
    "balance near zero? For: risk desk.",
    Query(
        sql(
            """
            SELECT @TIME@, acct_credit_amount_fen / 100 AS inflow_cny,
                acct_debit_amount_fen / 100 AS outflow_cny,
                acct_settlement_amount_fen / 100 AS settlement_cny,
                acct_end_balance_fen / 100 AS end_balance_cny
            FROM merchant_daily FINAL
            WHERE merchant_id = @M@ AND $__dateFilter(day)
            ORDER BY time
            """,
            M=MERCHANT,
            TIME=day_time(),
        ),
        columns=("time", "inflow_cny", "outflow_cny", "settlement_cny", "end_balance_cny"),
        format=Format.TIME_SERIES,
    ),
    unit=CNY,
)

LIMIT_HISTORY = step_series(
    "POS-loan limit history",
    "Every limit version: the limit and the turnover- and repayment-based amounts it was cut "
    "from, and the outstanding balance (CNY). Question: why is the limit what it is, and when did "
    "it change? For: POS-loan product, risk desk.",
    Query(
        sql(
            """
            SELECT as_of AS time, limit_fen / 100 AS limit_cny,
                turnover_based_fen / 100 AS turnover_based_cny,
                repayment_based_fen / 100 AS repayment_based_cny,
                outstanding_fen / 100 AS outstanding_cny
            FROM pos_loan_limits FINAL
            WHERE merchant_id = @M@ AND as_of <= $__toTime
            ORDER BY time
            """,
            M=MERCHANT,
        ),
        columns=(
            "time",
            "limit_cny",
            "turnover_based_cny",
            "repayment_based_cny",
            "outstanding_cny",
        ),
        format=Format.TIME_SERIES,
    ),
    unit=CNY,
)

REASONS = table(
    "Alerts and their reason codes",
    "Each alert's latest version with its reason codes: the feature, the merchant's value "
    "against its own baseline, and the contribution to the score. Question: why was this "
    "merchant flagged? For: risk desk, account manager.",
    Query(
        sql(
            """
            SELECT a.opened_at AS opened_at, a.alert_type AS alert_type, a.severity AS severity,
                a.status AS status, round(a.score, 3) AS score, a.decided_by AS decided_by,
                JSONExtractString(r, 'feature') AS feature,
                JSONExtractFloat(r, 'value') AS value,
                JSONExtract(r, 'baseline', 'Nullable(Float64)') AS baseline,
                JSONExtractFloat(r, 'contribution') AS contribution,
                a.alert_id AS alert_id
            FROM alerts_current AS a
            LEFT ARRAY JOIN JSONExtractArrayRaw(a.reasons_json) AS r
            WHERE a.merchant_id = @M@ AND a.opened_at <= $__toTime
            ORDER BY opened_at DESC, alert_id, contribution DESC
            LIMIT 200
            """,
            M=MERCHANT,
        ),
        columns=(
            "opened_at",
            "alert_type",
            "severity",
            "status",
            "score",
            "decided_by",
            "feature",
            "value",
            "baseline",
            "contribution",
            "alert_id",
        ),
    ),
)

LIMIT_REASONS = table(
    "Limit versions and their reasons",
    "Each limit version with eligibility, the change against the previous limit, the stability "
    "haircut, the risk factor and the reasons. Question: what moved the limit? For: POS-loan "
    "product.",
    Query(
        sql(
            """
            SELECT as_of, version, eligible, limit_fen / 100 AS limit_cny,
                (limit_fen - previous_limit_fen) / 100 AS change_cny, stability_haircut,
                risk_factor, arrayStringConcat(reasons, '; ') AS reasons
            FROM pos_loan_limits FINAL
            WHERE merchant_id = @M@ AND as_of <= $__toTime
            ORDER BY version DESC
            LIMIT 100
            """,
            M=MERCHANT,
        ),
        columns=(
            "as_of",
            "version",
            "eligible",
            "limit_cny",
            "change_cny",
            "stability_haircut",
            "risk_factor",
            "reasons",
        ),
    ),
    units={"limit_cny": CNY, "change_cny": CNY},
    width=12,
)

TASKS = table(
    "Outreach tasks and outcomes",
    "Tasks created for this merchant, their state, and the latest outcome reported by the "
    "account manager. Question: has anyone acted, and with what result? For: account manager, "
    "risk desk.",
    Query(
        sql(
            """
            SELECT t.created_at AS created_at, t.task_type AS task_type, t.status AS status,
                t.manager_id AS manager_id, round(t.priority, 3) AS priority,
                t.due_date AS due_date, t.reason AS reason,
                t.suggested_action AS suggested_action,
                coalesce(nullIf(o.last_outcome, ''), 'none yet') AS outcome
            FROM (SELECT * FROM outreach_tasks FINAL WHERE merchant_id = @M@) AS t
            LEFT JOIN
            (
                SELECT task_id, argMax(outcome, event_time) AS last_outcome
                FROM outreach_outcomes FINAL
                WHERE merchant_id = @M@
                GROUP BY task_id
            ) AS o ON o.task_id = t.task_id
            WHERE t.created_at <= $__toTime
            ORDER BY created_at DESC
            LIMIT 100
            """,
            M=MERCHANT,
        ),
        columns=(
            "created_at",
            "task_type",
            "status",
            "manager_id",
            "priority",
            "due_date",
            "reason",
            "suggested_action",
            "outcome",
        ),
    ),
)

ALERT_ANNOTATIONS = Annotation(
    name="Alerts",
    query=Query(
        sql(
            """
            SELECT opened_at AS time,
                concat(alert_type, ' alert, ', severity, ', score ', toString(round(score, 2)),
                    ' (', status, ')') AS text,
                concat(alert_type, ',', severity) AS tags
            FROM alerts_current
            WHERE merchant_id = @M@ AND $__timeFilter(opened_at)
            ORDER BY time
            """,
            M=MERCHANT,
        ),
        columns=("time", "text", "tags"),
    ),
)


def build() -> Dashboard:
    """The merchant drill-down."""
    return Dashboard(
        uid=UID,
        title="Merchant Monitor · Merchant drill-down",
        description="Why one merchant was flagged: sales and cash flow against its alerts, its "
        "reason codes, limit history and outreach.",
        module=__name__,
        panels=(PROFILE, TURNOVER, CASH_FLOW, LIMIT_HISTORY, LIMIT_REASONS, REASONS, TASKS),
        variables=(MERCHANT_VARIABLE,),
        annotations=(ALERT_ANNOTATIONS,),
        time_from="now-90d",
    )
