-- What the Grafana dashboards and alert rules read (dashboards/, docs/dashboards.md): merchant
-- reference data, lifecycle stages, loan positions, outreach outcomes, model metrics, and views
-- that roll merchant-days up by region, grid, industry and stage.
--
-- Same rules as 0001: never edit once applied; no database names; one statement per `;` at the
-- end of a line; every statement idempotent (IF NOT EXISTS).
--
-- Why the roll-ups are plain views and not materialised views: merchant_daily is a
-- ReplacingMergeTree that receives a new version of a merchant-day at every flush. A materialised
-- view fires on each inserted block, so a SummingMergeTree or AggregatingMergeTree behind it would
-- add every version of a merchant-day (double counting), and it would keep attributing a day to
-- the grid a merchant had when the row was written, not to its current one. The views below read
-- `FINAL` (latest version per key) at query time and are exact; at the portfolio's size (about
-- 10^5 merchants x 400 days) ClickHouse aggregates them within a dashboard refresh.

-- The latest profile of each merchant (merchant.profiles.v1, a compacted topic): the row with the
-- greatest updated_at wins. Not partitioned, so an update always merges with the row it replaces.
CREATE TABLE IF NOT EXISTS merchant_profiles
(
    merchant_id String,
    name String,
    industry LowCardinality(String),
    region LowCardinality(String),
    grid_id LowCardinality(String),
    account_manager_id LowCardinality(String),
    onboarding_date Date,
    pos_loan_facility_fen Int64,
    pos_loan_outstanding_fen Int64,
    flags Array(LowCardinality(String)),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY merchant_id;

-- Lifecycle stage changes: a row when a merchant's stage changes, effective from a business day.
-- The stage on a day is the latest change on or before it (ASOF JOIN below); a second decision
-- for the same merchant and day replaces the first (greatest decided_at wins).
CREATE TABLE IF NOT EXISTS merchant_lifecycle
(
    merchant_id String,
    effective_from Date,
    stage LowCardinality(String),
    decided_by LowCardinality(String),
    decided_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(decided_at)
ORDER BY (merchant_id, effective_from);

-- Each POS-loan's position at the end of a business day (from loan.events.v1): the basis of the
-- five-category view. A re-sent day replaces (greatest updated_at wins); `day` is in the key and
-- the partition, so every version of a loan-day meets in one partition.
CREATE TABLE IF NOT EXISTS loan_positions
(
    loan_id String,
    merchant_id String,
    day Date,
    outstanding_fen Int64,
    days_past_due UInt16,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(day)
ORDER BY (merchant_id, loan_id, day);

-- Outcomes of outreach tasks (outreach.outcomes.v1); a re-sent outcome replaces itself.
CREATE TABLE IF NOT EXISTS outreach_outcomes
(
    outcome_id String,
    task_id String,
    merchant_id String,
    manager_id LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    outcome LowCardinality(String),
    note String
)
ENGINE = ReplacingMergeTree
ORDER BY outcome_id;

-- Model health: one value per model, metric, model version and day; a recomputation replaces
-- (greatest computed_at wins). Metric first after the model: panels read one metric at a time.
CREATE TABLE IF NOT EXISTS model_metrics
(
    model LowCardinality(String),
    model_version LowCardinality(String),
    day Date,
    metric LowCardinality(String),
    value Float64,
    computed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (model, metric, model_version, day);

-- Each merchant-day (latest version) with the merchant's current reference data and its
-- lifecycle stage on that day. Missing reference data reads 'unknown', a missing stage
-- 'unclassified' (coalesce/nullIf: correct with or without join_use_nulls).
CREATE VIEW IF NOT EXISTS merchant_day_enriched AS
SELECT
    d.merchant_id AS merchant_id,
    d.day AS day,
    coalesce(nullIf(p.region, ''), 'unknown') AS region,
    coalesce(nullIf(p.grid_id, ''), 'unknown') AS grid_id,
    coalesce(nullIf(p.industry, ''), 'unknown') AS industry,
    coalesce(nullIf(p.account_manager_id, ''), 'unknown') AS account_manager_id,
    coalesce(nullIf(l.stage, ''), 'unclassified') AS stage,
    d.pos_approved_count AS pos_approved_count,
    d.pos_approved_amount_fen AS pos_approved_amount_fen,
    d.pos_declined_count AS pos_declined_count,
    d.pos_refund_count AS pos_refund_count,
    d.pos_refund_amount_fen AS pos_refund_amount_fen,
    d.pos_chargeback_count AS pos_chargeback_count,
    d.pos_chargeback_amount_fen AS pos_chargeback_amount_fen,
    d.acct_credit_amount_fen AS acct_credit_amount_fen,
    d.acct_debit_amount_fen AS acct_debit_amount_fen,
    d.acct_settlement_amount_fen AS acct_settlement_amount_fen,
    d.acct_end_balance_fen AS acct_end_balance_fen
FROM merchant_daily AS d FINAL
LEFT JOIN
(
    SELECT merchant_id, region, grid_id, industry, account_manager_id
    FROM merchant_profiles FINAL
) AS p ON p.merchant_id = d.merchant_id
ASOF LEFT JOIN
(
    SELECT merchant_id, effective_from, stage
    FROM merchant_lifecycle FINAL
) AS l ON l.merchant_id = d.merchant_id AND d.day >= l.effective_from;

-- The portfolio per business day at the finest grain the dashboards group by; panels sum it
-- further. `merchants_reporting` counts merchants with any event that day; sums get their own
-- names (an alias equal to a column name would shadow the column inside countIf).
CREATE VIEW IF NOT EXISTS portfolio_daily AS
SELECT
    day,
    region,
    grid_id,
    industry,
    stage,
    count() AS merchants_reporting,
    countIf(pos_approved_count > 0) AS active_merchants,
    sum(pos_approved_count) AS txn_count,
    sum(pos_approved_amount_fen) AS turnover_fen,
    sum(pos_refund_amount_fen) AS refund_fen,
    sum(pos_chargeback_amount_fen) AS chargeback_fen,
    sum(acct_credit_amount_fen) AS inflow_fen,
    sum(acct_debit_amount_fen) AS outflow_fen,
    sum(acct_settlement_amount_fen) AS settlement_fen,
    countIf(acct_end_balance_fen < 0) AS overdrawn_merchants
FROM merchant_day_enriched
GROUP BY day, region, grid_id, industry, stage;

-- The latest version of every alert, with the merchant's reference data.
CREATE VIEW IF NOT EXISTS alerts_current AS
SELECT
    a.alert_id AS alert_id,
    a.merchant_id AS merchant_id,
    a.alert_type AS alert_type,
    a.severity AS severity,
    a.status AS status,
    a.version AS version,
    a.score AS score,
    a.decided_by AS decided_by,
    a.model_version AS model_version,
    a.as_of_date AS as_of_date,
    a.opened_at AS opened_at,
    a.updated_at AS updated_at,
    a.reasons_json AS reasons_json,
    a.exposure_fen AS exposure_fen,
    coalesce(nullIf(p.name, ''), a.merchant_id) AS merchant_name,
    coalesce(nullIf(p.region, ''), 'unknown') AS region,
    coalesce(nullIf(p.grid_id, ''), 'unknown') AS grid_id,
    coalesce(nullIf(p.industry, ''), 'unknown') AS industry,
    coalesce(nullIf(p.account_manager_id, ''), 'unknown') AS account_manager_id
FROM
(
    SELECT *
    FROM alerts FINAL
    ORDER BY alert_id, version DESC
    LIMIT 1 BY alert_id
) AS a
LEFT JOIN
(
    SELECT merchant_id, name, region, grid_id, industry, account_manager_id
    FROM merchant_profiles FINAL
) AS p ON p.merchant_id = a.merchant_id;

-- The current POS-loan limit of each merchant (its latest version).
CREATE VIEW IF NOT EXISTS pos_loan_limits_current AS
SELECT *
FROM pos_loan_limits FINAL
ORDER BY merchant_id, version DESC
LIMIT 1 BY merchant_id;

-- Every loan-day with its five-category class by days past due (2023 rules): over 360 loss,
-- over 270 doubtful, over 90 substandard, beyond the 7-day technical grace special mention.
-- Other special-mention triggers (non-performing at another bank, borrowing to repay) are not
-- in the loan book; they surface as credit alerts.
CREATE VIEW IF NOT EXISTS loan_positions_classified AS
SELECT
    loan_id,
    merchant_id,
    day,
    outstanding_fen,
    days_past_due,
    multiIf(
        days_past_due > 360, 'loss',
        days_past_due > 270, 'doubtful',
        days_past_due > 90, 'substandard',
        days_past_due > 7, 'special_mention',
        'normal'
    ) AS category
FROM loan_positions FINAL;
