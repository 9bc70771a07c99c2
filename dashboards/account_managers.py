"""Account-manager board: the task queue, capacity used, outcomes and the win-back rate."""

from __future__ import annotations

from dashboards.common import (
    MERCHANT_LINKS,
    Dashboard,
    Format,
    Query,
    Variable,
    barchart,
    bargauge,
    sql,
    stat,
    table,
    thresholds,
    timeseries,
    var_filter,
)

UID = "mm-account-managers"
CNY = "prefix:¥"
OPEN_STATUSES = "('queued', 'open')"
OUTCOMES = ("reached", "no_answer", "won_back", "offer_accepted", "declined", "not_reachable")

MANAGER_VARIABLE = Variable(
    name="manager",
    label="Account manager",
    query=Query(
        "SELECT DISTINCT account_manager_id FROM merchant_profiles FINAL "
        "ORDER BY account_manager_id",
        columns=("account_manager_id",),
    ),
    multi=True,
    include_all=True,
    description="Managers to include; All for the whole team.",
)

CAPACITY_VARIABLE = Variable(
    name="capacity",
    label="Daily capacity (tasks per manager)",
    values=("8", "5", "10", "12", "15", "20"),
    description="Tasks a manager can work per day (the outreach policy's default is the first).",
)


def _manager(column: str) -> str:
    return var_filter("manager", column)


OPEN_TASKS = stat(
    "Open tasks",
    "Tasks queued or open. Question: how much work is waiting? For: account managers.",
    Query(
        sql(
            "SELECT count() AS open_tasks FROM outreach_tasks FINAL "
            "WHERE status IN @OPEN@ AND @MANAGER@",
            OPEN=OPEN_STATUSES,
            MANAGER=_manager("manager_id"),
        ),
        columns=("open_tasks",),
    ),
)

OVERDUE = stat(
    "Overdue open tasks",
    "Open tasks past their due date at the end of the range (contact standards: high-value churn "
    "risk within 2 working days, dormant within 5). For: account-manager team leads.",
    Query(
        sql(
            "SELECT count() AS overdue_tasks FROM outreach_tasks FINAL "
            "WHERE status IN @OPEN@ AND due_date < @END_DAY@ AND @MANAGER@",
            OPEN=OPEN_STATUSES,
            MANAGER=_manager("manager_id"),
        ),
        columns=("overdue_tasks",),
    ),
    steps=thresholds((1, "orange"), (20, "red")),
)

WIN_BACK = stat(
    "Win-back rate",
    "Of the win-back tasks with an outcome in the range, the share won back. Question: do "
    "win-back calls work? For: account-manager team leads.",
    Query(
        sql(
            """
            SELECT if(attempted = 0, NULL, won / attempted) AS win_back_rate
            FROM
            (
                SELECT uniqExactIf(o.task_id, o.outcome = 'won_back') AS won,
                    uniqExact(o.task_id) AS attempted
                FROM outreach_outcomes AS o FINAL
                INNER JOIN
                (
                    SELECT task_id FROM outreach_tasks FINAL WHERE task_type = 'win_back'
                ) AS t ON t.task_id = o.task_id
                WHERE $__timeFilter(o.event_time) AND @MANAGER@
            )
            """,
            MANAGER=_manager("o.manager_id"),
        ),
        columns=("win_back_rate",),
    ),
    unit="percentunit",
    decimals=1,
)

FATIGUE = stat(
    "Alerts per manager per week",
    "New alerts in the range per manager and week. Question: are managers drowning in alerts "
    "(alert fatigue)? For: account-manager team leads, model owners.",
    Query(
        sql(
            """
            SELECT count() / greatest(uniqExact(account_manager_id), 1)
                / greatest(dateDiff('day', $__fromTime, $__toTime) / 7, 1)
                AS alerts_per_manager_week
            FROM alerts_current
            WHERE $__timeFilter(opened_at) AND @MANAGER@
            """,
            MANAGER=_manager("account_manager_id"),
        ),
        columns=("alerts_per_manager_week",),
    ),
    decimals=1,
    steps=thresholds((20, "orange"), (40, "red")),
)

QUEUE = table(
    "Task queue",
    "Open tasks, highest priority first, with the reason and the suggested action. Question: "
    "what should I do next? Click a merchant for the drill-down. For: account managers.",
    Query(
        sql(
            """
            SELECT t.manager_id AS manager_id, t.merchant_id AS merchant_id,
                coalesce(nullIf(p.name, ''), t.merchant_id) AS merchant_name,
                t.task_type AS task_type, round(t.priority, 3) AS priority,
                t.due_date AS due_date, t.due_date < @END_DAY@ AS overdue,
                t.value_at_stake_fen / 100 AS value_at_stake_cny, t.reason AS reason,
                t.suggested_action AS suggested_action, t.task_id AS task_id
            FROM outreach_tasks AS t FINAL
            LEFT JOIN (SELECT merchant_id, name FROM merchant_profiles FINAL) AS p
                ON p.merchant_id = t.merchant_id
            WHERE t.status IN @OPEN@ AND @MANAGER@
            ORDER BY priority DESC, due_date, task_id
            LIMIT 500
            """,
            OPEN=OPEN_STATUSES,
            MANAGER=_manager("t.manager_id"),
        ),
        columns=(
            "manager_id",
            "merchant_id",
            "merchant_name",
            "task_type",
            "priority",
            "due_date",
            "overdue",
            "value_at_stake_cny",
            "reason",
            "suggested_action",
            "task_id",
        ),
    ),
    units={"value_at_stake_cny": CNY},
    links=MERCHANT_LINKS,
    height=10,
)

CAPACITY = bargauge(
    "Capacity used on the last day",
    "Tasks created for each manager on the last business day of the range, against the daily "
    "capacity chosen above. Question: is anyone given more than they can handle? For: "
    "account-manager team leads.",
    Query(
        sql(
            """
            SELECT manager_id, count() / toFloat64(${capacity:singlequote}) AS capacity_used
            FROM outreach_tasks FINAL
            WHERE toDate(created_at, @TZ@) = @END_DAY@ AND @MANAGER@
            GROUP BY manager_id
            ORDER BY capacity_used DESC, manager_id
            LIMIT 50
            """,
            MANAGER=_manager("manager_id"),
        ),
        columns=("manager_id", "capacity_used"),
    ),
    unit="percentunit",
    maximum=1.5,
    steps=thresholds((0.8, "orange"), (1.0, "red")),
)

_OUTCOME_COLUMNS = ",\n".join(f"countIf(o.outcome = '{kind}') AS {kind}" for kind in OUTCOMES)

OUTCOME_BARS = barchart(
    "Outcomes by task type",
    "Outcomes reported in the range per task type, stacked. Question: which kinds of outreach "
    "reach merchants and succeed? For: account-manager team leads.",
    Query(
        sql(
            """
            SELECT t.task_type AS task_type, @OUTCOME_COLUMNS@
            FROM outreach_outcomes AS o FINAL
            INNER JOIN (SELECT task_id, task_type FROM outreach_tasks FINAL) AS t
                ON t.task_id = o.task_id
            WHERE $__timeFilter(o.event_time) AND @MANAGER@
            GROUP BY task_type
            ORDER BY task_type
            """,
            OUTCOME_COLUMNS=_OUTCOME_COLUMNS,
            MANAGER=_manager("o.manager_id"),
        ),
        columns=("task_type", *OUTCOMES),
    ),
    x_field="task_type",
    horizontal=True,
    stacked=True,
)

WIN_BACK_WEEKLY = timeseries(
    "Win-back rate per week",
    "Share of win-back tasks with an outcome that week that were won back. For: account-manager "
    "team leads.",
    Query(
        sql(
            """
            SELECT toDateTime(toMonday(toDate(o.event_time, @TZ@)), @TZ@) AS time,
                uniqExactIf(o.task_id, o.outcome = 'won_back') / uniqExact(o.task_id)
                    AS win_back_rate
            FROM outreach_outcomes AS o FINAL
            INNER JOIN
            (
                SELECT task_id FROM outreach_tasks FINAL WHERE task_type = 'win_back'
            ) AS t ON t.task_id = o.task_id
            WHERE $__timeFilter(o.event_time) AND @MANAGER@
            GROUP BY time
            ORDER BY time
            """,
            MANAGER=_manager("o.manager_id"),
        ),
        columns=("time", "win_back_rate"),
        format=Format.TIME_SERIES,
    ),
    unit="percentunit",
    bars=True,
)

MANAGERS = table(
    "Managers: queue and results",
    "Per manager: open and overdue tasks, tasks created in the range, outcomes reported and the "
    "share that succeeded (won back or offer accepted). Question: who is overloaded, whose "
    "outreach works? For: account-manager team leads.",
    Query(
        sql(
            """
            SELECT t.manager_id AS manager_id,
                countIf(t.status IN @OPEN@) AS open_tasks,
                countIf(t.status IN @OPEN@ AND t.due_date < @END_DAY@) AS overdue_tasks,
                countIf($__timeFilter(t.created_at)) AS created_in_range,
                sum(o.outcomes) AS outcomes,
                if(sum(o.outcomes) = 0, NULL, sum(o.successes) / sum(o.outcomes))
                    AS success_rate
            FROM outreach_tasks AS t FINAL
            LEFT JOIN
            (
                SELECT task_id, count() AS outcomes,
                    countIf(outcome IN ('won_back', 'offer_accepted')) AS successes
                FROM outreach_outcomes FINAL
                WHERE $__timeFilter(event_time)
                GROUP BY task_id
            ) AS o ON o.task_id = t.task_id
            WHERE @MANAGER@
            GROUP BY manager_id
            ORDER BY open_tasks DESC, manager_id
            """,
            OPEN=OPEN_STATUSES,
            MANAGER=_manager("t.manager_id"),
        ),
        columns=(
            "manager_id",
            "open_tasks",
            "overdue_tasks",
            "created_in_range",
            "outcomes",
            "success_rate",
        ),
    ),
    units={"success_rate": "percentunit"},
    width=12,
)


def build() -> Dashboard:
    """The account-manager board."""
    return Dashboard(
        uid=UID,
        title="Merchant Monitor · Account-manager board",
        description="Outreach tasks with a reason, a priority and a due date; capacity used; what "
        "came of the calls; the win-back rate.",
        module=__name__,
        panels=(
            OPEN_TASKS,
            OVERDUE,
            WIN_BACK,
            FATIGUE,
            QUEUE,
            CAPACITY,
            OUTCOME_BARS,
            WIN_BACK_WEEKLY,
            MANAGERS,
        ),
        variables=(MANAGER_VARIABLE, CAPACITY_VARIABLE),
        time_from="now-7d",
    )
