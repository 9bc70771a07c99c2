-- Core tables of Merchant Monitor. Applied by `merchant-monitor db migrate` (streams/migrations.py).
--
-- Rules for migration files:
--   * never edit a file once applied anywhere: add NNNN_next.sql instead (checksums are checked);
--   * no database names: statements run in the connection's database (MONITOR_WAREHOUSE_DATABASE);
--   * a statement ends with `;` at the end of a line; full-line `--` comments are ignored;
--   * ClickHouse DDL is not transactional: a file that fails half-way is re-run from its first
--     statement, so every statement is idempotent (IF NOT EXISTS).
--
-- Money is Int64 fen (exact; sums never touch floating point). Instants are DateTime64(3, 'UTC').
-- Keys are plain String: merchant ids have high cardinality, LowCardinality would not pay.

-- One row per merchant-day and version; FINAL (or argMax by version) reads the latest.
-- Partitioned by month of `day`, which is part of the key: every version of a merchant-day
-- lands in the same partition, so the replacing merge always sees them together.
CREATE TABLE IF NOT EXISTS merchant_daily
(
    merchant_id String,
    day Date,
    pos_approved_count UInt32,
    pos_approved_amount_fen Int64,
    pos_declined_count UInt32,
    pos_refund_count UInt32,
    pos_refund_amount_fen Int64,
    pos_chargeback_count UInt32,
    pos_chargeback_amount_fen Int64,
    pos_reversal_count UInt32,
    acct_credit_count UInt32,
    acct_credit_amount_fen Int64,
    acct_debit_count UInt32,
    acct_debit_amount_fen Int64,
    acct_settlement_amount_fen Int64,
    acct_end_balance_fen Int64,
    version UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (merchant_id, day);

-- A record is identified by where it came from, so a replay of the same offsets replaces
-- instead of double counting. Not partitioned by time: a replay may dead-letter the same
-- record months later, and replacing merges only work within one partition.
CREATE TABLE IF NOT EXISTS dead_letters
(
    source_topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    key String,
    reason LowCardinality(String),
    error String,
    payload String,
    received_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (source_topic, partition, offset);

-- Consumer lag, throughput, dead-letter counts: one sample per (metric, worker, partition, ts);
-- a re-sent sample replaces. Metric first in the key: dashboards filter by metric, then time.
-- partition = -1 for a metric of the whole worker.
CREATE TABLE IF NOT EXISTS pipeline_metrics
(
    ts DateTime64(3, 'UTC'),
    worker LowCardinality(String),
    metric LowCardinality(String),
    partition Int32,
    value Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (metric, worker, partition, ts);

-- Every version of every alert; a re-sent version replaces itself. Latest state of an alert:
-- argMax(..., version) or `ORDER BY version DESC LIMIT 1 BY alert_id`.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id String,
    merchant_id String,
    alert_type LowCardinality(String),
    severity LowCardinality(String),
    status LowCardinality(String),
    version UInt64,
    score Float64,
    decided_by LowCardinality(String),
    model_version LowCardinality(String),
    as_of_date Date,
    opened_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    reasons_json String,
    exposure_fen Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (merchant_id, alert_id, version);

-- The latest state of each task: the row with the greatest updated_at wins.
CREATE TABLE IF NOT EXISTS outreach_tasks
(
    task_id String,
    merchant_id String,
    manager_id String,
    task_type LowCardinality(String),
    status LowCardinality(String),
    priority Float64,
    value_at_stake_fen Int64,
    urgency Float64,
    likelihood_of_success Float64,
    reason String,
    suggested_action String,
    due_date Date,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    source_alert_id Nullable(String)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (task_id);

-- Every limit version is kept for audit (the version is part of the key); only an identical
-- re-sent version is replaced.
CREATE TABLE IF NOT EXISTS pos_loan_limits
(
    merchant_id String,
    version UInt64,
    as_of DateTime64(3, 'UTC'),
    eligible Bool,
    limit_fen Int64,
    previous_limit_fen Int64,
    cap_fen Int64,
    turnover_based_fen Int64,
    repayment_based_fen Int64,
    stability_haircut Float64,
    risk_factor Float64,
    outstanding_fen Int64,
    reasons Array(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (merchant_id, version);
