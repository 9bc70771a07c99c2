"""Portfolio overview: size, turnover and lifecycle of the book by region, grid and industry."""

from __future__ import annotations

from dashboards.common import (
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
)

UID = "mm-portfolio"
CNY = "prefix:¥"

ACTIVE_MERCHANTS = stat(
    "Active merchants",
    "Merchants with at least one approved card payment in the time range. "
    "Question: how big is the live book? For: risk desk, POS-loan product.",
    Query(
        sql(
            """
            SELECT uniqExactIf(merchant_id, pos_approved_count > 0) AS active_merchants
            FROM merchant_day_enriched
            WHERE $__dateFilter(day) AND @REGION@
            """
        ),
        columns=("active_merchants",),
    ),
)

TURNOVER = stat(
    "POS turnover",
    "Approved card turnover in the time range (CNY). Question: how much flows through our "
    "terminals? For: POS-loan product, risk desk.",
    Query(
        sql(
            """
            SELECT sum(turnover_fen) / 100 AS turnover_cny
            FROM portfolio_daily
            WHERE $__dateFilter(day) AND @REGION@
            """
        ),
        columns=("turnover_cny",),
    ),
    unit=CNY,
)

OPEN_ALERTS = stat(
    "Open alerts",
    "Alerts not resolved, whatever their age. Question: how much is waiting for a decision? "
    "For: risk desk.",
    Query(
        sql(
            "SELECT count() AS open_alerts FROM alerts_current "
            "WHERE status != 'resolved' AND @REGION@"
        ),
        columns=("open_alerts",),
    ),
    steps=thresholds((50, "orange"), (200, "red")),
)

HIGH_EXPOSURE = stat(
    "Exposure under open high-severity alerts",
    "Loan exposure of merchants with an open high-severity alert (CNY). Question: how much money "
    "is at risk right now? For: risk desk.",
    Query(
        sql(
            """
            SELECT sum(exposure_fen) / 100 AS exposure_cny
            FROM alerts_current
            WHERE status != 'resolved' AND severity = 'high' AND @REGION@
            """
        ),
        columns=("exposure_cny",),
    ),
    unit=CNY,
)

TURNOVER_BY_REGION = timeseries(
    "Daily POS turnover by region",
    "Approved card turnover per business day and region (CNY). Question: is any region "
    "falling behind its own rhythm (closing days, month end, Spring Festival)? For: risk desk.",
    Query(
        sql(
            """
            SELECT @TIME@, region, sum(turnover_fen) / 100 AS turnover_cny
            FROM portfolio_daily
            WHERE $__dateFilter(day) AND @REGION@
            GROUP BY day, region
            ORDER BY time, region
            """,
            TIME=day_time(),
        ),
        columns=("time", "region", "turnover_cny"),
        format=Format.TIME_SERIES,
    ),
    unit=CNY,
)

STAGES = timeseries(
    "Active merchants by lifecycle stage",
    "Merchants with card payments per day, stacked by lifecycle stage (acquisition, growth, "
    "maturity, decline, churn). Question: is the book shifting towards decline? For: risk desk, "
    "account-manager team leads.",
    Query(
        sql(
            """
            SELECT @TIME@, stage, sum(active_merchants) AS merchants
            FROM portfolio_daily
            WHERE $__dateFilter(day) AND @REGION@
            GROUP BY day, stage
            ORDER BY time, stage
            """,
            TIME=day_time(),
        ),
        columns=("time", "stage", "merchants"),
        format=Format.TIME_SERIES,
    ),
    bars=True,
    stacked=True,
)

BY_INDUSTRY = barchart(
    "Turnover and refunds by industry",
    "Approved turnover and refunds per industry in the time range (CNY). Question: where is the "
    "book concentrated, and where do refunds eat into sales? For: POS-loan product.",
    Query(
        sql(
            """
            SELECT industry, sum(turnover_fen) / 100 AS turnover_cny,
                sum(refund_fen) / 100 AS refunds_cny
            FROM portfolio_daily
            WHERE $__dateFilter(day) AND @REGION@
            GROUP BY industry
            ORDER BY turnover_cny DESC
            """
        ),
        columns=("industry", "turnover_cny", "refunds_cny"),
    ),
    x_field="industry",
    unit=CNY,
)

GRIDS = table(
    "Grids: last 7 days against the 4 weeks before",
    "Per grid, turnover of the last 7 days of the range against the weekly average of the 28 "
    "days before, worst first. Question: which grids need their managers' attention this week? "
    "For: account-manager team leads, risk desk.",
    Query(
        sql(
            """
            SELECT grid_id, region, uniqExact(merchant_id) AS merchants,
                sumIf(pos_approved_amount_fen, day > @END_DAY@ - 7) / 100 AS turnover_7d_cny,
                sumIf(pos_approved_amount_fen, day <= @END_DAY@ - 7) / 100 / 4
                    AS weekly_avg_prior_28d_cny,
                if(weekly_avg_prior_28d_cny > 0,
                    turnover_7d_cny / weekly_avg_prior_28d_cny - 1, NULL) AS change
            FROM merchant_day_enriched
            WHERE day > @END_DAY@ - 35 AND day <= @END_DAY@ AND @REGION@
            GROUP BY grid_id, region
            ORDER BY change ASC NULLS LAST, grid_id
            LIMIT 100
            """
        ),
        columns=(
            "grid_id",
            "region",
            "merchants",
            "turnover_7d_cny",
            "weekly_avg_prior_28d_cny",
            "change",
        ),
    ),
    units={"turnover_7d_cny": CNY, "weekly_avg_prior_28d_cny": CNY, "change": "percentunit"},
    width=12,
)


def build() -> Dashboard:
    """The portfolio overview."""
    return Dashboard(
        uid=UID,
        title="Merchant Monitor · Portfolio overview",
        description="The merchant book at a glance: activity, turnover, alerts and lifecycle by "
        "region, grid, industry and stage.",
        module=__name__,
        panels=(
            ACTIVE_MERCHANTS,
            TURNOVER,
            OPEN_ALERTS,
            HIGH_EXPOSURE,
            TURNOVER_BY_REGION,
            STAGES,
            BY_INDUSTRY,
            GRIDS,
        ),
        variables=(REGION_VARIABLE,),
    )
