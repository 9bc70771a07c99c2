"""Model health: online AUC, precision at capacity and drift of the early-warning models."""

from __future__ import annotations

from dashboards.common import (
    Dashboard,
    Format,
    Query,
    Variable,
    day_time,
    sql,
    table,
    thresholds,
    timeseries,
)
from schemas.dashboard_rows import ModelMetric

UID = "mm-model-health"
#: The selected model, quoted.
MODEL = "${model:singlequote}"

MODEL_VARIABLE = Variable(
    name="model",
    label="Model",
    query=Query(
        "SELECT DISTINCT model FROM model_metrics FINAL ORDER BY model",
        columns=("model",),
    ),
)


def _metric_series(metric: ModelMetric) -> Query:
    """One series per model version of one daily metric."""
    return Query(
        sql(
            """
            SELECT @TIME@, model_version, value
            FROM model_metrics FINAL
            WHERE model = @MODEL@ AND metric = '@METRIC@' AND $__dateFilter(day)
            ORDER BY time, model_version
            """,
            TIME=day_time(),
            MODEL=MODEL,
            METRIC=metric.value,
        ),
        columns=("time", "model_version", "value"),
        format=Format.TIME_SERIES,
    )


AUC = timeseries(
    "Online AUC",
    "Area under the ROC curve on the labels that have arrived (churn is known weeks late), per "
    "model version and day; dashed lines at 0.7 and 0.8. Question: does the model still rank "
    "merchants well? For: model owners, risk desk.",
    _metric_series(ModelMetric.AUC_ONLINE),
    decimals=3,
    steps=thresholds((0.7, "orange"), (0.8, "green"), base="red"),
)

PRECISION = timeseries(
    "Precision at capacity (k)",
    "Of the top-k merchants by score (k = the managers' weekly capacity), the share that were "
    "right. Question: of the tasks a manager can work, how many were worth it? For: model owners, "
    "account-manager team leads.",
    _metric_series(ModelMetric.PRECISION_AT_K),
    unit="percentunit",
)

DRIFT = timeseries(
    "Drift: score and feature PSI",
    "Population stability index of the score distribution, and the largest over the input "
    "features, against the reference window; dashed lines at 0.1 (watch) and 0.25 (act). "
    "Question: has the population moved away from what the model learnt? For: model owners.",
    Query(
        sql(
            """
            SELECT @TIME@, concat(metric, ' ', model_version) AS series, value
            FROM model_metrics FINAL
            WHERE model = @MODEL@ AND metric IN ('@SCORE@', '@FEATURE@')
                AND $__dateFilter(day)
            ORDER BY time, series
            """,
            TIME=day_time(),
            MODEL=MODEL,
            SCORE=ModelMetric.SCORE_PSI.value,
            FEATURE=ModelMetric.FEATURE_PSI_MAX.value,
        ),
        columns=("time", "series", "value"),
        format=Format.TIME_SERIES,
    ),
    decimals=3,
    steps=thresholds((0.1, "orange"), (0.25, "red")),
)

LABELS = timeseries(
    "Labelled examples per day",
    "How many delayed labels the day's online metrics rest on. Question: are the metrics above "
    "based on enough evidence? For: model owners.",
    _metric_series(ModelMetric.LABELLED_SAMPLES),
    bars=True,
)

LATEST = table(
    "Latest value of every metric",
    "Each metric's latest value per model version at the end of the range. For: model owners.",
    Query(
        sql(
            """
            SELECT model_version, metric, max(day) AS latest_day,
                argMax(value, day) AS latest_value
            FROM model_metrics FINAL
            WHERE model = @MODEL@ AND day <= @END_DAY@
            GROUP BY model_version, metric
            ORDER BY model_version, metric
            """,
            MODEL=MODEL,
        ),
        columns=("model_version", "metric", "latest_day", "latest_value"),
    ),
    width=12,
)

ALERT_VOLUME = timeseries(
    "Alerts opened per day by model version",
    "New alerts per business day by the model version that decided them (rules have none). "
    "Question: did a new model version change the alert volume? For: model owners, risk desk.",
    Query(
        sql(
            """
            SELECT toStartOfDay(opened_at, @TZ@) AS time,
                if(model_version = '', decided_by, model_version) AS decided_by_version,
                count() AS alerts
            FROM alerts_current
            WHERE $__timeFilter(opened_at)
            GROUP BY time, decided_by_version
            ORDER BY time, decided_by_version
            """
        ),
        columns=("time", "decided_by_version", "alerts"),
        format=Format.TIME_SERIES,
    ),
    bars=True,
    stacked=True,
)


def build() -> Dashboard:
    """The model-health dashboard."""
    return Dashboard(
        uid=UID,
        title="Merchant Monitor · Model health",
        description="Are the early-warning models still right? Online AUC on delayed labels, "
        "precision at the managers' capacity, and drift of scores and features.",
        module=__name__,
        panels=(AUC, PRECISION, DRIFT, LABELS, LATEST, ALERT_VOLUME),
        variables=(MODEL_VARIABLE,),
        time_from="now-90d",
        refresh="1h",
    )
