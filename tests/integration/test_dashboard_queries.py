"""Every panel, variable, annotation and alert-rule query runs on the real engine over a month."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from dashboards import alerts, merchant, portfolio, render, risk_desk
from dashboards.common import Dashboard, Query
from dashboards.macros import ALL, TimeRange, expand
from dashboards.thresholds import (
    DEAD_LETTER_GROWTH_FACTOR,
    DEAD_LETTER_MIN_COUNT,
    DORMANCY_SURGE_FACTOR,
    DORMANCY_SURGE_MIN_ALERTS,
    PIPELINE_LAG_MAX_RECORDS,
)
from schemas.dashboard_rows import (
    LifecycleStage,
    LoanPositionRow,
    MerchantLifecycleRow,
    MerchantProfileRow,
    ModelMetric,
    ModelMetricRow,
    OutreachOutcomeRow,
    PipelineMetric,
)
from schemas.inputs import Industry, OutcomeKind
from schemas.outputs import (
    Alert,
    AlertStatus,
    AlertType,
    ReasonCode,
    Severity,
    TaskStatus,
    TaskType,
)
from schemas.settings import Settings
from schemas.warehouse import (
    AlertRow,
    DeadLetterRow,
    MerchantDailyRow,
    OutreachTaskRow,
    PipelineMetricRow,
    PosLoanLimitRow,
)
from streams.commands.report import command as report_command
from streams.report import write_report
from streams.warehouse import Warehouse

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
#: The end of every panel's time range: 20:00 on the last business day of the month.
END = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)
DAYS = [date(2024, 6, 1) + timedelta(days=n) for n in range(30)]
MONTH = TimeRange(END - timedelta(days=30), END, interval_s=3600)
REGIONS = ("east", "south", "west", "north")
MANAGERS = [f"am-{n:02d}" for n in range(1, 11)]
#: Merchants 10, 30, 50, 70 and 90 (not dormant, not declining, no credit alert) live here.
SURGE_GRID = "west-g3"
LAGGING_WORKER = "worker-1"
BURST_TOPIC = "pos.transactions.v1"
#: Variable values: the first merchant with a credit alert is drilled into.
VARIABLES: dict[str, Any] = {"region": ALL, "manager": ALL, "capacity": "8", "model": "churn"}


def at(day: date, hour: int) -> datetime:
    """``hour`` o'clock of a business day, as a UTC instant."""
    return datetime.combine(day, time(hour), tzinfo=ZONE).astimezone(UTC)


@dataclass
class Month:
    """What the fixture wrote, for assertions beyond the shape of the results."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    turnover_fen: int = 0
    credit_merchants: list[str] = field(default_factory=list)

    def add(self, table: str, row: Any) -> None:
        self.rows.setdefault(table, []).append(row.model_dump())


def _alert(
    month: Month, merchant_id: str, kind: AlertType, opened: datetime, versions: list[Any]
) -> None:
    """An alert with its versions: (severity, status, updated_at) each."""
    reasons = (
        ReasonCode(feature="amount_sum_7d", value=1200.0, baseline=5400.0, contribution=0.6),
        ReasonCode(feature="days_since_last_txn", value=9.0, baseline=2.0, contribution=0.3),
    )
    for number, (severity, status, updated) in enumerate(versions, start=1):
        alert = Alert(
            alert_id=f"al-{kind.value}-{merchant_id}",
            merchant_id=merchant_id,
            alert_type=kind,
            severity=severity,
            status=status,
            version=number,
            score=min(0.5 + 0.1 * number, 1.0),
            decided_by="churn_model" if kind is AlertType.CHURN else "rules",
            model_version="v2" if kind is AlertType.CHURN else "",
            as_of_date=opened.astimezone(ZONE).date(),
            opened_at=opened,
            updated_at=updated,
            reasons=reasons,
            exposure_fen=2_000_000 if kind is AlertType.CREDIT else 0,
        )
        month.add("alerts", AlertRow.from_alert(alert))


def _task(
    month: Month,
    n: int,
    merchant_id: str,
    manager: str,
    kind: TaskType,
    created: datetime,
    status: TaskStatus,
    outcome: OutcomeKind | None,
) -> None:
    task_id = f"t-{n:05d}"
    month.add(
        "outreach_tasks",
        OutreachTaskRow(
            task_id=task_id,
            merchant_id=merchant_id,
            manager_id=manager,
            task_type=kind,
            status=status,
            priority=0.3 + (n % 7) / 10,
            value_at_stake_fen=500_000 + n,
            urgency=0.5,
            likelihood_of_success=0.4,
            reason=f"{kind.value} for {merchant_id}",
            suggested_action="call the owner",
            due_date=(created + timedelta(days=2)).date(),
            created_at=created,
            updated_at=created + timedelta(hours=1),
        ),
    )
    if outcome is not None:
        month.add(
            "outreach_outcomes",
            OutreachOutcomeRow(
                outcome_id=f"o-{n:05d}",
                task_id=task_id,
                merchant_id=merchant_id,
                manager_id=manager,
                event_time=created + timedelta(hours=20),
                outcome=outcome,
            ),
        )


def build_month(seed: int = 7) -> Month:
    """A month of 200 merchants, made with simple explicit rules: fixtures for the shape of the
    dashboard queries (and a few totals), not a model of real behaviour."""
    rng = random.Random(seed)
    month = Month()
    tasks = 0
    for n in range(200):
        mid, region = f"m-{n:04d}", REGIONS[n % 4]
        grid_index = (n // 4) % 5
        grid, manager = f"{region}-g{grid_index + 1}", MANAGERS[(n % 4 * 5 + grid_index) % 10]
        industry = list(Industry)[n % 5]
        dormant_from = 20 if n % 20 == 0 else None
        declining, credit, holder = n % 10 == 5, n % 15 == 7, n % 3 == 0 or n % 15 == 7
        name = "Bad <b>&\"'name</b> 餐馆" if n == 3 else f"Merchant {n:04d}"
        month.add(
            "merchant_profiles",
            MerchantProfileRow(
                merchant_id=mid,
                name=name,
                industry=industry,
                region=region,
                grid_id=grid,
                account_manager_id=manager,
                onboarding_date=date(2023, 1, 1) + timedelta(days=n),
                pos_loan_facility_fen=5_000_000 if holder else 0,
                pos_loan_outstanding_fen=2_000_000 if holder else 0,
                updated_at=at(DAYS[0], 8),
            ),
        )
        if n % 7 == 0:  # an older profile in another grid: FINAL must drop it
            month.add(
                "merchant_profiles",
                MerchantProfileRow(
                    merchant_id=mid,
                    name=name,
                    industry=industry,
                    region="old",
                    grid_id="old-g",
                    account_manager_id=manager,
                    onboarding_date=date(2023, 1, 1),
                    updated_at=at(date(2024, 1, 1), 8),
                ),
            )
        if n % 50 != 49:
            stage = LifecycleStage.GROWTH if n % 10 == 1 else LifecycleStage.MATURITY
            month.add(
                "merchant_lifecycle",
                MerchantLifecycleRow(
                    merchant_id=mid,
                    effective_from=date(2024, 5, 1),
                    stage=stage,
                    decided_by="lifecycle",
                    decided_at=at(date(2024, 5, 1), 1),
                ),
            )
            if declining or dormant_from:
                later = LifecycleStage.DECLINE if declining else LifecycleStage.CHURN
                month.add(
                    "merchant_lifecycle",
                    MerchantLifecycleRow(
                        merchant_id=mid,
                        effective_from=DAYS[15],
                        stage=later,
                        decided_by="lifecycle",
                        decided_at=at(DAYS[15], 1),
                    ),
                )
        base, balance = rng.lognormvariate(13.0, 0.6), 2_000_000
        for d, day in enumerate(DAYS):
            if (dormant_from and d >= dormant_from) or (
                industry is Industry.CATERING and day.weekday() == 6
            ):
                continue
            factor = 1 - 0.6 * max(0.0, (d - 10) / 20) if declining else 1.0
            amount = int(base * factor * rng.uniform(0.7, 1.3))
            inflow = int(amount * 0.98) + rng.randint(0, 100_000)
            outflow = int(inflow * rng.uniform(0.8, 1.6 if credit else 1.1))
            balance += inflow - outflow
            row = dict(
                merchant_id=mid,
                day=day,
                pos_approved_count=max(1, amount // 8_000),
                pos_approved_amount_fen=amount,
                pos_refund_count=1,
                pos_refund_amount_fen=amount // 50,
                acct_credit_count=3,
                acct_credit_amount_fen=inflow,
                acct_debit_count=4,
                acct_debit_amount_fen=outflow,
                acct_settlement_amount_fen=int(amount * 0.98),
                acct_end_balance_fen=balance,
            )
            if d % 2:  # a stale first version: FINAL must keep only version 2
                month.add(
                    "merchant_daily",
                    MerchantDailyRow(**{**row, "pos_approved_amount_fen": amount // 2}, version=1),
                )
            month.add("merchant_daily", MerchantDailyRow(**row, version=2))
            month.turnover_fen += amount
        if holder:
            for version, d in enumerate((0, 10, 20), start=1):
                month.add(
                    "pos_loan_limits",
                    PosLoanLimitRow(
                        merchant_id=mid,
                        version=version,
                        as_of=at(DAYS[d], 20),
                        eligible=not credit,
                        limit_fen=10_000_000 - version * 1_000_000,
                        previous_limit_fen=10_000_000 - (version - 1) * 1_000_000,
                        cap_fen=50_000_000,
                        turnover_based_fen=12_000_000,
                        repayment_based_fen=9_000_000,
                        stability_haircut=0.9,
                        risk_factor=0.8 if credit else 1.0,
                        outstanding_fen=2_000_000,
                        reasons=("turnover_based", "haircut_volatility"),
                    ),
                )
            dpd0 = {0: 0, 3: 80, 6: 260, 9: 350}.get(n % 12, 0) if not credit else -15
            for d, day in enumerate(DAYS):
                month.add(
                    "loan_positions",
                    LoanPositionRow(
                        loan_id=f"L-{mid}",
                        merchant_id=mid,
                        day=day,
                        outstanding_fen=2_000_000,
                        days_past_due=max(0, dpd0 + d) if dpd0 else 0,
                        updated_at=at(day, 22),
                    ),
                )
        if dormant_from:
            opened = at(DAYS[dormant_from + 3], 9)
            _alert(
                month,
                mid,
                AlertType.DORMANCY,
                opened,
                [(Severity.MEDIUM, AlertStatus.OPEN, opened)],
            )
            tasks += 1
            _task(
                month,
                tasks,
                mid,
                manager,
                TaskType.WIN_BACK,
                opened + timedelta(hours=1),
                TaskStatus.DONE,
                OutcomeKind.WON_BACK if n % 40 == 0 else OutcomeKind.DECLINED,
            )
        if declining:
            opened = at(DAYS[20], 9)
            _alert(
                month,
                mid,
                AlertType.CHURN,
                opened,
                [
                    (Severity.MEDIUM, AlertStatus.OPEN, opened),
                    (Severity.MEDIUM, AlertStatus.ACKNOWLEDGED, opened + timedelta(days=1)),
                ],
            )
            tasks += 1
            _task(
                month,
                tasks,
                mid,
                manager,
                TaskType.RETENTION_VISIT,
                opened + timedelta(hours=1),
                TaskStatus.DONE,
                list(OutcomeKind)[n % 6],
            )
        if credit:
            month.credit_merchants.append(mid)
            opened = at(DAYS[24], 10)
            _alert(
                month,
                mid,
                AlertType.CREDIT,
                opened,
                [
                    (Severity.MEDIUM, AlertStatus.OPEN, opened),
                    (Severity.HIGH, AlertStatus.OPEN, END - timedelta(minutes=5)),
                ],
            )
            tasks += 1
            _task(
                month,
                tasks,
                mid,
                manager,
                TaskType.CREDIT_REVIEW,
                END - timedelta(hours=3),
                TaskStatus.OPEN,
                None,
            )
        if grid == SURGE_GRID and not dormant_from and n < 100:
            opened = END - timedelta(hours=2 + n % 10)
            _alert(
                month, mid, AlertType.DORMANCY, opened, [(Severity.LOW, AlertStatus.OPEN, opened)]
            )
            tasks += 1
            _task(
                month,
                tasks,
                mid,
                manager,
                TaskType.REACTIVATION_CALL,
                opened + timedelta(hours=1),
                TaskStatus.QUEUED,
                None,
            )
    _pipeline(month, rng)
    _models(month)
    return month


def _pipeline(month: Month, rng: random.Random) -> None:
    """Six hours of worker samples (a lag spike at the end) and a day of dead letters."""
    for minute in range(360):
        ts = END - timedelta(minutes=359 - minute)
        for worker, partitions in ((LAGGING_WORKER, (0, 1)), ("worker-2", (2, 3))):
            for partition in partitions:
                spike = worker == LAGGING_WORKER and partition == 0 and minute >= 350
                lag = 60_000 if spike else rng.randint(100, 2_000)
                month.add(
                    "pipeline_metrics",
                    PipelineMetricRow(
                        ts=ts,
                        worker=worker,
                        metric=PipelineMetric.CONSUMER_LAG,
                        partition=partition,
                        value=lag,
                    ),
                )
            month.add(
                "pipeline_metrics",
                PipelineMetricRow(
                    ts=ts,
                    worker=worker,
                    metric=PipelineMetric.EVENTS_PER_S,
                    value=rng.uniform(2_500, 3_500),
                ),
            )
            month.add(
                "pipeline_metrics",
                PipelineMetricRow(
                    ts=ts,
                    worker=worker,
                    metric=PipelineMetric.SINK_BUFFER_ROWS,
                    value=rng.randint(0, 5_000),
                ),
            )
    offset = 0
    for half_hour in range(48):
        for topic, reason in (
            (BURST_TOPIC, "validation"),
            ("account.transactions.v1", "invalid_json"),
        ):
            offset += 1
            month.add(
                "dead_letters",
                DeadLetterRow(
                    source_topic=topic,
                    partition=offset % 4,
                    offset=offset,
                    key=f"m-{offset:04d}",
                    reason=reason,
                    error="amount_fen: Input should be greater than 0",
                    payload="{}",
                    received_at=END - timedelta(minutes=30 * half_hour + 20),
                ),
            )
    for burst in range(40):
        offset += 1
        month.add(
            "dead_letters",
            DeadLetterRow(
                source_topic=BURST_TOPIC,
                partition=1,
                offset=offset,
                key="m-0001",
                reason="key_mismatch",
                error="key m-0001 differs from payload merchant_id m-0002",
                payload="{}",
                received_at=END - timedelta(minutes=9, seconds=burst),
            ),
        )


def _models(month: Month) -> None:
    """Daily model-health metrics of two churn-model versions, and one recomputation."""
    for d, day in enumerate(DAYS):
        for version in ("v1", "v2"):
            if (version == "v1" and d > 20) or (version == "v2" and d < 15):
                continue
            values = {
                ModelMetric.AUC_ONLINE: 0.72 + 0.002 * d,
                ModelMetric.PRECISION_AT_K: 0.4,
                ModelMetric.SCORE_PSI: 0.01 * d,
                ModelMetric.FEATURE_PSI_MAX: 0.012 * d,
                ModelMetric.LABELLED_SAMPLES: 30 + d,
            }
            for metric, value in values.items():
                month.add(
                    "model_metrics",
                    ModelMetricRow(
                        model="churn",
                        model_version=version,
                        day=day,
                        metric=metric,
                        value=value,
                        computed_at=at(day, 23),
                    ),
                )
    month.add(
        "model_metrics",
        ModelMetricRow(
            model="churn",
            model_version="v2",
            day=DAYS[-1],
            metric=ModelMetric.AUC_ONLINE,
            value=0.99,
            computed_at=at(DAYS[-1], 23) + timedelta(hours=1),
        ),
    )


def fill(warehouse: Warehouse, month: Month) -> None:
    """Insert every table of the month; merchant-days written at 23:00 of their day."""
    for table, rows in month.rows.items():
        if table == "merchant_daily":
            written = {day: min(at(day, 23), END - timedelta(minutes=1)) for day in DAYS}
            rows = [{**row, "inserted_at": written[row["day"]]} for row in rows]
        warehouse.insert(table, rows)


@pytest.fixture(scope="module")
def month() -> Month:
    return build_month()


@pytest.fixture
def filled(warehouse: Warehouse, month: Month) -> Warehouse:
    fill(warehouse, month)
    return warehouse


def run(
    warehouse: Warehouse, query: Query, window: TimeRange = MONTH, **variables: Any
) -> list[dict[str, Any]]:
    """The query as Grafana would send it, on the warehouse."""
    sql, params = expand(query.raw_sql, window, {**VARIABLES, **variables})
    return warehouse.query(sql, params or None)


def _queries(dashboard: Dashboard) -> list[tuple[str, Query]]:
    found = [(panel.title, q) for panel in dashboard.panels for q in panel.queries]
    found += [(f"variable {v.name}", v.query) for v in dashboard.variables if v.query]
    found += [(f"annotation {a.name}", a.query) for a in dashboard.annotations]
    return found


@pytest.mark.parametrize("dashboard", render.dashboards(), ids=lambda d: d.uid)
def test_every_query_returns_its_columns_and_rows(
    filled: Warehouse, month: Month, dashboard: Dashboard
) -> None:
    problems = []
    for title, query in _queries(dashboard):
        rows = run(filled, query, merchant=month.credit_merchants[0])
        if not rows:
            problems.append(f"{title}: no rows")
        elif tuple(rows[0]) != query.columns:
            problems.append(f"{title}: columns {tuple(rows[0])}, expected {query.columns}")
        elif len(query.columns) == 1 and rows[0][query.columns[0]] is None:
            problems.append(f"{title}: null value")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("dashboard", render.dashboards(), ids=lambda d: d.uid)
def test_every_query_runs_on_an_empty_warehouse(warehouse: Warehouse, dashboard: Dashboard) -> None:
    for _title, query in _queries(dashboard):
        run(warehouse, query, merchant="m-0000")


def test_turnover_reads_only_the_latest_version_of_each_merchant_day(
    filled: Warehouse, month: Month
) -> None:
    [row] = run(filled, portfolio.TURNOVER.queries[0])
    assert row["turnover_cny"] == pytest.approx(month.turnover_fen / 100)
    regions = {r["region"] for r in run(filled, portfolio.TURNOVER_BY_REGION.queries[0])}
    assert regions == set(REGIONS)  # the older profiles' "old" region is replaced


def test_region_variable_filters(filled: Warehouse) -> None:
    everything = run(filled, portfolio.TURNOVER.queries[0])[0]["turnover_cny"]
    east = run(filled, portfolio.TURNOVER.queries[0], region=["east"])[0]["turnover_cny"]
    assert 0 < east < everything


def test_five_category_view_lists_every_class_in_order(filled: Warehouse) -> None:
    rows = run(filled, risk_desk.FIVE_CATEGORY.queries[0])
    assert [r["category"] for r in rows] == list(risk_desk.CATEGORIES)
    assert all(r["loans"] > 0 for r in rows), rows
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


def test_drill_down_explains_the_alert(filled: Warehouse, month: Month) -> None:
    rows = run(filled, merchant.REASONS.queries[0], merchant=month.credit_merchants[0])
    assert {r["feature"] for r in rows} == {"amount_sum_7d", "days_since_last_txn"}
    assert {r["severity"] for r in rows} == {"high"}  # the latest version only


def _rule_rows(warehouse: Warehouse, rule: alerts.AlertRule) -> dict[str, list[dict[str, Any]]]:
    results = {}
    for item in rule.queries:
        window = TimeRange(END - timedelta(seconds=item.seconds_back), END)
        rows = run(warehouse, item.query, window)
        assert rows, f"{rule.uid} {item.query.ref_id}: no rows"
        assert tuple(rows[0]) == item.query.columns
        numeric = [c for c in item.query.columns if c not in item.labels]
        assert len(numeric) == 1, "alerting needs exactly one numeric column"
        assert all(isinstance(r[numeric[0]], int | float) for r in rows)
        assert all(isinstance(r[label], str) for r in rows for label in item.labels)
        results[item.query.ref_id] = rows
    return results


def _by_label(rows: list[dict[str, Any]], label: str, value: str) -> float:
    [row] = [r for r in rows if r[label] == value]
    return float(row[next(c for c in row if c not in ("grid_id", "region", "source_topic"))])


def test_credit_rule_fires_for_alerts_that_just_turned_high(
    filled: Warehouse, month: Month
) -> None:
    rows = _rule_rows(filled, alerts.NEW_HIGH_CREDIT)["A"]
    assert sorted(r["merchant_id"] for r in rows) == sorted(month.credit_merchants)


def test_pipeline_lag_rule_sees_the_lagging_worker(filled: Warehouse) -> None:
    rows = _rule_rows(filled, alerts.PIPELINE_LAG)["A"]
    lag = {r["worker"]: r["consumer_lag"] for r in rows}
    assert lag[LAGGING_WORKER] > PIPELINE_LAG_MAX_RECORDS > lag["worker-2"]


def test_dormancy_surge_rule_condition_holds_only_for_the_surging_grid(filled: Warehouse) -> None:
    results = _rule_rows(filled, alerts.DORMANCY_SURGE)
    firing = []
    for row in results["A"]:
        recent = _by_label(results["A"], "grid_id", row["grid_id"])
        baseline = _by_label(results["B"], "grid_id", row["grid_id"])
        if recent >= DORMANCY_SURGE_MIN_ALERTS and recent > DORMANCY_SURGE_FACTOR * baseline:
            firing.append(row["grid_id"])
    assert firing == [SURGE_GRID]


def test_dead_letter_rule_condition_holds_only_for_the_burst(filled: Warehouse) -> None:
    results = _rule_rows(filled, alerts.DEAD_LETTER_GROWTH)
    firing = [
        r["source_topic"]
        for r in results["A"]
        if r["dead_letters_recent"] >= DEAD_LETTER_MIN_COUNT
        and r["dead_letters_recent"]
        > DEAD_LETTER_GROWTH_FACTOR * _by_label(results["B"], "source_topic", r["source_topic"])
    ]
    assert firing == [BURST_TOPIC]


def test_rendered_rule_queries_are_the_tested_ones() -> None:
    rendered = render.load_yaml(render.render_files()[render.RULES_FILE])
    sql = {
        (rule["uid"], item["refId"]): item["model"]["rawSql"]
        for group in rendered["groups"]
        for rule in group["rules"]
        for item in rule["data"]
        if item["datasourceUid"] != "__expr__"
    }
    tested = {(r.uid, q.query.ref_id): q.query.raw_sql for r in alerts.RULES for q in r.queries}
    assert sql == tested
    assert json.dumps(rendered)  # plain JSON-compatible structure


# --- the HTML report ------------------------------------------------------------------------------


def test_report_of_an_empty_warehouse_says_no_data(warehouse: Warehouse, tmp_path: Path) -> None:
    path = write_report(warehouse, tmp_path / "report.html")
    assert "No data" in path.read_text(encoding="utf-8")


def test_report_shows_the_most_flagged_merchants(
    filled: Warehouse, month: Month, tmp_path: Path
) -> None:
    html = write_report(filled, tmp_path / "out" / "report.html", top_n=3).read_text(
        encoding="utf-8"
    )
    assert html.count("<section>") == 3
    assert html.count("<svg") == 4  # the portfolio and one per merchant
    assert "<script" not in html
    assert " src=" not in html
    # One open alert each, the credit merchants rank first by exposure, then by id.
    first = html.index("<section>")
    assert html[first:].startswith(f"<section><h2>{month.credit_merchants[0]} · ")


def test_report_command_on_an_unmigrated_warehouse(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    result = CliRunner().invoke(report_command, ["--out", str(tmp_path / "r.html")], obj=settings)
    assert result.exit_code == 0, result.output
    assert "No data" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_queries_and_report_through_clickhouse_connect(
    connect_warehouse: Warehouse, month: Month, tmp_path: Path
) -> None:
    """The server backend binds parameters itself (dates, arrays, integers): same results."""
    fill(connect_warehouse, month)
    for dashboard in render.dashboards():
        for title, query in _queries(dashboard):
            rows = run(connect_warehouse, query, merchant=month.credit_merchants[0])
            assert rows, f"{dashboard.uid} {title}"
            assert tuple(rows[0]) == query.columns, f"{dashboard.uid} {title}"
    assert _rule_rows(connect_warehouse, alerts.NEW_HIGH_CREDIT)["A"]
    html = write_report(connect_warehouse, tmp_path / "r.html", top_n=2).read_text("utf-8")
    assert html.count("<section>") == 2
