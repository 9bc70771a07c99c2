"""Risk desk: open alerts ranked by exposure, the five-category loan view and credit stress."""

from __future__ import annotations

from dashboards.common import (
    MERCHANT_LINKS,
    REGION_VARIABLE,
    Dashboard,
    Format,
    Query,
    barchart,
    day_time,
    sql,
    stat,
    table,
    thresholds,
    timeseries,
    var_filter,
)

UID = "mm-risk-desk"
CNY = "prefix:¥"
#: The five classes in order, with their regulatory names.
CATEGORIES = ("normal", "special_mention", "substandard", "doubtful", "loss")
CATEGORY_NAMES = ("正常", "关注", "次级", "可疑", "损失")

#: Each loan's latest position on or before the end of the range, with the merchant's region.
_LOANS_AS_OF = """
    SELECT l.loan_id AS loan_id, l.loan_merchant AS merchant_id, l.last_category AS category,
        l.last_dpd AS days_past_due, l.last_outstanding_fen AS outstanding_fen,
        coalesce(nullIf(p.region, ''), 'unknown') AS region
    FROM
    (
        SELECT loan_id, any(merchant_id) AS loan_merchant,
            argMax(category, day) AS last_category, argMax(days_past_due, day) AS last_dpd,
            argMax(outstanding_fen, day) AS last_outstanding_fen
        FROM loan_positions_classified
        WHERE day <= @END_DAY@
        GROUP BY loan_id
    ) AS l
    LEFT JOIN (SELECT merchant_id, region FROM merchant_profiles FINAL) AS p
        ON p.merchant_id = l.loan_merchant
    WHERE l.last_outstanding_fen > 0
"""

OPEN_CREDIT = stat(
    "Open credit alerts",
    "Credit-deterioration alerts not yet resolved. Question: how many merchants show cash-flow "
    "stress that needs a 关注 review? For: risk desk.",
    Query(
        sql(
            """
            SELECT count() AS open_credit_alerts
            FROM alerts_current
            WHERE alert_type = 'credit' AND status != 'resolved' AND @REGION@
            """
        ),
        columns=("open_credit_alerts",),
    ),
    steps=thresholds((20, "orange"), (100, "red")),
)

EXPOSURE = stat(
    "Exposure under open alerts",
    "Loan exposure of merchants with any open alert (CNY). Question: how much of the book is "
    "flagged? For: risk desk.",
    Query(
        sql(
            """
            SELECT sum(exposure_fen) / 100 AS exposure_cny
            FROM alerts_current
            WHERE status != 'resolved' AND @REGION@
            """
        ),
        columns=("exposure_cny",),
    ),
    unit=CNY,
)

NON_NORMAL_LOANS = stat(
    "Loans special mention or worse",
    "POS loans more than 7 days past due at the end of the range. Question: how many loans have "
    "left the normal class? For: risk desk.",
    Query(
        sql(
            "SELECT count() AS loans FROM (@LOANS@) WHERE category != 'normal' AND @REGION@",
            LOANS=_LOANS_AS_OF,
        ),
        columns=("loans",),
    ),
    steps=thresholds((1, "orange"), (20, "red")),
)

NON_NORMAL_OUTSTANDING = stat(
    "Outstanding special mention or worse",
    "Outstanding balance of those loans (CNY). For: risk desk.",
    Query(
        sql(
            """
            SELECT sum(outstanding_fen) / 100 AS outstanding_cny
            FROM (@LOANS@)
            WHERE category != 'normal' AND @REGION@
            """,
            LOANS=_LOANS_AS_OF,
        ),
        columns=("outstanding_cny",),
    ),
    unit=CNY,
)

OPEN_ALERTS = table(
    "Open alerts ranked by exposure",
    "Every open alert, largest exposure first, with its strongest reason code. Question: which "
    "merchants should the desk look at first? Click a merchant for the drill-down. For: risk desk.",
    Query(
        sql(
            """
            SELECT merchant_id, merchant_name, region, grid_id, alert_type, severity, status,
                round(score, 3) AS score, exposure_fen / 100 AS exposure_cny, opened_at,
                dateDiff('day', opened_at, $__toTime) AS age_days,
                JSONExtractString(arrayElement(arraySort(
                    r -> -JSONExtractFloat(r, 'contribution'),
                    JSONExtractArrayRaw(reasons_json)), 1), 'feature') AS top_reason,
                alert_id
            FROM alerts_current
            WHERE status != 'resolved' AND opened_at <= $__toTime AND @REGION@
            ORDER BY exposure_fen DESC, score DESC, alert_id
            LIMIT 500
            """
        ),
        columns=(
            "merchant_id",
            "merchant_name",
            "region",
            "grid_id",
            "alert_type",
            "severity",
            "status",
            "score",
            "exposure_cny",
            "opened_at",
            "age_days",
            "top_reason",
            "alert_id",
        ),
    ),
    units={"exposure_cny": CNY},
    links=MERCHANT_LINKS,
    height=10,
)

_CATEGORY_ARRAY = "[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "]"
_NAME_ARRAY = "[" + ", ".join(f"'{n}'" for n in CATEGORY_NAMES) + "]"

FIVE_CATEGORY = table(
    "Five-category view (五级分类)",
    "POS loans by class at the end of the range, by days past due: normal, special mention "
    "(over 7), substandard (over 90), doubtful (over 270), loss (over 360). Question: how is the "
    "loan book classified, and how much sits in each class? For: risk desk.",
    Query(
        sql(
            """
            SELECT c.category AS category, c.name AS name, s.loans AS loans,
                s.merchants AS merchants, s.class_outstanding_fen / 100 AS outstanding_cny,
                if(sum(s.class_outstanding_fen) OVER () = 0, 0,
                    s.class_outstanding_fen / sum(s.class_outstanding_fen) OVER ()) AS share
            FROM
            (
                SELECT arrayJoin(arrayZip(@CATEGORIES@, @NAMES@)) AS pair,
                    pair.1 AS category, pair.2 AS name
            ) AS c
            LEFT JOIN
            (
                SELECT category, count() AS loans, uniqExact(merchant_id) AS merchants,
                    sum(outstanding_fen) AS class_outstanding_fen
                FROM (@LOANS@)
                WHERE @REGION@
                GROUP BY category
            ) AS s ON s.category = c.category
            ORDER BY indexOf(@CATEGORIES@, category)
            """,
            LOANS=_LOANS_AS_OF,
            CATEGORIES=_CATEGORY_ARRAY,
            NAMES=_NAME_ARRAY,
        ),
        columns=("category", "name", "loans", "merchants", "outstanding_cny", "share"),
    ),
    units={"outstanding_cny": CNY, "share": "percentunit"},
    width=12,
    height=8,
)

FIVE_CATEGORY_BARS = barchart(
    "Outstanding by class",
    "The same classes as bars (CNY). For: risk desk.",
    Query(
        sql(
            """
            SELECT c.category AS category, s.class_outstanding_fen / 100 AS outstanding_cny
            FROM (SELECT arrayJoin(@CATEGORIES@) AS category) AS c
            LEFT JOIN
            (
                SELECT category, sum(outstanding_fen) AS class_outstanding_fen
                FROM (@LOANS@)
                WHERE @REGION@
                GROUP BY category
            ) AS s ON s.category = c.category
            ORDER BY indexOf(@CATEGORIES@, category)
            """,
            LOANS=_LOANS_AS_OF,
            CATEGORIES=_CATEGORY_ARRAY,
        ),
        columns=("category", "outstanding_cny"),
    ),
    x_field="category",
    unit=CNY,
)

CASH_STRESS = timeseries(
    "Credit stress: merchants under cash-flow strain",
    "Per business day: merchants overdrawn at day end, with a day-end balance under 1,000 CNY, "
    "and paying out more than they took in. Question: is cash-flow stress building before "
    "delinquency shows? For: risk desk.",
    Query(
        sql(
            """
            SELECT @TIME@,
                countIf(acct_end_balance_fen < 0) AS overdrawn,
                countIf(acct_end_balance_fen >= 0 AND acct_end_balance_fen < 100000)
                    AS balance_under_1000_cny,
                countIf(acct_debit_amount_fen > acct_credit_amount_fen) AS net_outflow
            FROM merchant_day_enriched
            WHERE $__dateFilter(day) AND @REGION@
            GROUP BY day
            ORDER BY time
            """,
            TIME=day_time(),
        ),
        columns=("time", "overdrawn", "balance_under_1000_cny", "net_outflow"),
        format=Format.TIME_SERIES,
    ),
)

NEW_ALERTS = timeseries(
    "New alerts per day by type",
    "Alerts opened per business day: dormancy, churn, credit. Question: is the alert flow "
    "steady, or is something surging? For: risk desk.",
    Query(
        sql(
            """
            SELECT toStartOfDay(opened_at, @TZ@) AS time, alert_type, count() AS new_alerts
            FROM alerts_current
            WHERE $__timeFilter(opened_at) AND @REGION@
            GROUP BY time, alert_type
            ORDER BY time, alert_type
            """
        ),
        columns=("time", "alert_type", "new_alerts"),
        format=Format.TIME_SERIES,
    ),
    bars=True,
    stacked=True,
)

WATCHLIST = table(
    "Credit stress watchlist",
    "Merchants with an open credit alert or a loan past the 7-day grace: their loan position, "
    "credit score, day-end balance and account inflows of the last 30 days against the 30 "
    "before. Question: whose cash flow is drying up, and how much do they owe? For: risk desk.",
    Query(
        sql(
            """
            SELECT m.merchant_id AS merchant_id,
                coalesce(nullIf(p.name, ''), m.merchant_id) AS merchant_name,
                coalesce(nullIf(p.region, ''), 'unknown') AS region,
                round(c.credit_score, 3) AS credit_score,
                l.max_dpd AS days_past_due,
                l.total_outstanding_fen / 100 AS outstanding_cny,
                f.balance_fen / 100 AS balance_cny,
                f.inflow_30d_fen / 100 AS inflow_30d_cny,
                f.inflow_prior_30d_fen / 100 AS inflow_prior_30d_cny
            FROM
            (
                SELECT merchant_id FROM alerts_current
                WHERE alert_type = 'credit' AND status != 'resolved'
                UNION DISTINCT
                SELECT merchant_id FROM (@LOANS@) WHERE days_past_due > 7
            ) AS m
            LEFT JOIN
            (
                SELECT merchant_id, max(score) AS credit_score FROM alerts_current
                WHERE alert_type = 'credit' AND status != 'resolved'
                GROUP BY merchant_id
            ) AS c ON c.merchant_id = m.merchant_id
            LEFT JOIN
            (
                SELECT merchant_id, max(days_past_due) AS max_dpd,
                    sum(outstanding_fen) AS total_outstanding_fen
                FROM (@LOANS@)
                GROUP BY merchant_id
            ) AS l ON l.merchant_id = m.merchant_id
            LEFT JOIN
            (
                SELECT merchant_id, argMax(acct_end_balance_fen, day) AS balance_fen,
                    sumIf(acct_credit_amount_fen, day > @END_DAY@ - 30) AS inflow_30d_fen,
                    sumIf(acct_credit_amount_fen, day <= @END_DAY@ - 30)
                        AS inflow_prior_30d_fen
                FROM merchant_daily FINAL
                WHERE day > @END_DAY@ - 60 AND day <= @END_DAY@
                GROUP BY merchant_id
            ) AS f ON f.merchant_id = m.merchant_id
            LEFT JOIN (SELECT merchant_id, name, region FROM merchant_profiles FINAL) AS p
                ON p.merchant_id = m.merchant_id
            WHERE @PROFILE_REGION@
            ORDER BY outstanding_cny DESC, credit_score DESC, merchant_id
            LIMIT 500
            """,
            LOANS=_LOANS_AS_OF,
            PROFILE_REGION=var_filter("region", "p.region"),
        ),
        columns=(
            "merchant_id",
            "merchant_name",
            "region",
            "credit_score",
            "days_past_due",
            "outstanding_cny",
            "balance_cny",
            "inflow_30d_cny",
            "inflow_prior_30d_cny",
        ),
    ),
    units={
        "outstanding_cny": CNY,
        "balance_cny": CNY,
        "inflow_30d_cny": CNY,
        "inflow_prior_30d_cny": CNY,
    },
    links=MERCHANT_LINKS,
    height=10,
)


def build() -> Dashboard:
    """The risk desk."""
    return Dashboard(
        uid=UID,
        title="Merchant Monitor · Risk desk",
        description="Few, explained alerts on credit deterioration and abnormal turnover, ranked "
        "by exposure; the five-category view of POS loans; cash-flow stress before delinquency.",
        module=__name__,
        panels=(
            OPEN_CREDIT,
            EXPOSURE,
            NON_NORMAL_LOANS,
            NON_NORMAL_OUTSTANDING,
            OPEN_ALERTS,
            FIVE_CATEGORY,
            FIVE_CATEGORY_BARS,
            CASH_STRESS,
            NEW_ALERTS,
            WATCHLIST,
        ),
        variables=(REGION_VARIABLE,),
    )
