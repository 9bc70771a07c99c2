"""Grafana alert rules as code: SQL queries on ClickHouse, then math and threshold expressions."""

from __future__ import annotations

from dataclasses import dataclass, field

from dashboards import pipeline, portfolio, risk_desk
from dashboards.common import ALERT_FOLDER_TITLE, DATASOURCE_UID, Dashboard, Json, Query, sql
from dashboards.thresholds import (
    CREDIT_ALERT_WINDOW_MIN,
    DEAD_LETTER_GROWTH_FACTOR,
    DEAD_LETTER_MIN_COUNT,
    DEAD_LETTER_WINDOW_MIN,
    DORMANCY_BASELINE_DAYS,
    DORMANCY_SURGE_FACTOR,
    DORMANCY_SURGE_MIN_ALERTS,
    PIPELINE_LAG_FOR,
    PIPELINE_LAG_MAX_RECORDS,
)
from schemas.dashboard_rows import PipelineMetric

EXPRESSION = {"type": "__expr__", "uid": "__expr__"}
DAY_S = 86_400


@dataclass(frozen=True)
class AlertQuery:
    """A ClickHouse query of a rule: text columns become labels, the one numeric column the value.

    It runs over the ``seconds_back`` seconds before each evaluation ($__fromTime..$__toTime).
    """

    query: Query
    seconds_back: int
    labels: tuple[str, ...]


@dataclass(frozen=True)
class AlertRule:
    """A rule: queries, an optional math expression over them, and a ``> threshold`` condition."""

    uid: str
    title: str
    group: str
    interval: str
    summary: str
    description: str
    queries: tuple[AlertQuery, ...]
    threshold: float
    math: str | None = None
    for_: str = "0s"
    no_data_state: str = "OK"
    labels: dict[str, str] = field(default_factory=dict)
    dashboard: Dashboard | None = None
    panel_title: str | None = None

    def data(self) -> list[Json]:
        """The rule's ``data``: queries A, B..., then the math (if any), then the threshold."""
        items: list[Json] = [
            {
                "datasourceUid": DATASOURCE_UID,
                "model": {**q.query.target(), "intervalMs": 60_000, "maxDataPoints": 43_200},
                "refId": q.query.ref_id,
                "relativeTimeRange": {"from": q.seconds_back, "to": 0},
            }
            for q in self.queries
        ]
        last = self.queries[-1].query.ref_id
        if self.math is not None:
            last = chr(ord(last) + 1)
            items.append(_expression(last, {"expression": self.math, "type": "math"}))
        condition = chr(ord(last) + 1)
        items.append(
            _expression(
                condition,
                {
                    "conditions": [{"evaluator": {"params": [self.threshold], "type": "gt"}}],
                    "expression": last,
                    "type": "threshold",
                },
            )
        )
        return items

    def to_json(self) -> Json:
        """The rule in Grafana's file-provisioning format."""
        rule: Json = {
            "annotations": {"description": self.description, "summary": self.summary},
            "condition": self.data()[-1]["refId"],
            "data": self.data(),
            "execErrState": "Error",
            "for": self.for_,
            "isPaused": False,
            "labels": dict(self.labels),
            "noDataState": self.no_data_state,
            "title": self.title,
            "uid": self.uid,
        }
        if self.dashboard is not None and self.panel_title is not None:
            rule["dashboardUid"] = self.dashboard.uid
            rule["panelId"] = self.dashboard.panel_id(self.panel_title)
        return rule


def _expression(ref_id: str, model: Json) -> Json:
    return {
        "datasourceUid": EXPRESSION["uid"],
        "model": {"datasource": dict(EXPRESSION), "refId": ref_id, **model},
        "refId": ref_id,
        "relativeTimeRange": {"from": 0, "to": 0},
    }


NEW_HIGH_CREDIT = AlertRule(
    uid="mm-credit-high-new",
    title="New high-severity credit alert",
    group="risk",
    interval="1m",
    summary="High-severity credit alert for merchant {{ $labels.merchant_id }} "
    "({{ $labels.region }})",
    description="A credit-deterioration alert turned high severity in the last "
    f"{CREDIT_ALERT_WINDOW_MIN} minutes and is not resolved. Review the merchant drill-down "
    "(reason codes, cash flow, loan position) and decide on a 关注 review.",
    queries=(
        AlertQuery(
            Query(
                sql(
                    """
                    SELECT a.alert_merchant AS merchant_id,
                        coalesce(nullIf(p.region, ''), 'unknown') AS region,
                        count() AS new_high_credit_alerts
                    FROM
                    (
                        SELECT alert_id, any(merchant_id) AS alert_merchant
                        FROM alerts
                        WHERE alert_type = 'credit' AND updated_at <= $__toTime
                        GROUP BY alert_id
                        HAVING minIf(updated_at, severity = 'high') >= $__fromTime
                            AND argMax(status, version) != 'resolved'
                    ) AS a
                    LEFT JOIN (SELECT merchant_id, region FROM merchant_profiles FINAL) AS p
                        ON p.merchant_id = a.alert_merchant
                    GROUP BY merchant_id, region
                    """
                ),
                columns=("merchant_id", "region", "new_high_credit_alerts"),
            ),
            seconds_back=CREDIT_ALERT_WINDOW_MIN * 60,
            labels=("merchant_id", "region"),
        ),
    ),
    threshold=0,
    labels={"team": "risk-desk", "category": "credit", "severity": "high"},
    dashboard=risk_desk.build(),
    panel_title=risk_desk.OPEN_ALERTS.title,
)

#: Every grid with its region (so that grids without alerts read 0 and labels always match).
_GRIDS = (
    "(SELECT grid_id, any(region) AS grid_region FROM merchant_profiles FINAL GROUP BY grid_id)"
)


def _dormancy_per_grid(
    window: str, value: str, column: str, ref_id: str, seconds_back: int
) -> AlertQuery:
    """Per grid, ``value`` (over ``alerts``: dormancy alerts opened in ``window``) as ``column``."""
    return AlertQuery(
        Query(
            sql(
                """
                SELECT g.grid_id AS grid_id, g.grid_region AS region, @VALUE@ AS @COLUMN@
                FROM @GRIDS@ AS g
                LEFT JOIN
                (
                    SELECT grid_id, uniqExact(alert_id) AS alerts
                    FROM alerts_current
                    WHERE alert_type = 'dormancy' AND @WINDOW@
                    GROUP BY grid_id
                ) AS n ON n.grid_id = g.grid_id
                ORDER BY grid_id
                """,
                GRIDS=_GRIDS,
                WINDOW=window,
                VALUE=value,
                COLUMN=column,
            ),
            columns=("grid_id", "region", column),
            ref_id=ref_id,
        ),
        seconds_back=seconds_back,
        labels=("grid_id", "region"),
    )


DORMANCY_SURGE = AlertRule(
    uid="mm-dormancy-surge-grid",
    title="Dormancy surge in a grid",
    group="portfolio",
    interval="5m",
    summary="Dormancy surge in grid {{ $labels.grid_id }} ({{ $labels.region }})",
    description=f"At least {DORMANCY_SURGE_MIN_ALERTS} merchants of the grid went dormant in the "
    f"last 24 hours, over {DORMANCY_SURGE_FACTOR:g} times the grid's daily average of the "
    f"{DORMANCY_BASELINE_DAYS} days before. Look for a shared cause (terminal or network outage, "
    "a competitor's campaign, a local closure) before calling merchants one by one.",
    queries=(
        _dormancy_per_grid(
            "opened_at > $__toTime - INTERVAL 1 DAY AND opened_at <= $__toTime",
            "coalesce(n.alerts, 0)",
            "new_dormancy_alerts_24h",
            "A",
            DAY_S,
        ),
        _dormancy_per_grid(
            "opened_at >= $__fromTime AND opened_at <= $__toTime - INTERVAL 1 DAY",
            f"coalesce(n.alerts, 0) / {DORMANCY_BASELINE_DAYS}",
            "baseline_daily_dormancy_alerts",
            "B",
            (DORMANCY_BASELINE_DAYS + 1) * DAY_S,
        ),
    ),
    math=f"$A >= {DORMANCY_SURGE_MIN_ALERTS} && $A > {DORMANCY_SURGE_FACTOR:g} * $B",
    threshold=0,
    labels={"team": "risk-desk", "category": "dormancy", "severity": "warning"},
    dashboard=portfolio.build(),
    panel_title=portfolio.GRIDS.title,
)

PIPELINE_LAG = AlertRule(
    uid="mm-pipeline-lag",
    title="Pipeline lag over threshold",
    group="pipeline",
    interval="1m",
    summary="Worker {{ $labels.worker }} is {{ $values.A.Value }} records behind",
    description=f"A worker has been more than {PIPELINE_LAG_MAX_RECORDS:,} records behind for "
    f"{PIPELINE_LAG_FOR}: alerts and limits are late. Check the worker's log, the broker and "
    "the warehouse (a full sink buffer slows consumption). No lag samples at all for 5 minutes "
    "is reported as no data: the workers are down or not reporting.",
    queries=(
        AlertQuery(
            Query(
                sql(
                    """
                    SELECT last_worker AS worker, sum(lag) AS consumer_lag
                    FROM
                    (
                        SELECT partition, argMax(worker, ts) AS last_worker,
                            argMax(value, ts) AS lag
                        FROM pipeline_metrics FINAL
                        WHERE metric = '@LAG@' AND partition >= 0 AND $__timeFilter(ts)
                        GROUP BY partition
                    )
                    GROUP BY worker
                    ORDER BY worker
                    """,
                    LAG=PipelineMetric.CONSUMER_LAG.value,
                ),
                columns=("worker", "consumer_lag"),
            ),
            seconds_back=300,
            labels=("worker",),
        ),
    ),
    threshold=PIPELINE_LAG_MAX_RECORDS,
    for_=PIPELINE_LAG_FOR,
    no_data_state="NoData",
    labels={"team": "platform", "category": "pipeline", "severity": "critical"},
    dashboard=pipeline.build(),
    panel_title=pipeline.LAG_BY_WORKER.title,
)

_DEAD_LETTERS = """
    SELECT source_topic, @VALUE@
    FROM dead_letters FINAL
    WHERE $__timeFilter(received_at)
    GROUP BY source_topic
    ORDER BY source_topic
"""
_RECENT = f"received_at > $__toTime - INTERVAL {DEAD_LETTER_WINDOW_MIN} MINUTE"
_WINDOWS_PER_DAY = DAY_S // (DEAD_LETTER_WINDOW_MIN * 60)

DEAD_LETTER_GROWTH = AlertRule(
    uid="mm-dead-letter-growth",
    title="Dead-letter growth",
    group="dead-letters",
    interval="5m",
    summary="Dead letters from {{ $labels.source_topic }} are growing",
    description=f"At least {DEAD_LETTER_MIN_COUNT} records of one source topic went to the "
    f"dead-letter topic in the last {DEAD_LETTER_WINDOW_MIN} minutes, over "
    f"{DEAD_LETTER_GROWTH_FACTOR:g} times the average of the 24 hours before. A producer is "
    "probably sending a new or broken format: see the reasons on the pipeline dashboard.",
    queries=(
        AlertQuery(
            Query(
                sql(_DEAD_LETTERS, VALUE=f"countIf({_RECENT}) AS dead_letters_recent"),
                columns=("source_topic", "dead_letters_recent"),
            ),
            seconds_back=DAY_S + DEAD_LETTER_WINDOW_MIN * 60,
            labels=("source_topic",),
        ),
        AlertQuery(
            Query(
                sql(
                    _DEAD_LETTERS,
                    VALUE=f"countIf(NOT ({_RECENT})) / {_WINDOWS_PER_DAY} AS baseline_per_window",
                ),
                columns=("source_topic", "baseline_per_window"),
                ref_id="B",
            ),
            seconds_back=DAY_S + DEAD_LETTER_WINDOW_MIN * 60,
            labels=("source_topic",),
        ),
    ),
    math=f"$A >= {DEAD_LETTER_MIN_COUNT} && $A > {DEAD_LETTER_GROWTH_FACTOR:g} * $B",
    threshold=0,
    labels={"team": "platform", "category": "pipeline", "severity": "warning"},
    dashboard=pipeline.build(),
    panel_title=pipeline.DEAD_LETTERS_BY_REASON.title,
)

RULES = (NEW_HIGH_CREDIT, DORMANCY_SURGE, PIPELINE_LAG, DEAD_LETTER_GROWTH)


def rules_file(rules: tuple[AlertRule, ...] = RULES) -> Json:
    """The alert rules in Grafana's file-provisioning format (apiVersion 1), grouped in order."""
    by_group: dict[str, list[AlertRule]] = {}
    for rule in rules:
        by_group.setdefault(rule.group, []).append(rule)
    groups = []
    for name, members in by_group.items():
        intervals = {rule.interval for rule in members}
        if len(intervals) != 1:
            raise ValueError(f"rules of group {name} have different intervals: {intervals}")
        groups.append(
            {
                "folder": ALERT_FOLDER_TITLE,
                "interval": intervals.pop(),
                "name": name,
                "orgId": 1,
                "rules": [rule.to_json() for rule in members],
            }
        )
    return {"apiVersion": 1, "groups": groups}
