"""The one settings object, read once from the environment (prefix ``MONITOR_``) at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every setting of Merchant Monitor; environment variables are ``MONITOR_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", frozen=True, extra="forbid", validate_default=True
    )

    broker_url: str = Field(
        default="kafka://127.0.0.1:9092",
        description="Kafka bootstrap servers, 'kafka://host:port[;host:port...]'.",
    )
    partitions: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=4, description="Partitions of every topic (inputs, outputs and tables alike)."
    )
    replication_factor: Annotated[int, Field(ge=1, le=5)] = 1
    broker_probe_end_offsets: bool = Field(
        default=False,
        description="Check the end offsets the broker reports by reading past them (for a "
        "broker that reports them short, like the local tansu; off for Kafka).",
    )
    data_dir: Path = Field(
        default=Path(".merchant-monitor"),
        description="Local state: embedded warehouse, table stores, broker logs.",
    )
    warehouse_url: str | None = Field(
        default=None,
        description="ClickHouse server HTTP URL (http[s]://host:port); unset = embedded chdb.",
    )
    warehouse_database: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] = (
        "merchant_monitor"
    )
    warehouse_user: str = "default"
    warehouse_password: SecretStr = SecretStr("")
    business_timezone: str = Field(
        default="Asia/Shanghai",
        description="Time zone of the business day: a merchant-day is a calendar day here.",
    )
    log_level: LogLevel = "INFO"
    app_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] = (
        "merchant-monitor"
    )
    table_store: Literal["memory", "rocksdb"] = Field(
        default="memory", description="Faust table store; 'rocksdb' in production."
    )
    web_enabled: bool = Field(
        default=True, description="Serve the HTTP API (tasks, outcomes, limits) from the worker."
    )
    web_bind: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    web_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-]{1,253}$")] = Field(
        default="127.0.0.1",
        description="Host name other workers use to reach this one (requests for a merchant "
        "or manager owned by another worker are routed there).",
    )
    web_port: Annotated[int, Field(ge=1, le=65535)] = 6066
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the HTTP API requires (required when the API is on).",
    )
    sink_flush_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=2.0, description="Seconds between warehouse flushes of changed merchant-days."
    )
    state_write_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=6.0,
        description="Seconds between writes of the changed states (tables and changelogs) and "
        "acknowledgements of the events behind them: at least the sink flush interval (the "
        "default gives way to a longer one). Outputs do not wait for it. When no new events "
        "came in since the last flush, the states are written at the next flush.",
    )
    sink_max_buffer_rows: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=200_000, description="Buffered rows that force a flush (back-pressure bound)."
    )

    lateness_days: Annotated[int, Field(ge=0, le=7)] = Field(
        default=3,
        description="Event-time lateness accepted per merchant; later events are dead-lettered.",
    )
    idle_close_after_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=300.0,
        description="Wall-clock seconds without events after which a partition's days close "
        "by the clock (so silence stays visible when the whole stream is idle).",
    )
    max_input_skew_s: Annotated[int, Field(ge=60, le=7 * 86_400)] = Field(
        default=43_200,
        description="An input topic running this far ahead (event time) of its co-partitioned "
        "sibling is paused until the sibling catches up.",
    )
    align_idle_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="An input that delivered nothing for this long no longer holds back the "
        "other input of its partition.",
    )
    max_future_s: Annotated[float, Field(ge=0, le=30 * 86_400)] = Field(
        default=86_400.0,
        description="Events this far after the worker's clock are dead-lettered as 'future'.",
    )
    bootstrap_dir: Path | None = Field(
        default=None,
        description="A `backfill` output directory: the worker seeds its state from it and "
        "skips source events of the business days it already covers.",
    )
    state_cache_merchants: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=50_000, description="Decoded merchant states kept in memory between batches."
    )
    consumer_max_fetch_bytes: Annotated[int, Field(ge=16_384, le=64 * 1024 * 1024)] = Field(
        default=1_048_576,
        description="Bytes fetched per partition per request.",
    )
    consumer_fetch_max_wait_ms: Annotated[int, Field(ge=1, le=60_000)] = Field(
        default=1500,
        description="Longest wait of a fetch for new records (ms; Faust's own 1500). Kafka "
        "answers as soon as records arrive; the local tansu holds a fetch up to this long, so "
        "the local stack sets 100.",
    )
    batch_max_events: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=5_000, description="Events the agent takes per batch."
    )
    commit_interval_s: Annotated[float, Field(gt=0, le=600)] = 2.8
    consumer_rebalance_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=60.0, description="Consumer-group rebalance timeout (short in tests only)."
    )
    consumer_session_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    consumer_heartbeat_interval_s: Annotated[float, Field(gt=0, le=60)] = 3.0

    # -- POS-loan limit policy (detectors.limits.LimitParams; checked there at start) --
    limit_product_cap_fen: int = Field(
        default=50_000_000,
        description="Largest POS-loan limit the product allows (fen; CNY 500,000).",
    )
    limit_turnover_multiple: float = Field(
        default=2.0,
        description="Turnover leg: this many times the trailing monthly approved turnover.",
    )
    limit_lookback_months: int = Field(
        default=6,
        description="Calendar months (current partial one included) of the trailing turnover.",
    )
    limit_repayment_share: float = Field(
        default=0.10, description="Share of card sales that repays (repayment leg)."
    )
    limit_payback_months: int = Field(
        default=12, description="Months over which a loan is repaid (repayment leg)."
    )
    limit_spike_cap_multiple: float = Field(
        default=3.0,
        description="A day's turnover counts at most this multiple of the typical active day.",
    )
    limit_spike_floor_fen: int = Field(
        default=100_000, description="A day is never winsorised below this (fen)."
    )
    limit_typical_alpha: float = Field(
        default=0.05, description="EWMA weight of a new active day in the typical active day."
    )
    limit_warmup_active_days: int = Field(
        default=5,
        description="First active days held raw to set the typical day (ineligible until then).",
    )
    limit_stable_cv: float = Field(
        default=0.25,
        description="Weekly turnover CV at or below which there is no stability haircut.",
    )
    limit_unstable_cv: float = Field(
        default=0.5, description="Weekly turnover CV at or above which the full haircut applies."
    )
    limit_unstable_haircut: float = Field(
        default=0.5, description="The stability factor at or above the unstable CV."
    )
    limit_max_txn_per_card: float = Field(
        default=4.0,
        description="Approved transactions per card (30d) above which limits are discounted.",
    )
    limit_credit_score_weight: float = Field(
        default=0.5, description="Risk factor = 1 - weight x credit score."
    )
    limit_open_credit_alert_factor: float = Field(
        default=0.5,
        description="A newly opened credit alert cuts the limit to at most this share, at once.",
    )
    limit_min_history_months: int = Field(
        default=3, description="Eligibility: months of acquiring history since onboarding."
    )
    limit_min_observed_days: int = Field(
        default=30, description="Eligibility: days of turnover observed."
    )
    limit_min_active_days_30d: int = Field(
        default=8, description="Eligibility: active days in the last 30."
    )
    limit_max_refund_ratio: float = Field(
        default=0.10, description="Eligibility: refund ratio over 90 days at most this."
    )
    limit_max_chargeback_ratio: float = Field(
        default=0.01, description="Eligibility: chargeback ratio over 90 days at most this."
    )
    limit_increase_rate: float = Field(
        default=0.25,
        description="Damping: an increase moves at most this share of the gap to the target.",
    )
    limit_change_tolerance: float = Field(
        default=0.1, description="A target within this share of the limit leaves it unchanged."
    )
    limit_volatility_alpha: float = Field(
        default=0.1, description="EWMA weight of today's weekly CV in the haircut's volatility."
    )
    limit_rounding_fen: int = Field(
        default=100_000,
        description="Limits are rounded down to multiples of this (fen; CNY 1,000).",
    )

    # -- outreach policy (detectors.outreach.OutreachParams; checked there at start) --
    outreach_manager_capacity_per_day: int = Field(
        default=8,
        description="Tasks an account manager can take per day; the rest wait, queued by priority.",
    )
    outreach_cooldown_days: int = Field(
        default=30, description="At most one task per merchant and type within this many days."
    )
    outreach_high_value_monthly_fen: int = Field(
        default=5_000_000,
        description="Monthly turnover (fen) from which a merchant is high value (priority scale).",
    )
    outreach_due_working_days_high_value_churn: int = Field(
        default=2,
        description="Contact standard: working days to reach a high-value merchant at churn risk.",
    )
    outreach_due_working_days_dormant: int = Field(
        default=5, description="Contact standard: working days to contact a dormant merchant."
    )
    outreach_due_working_days_default: int = Field(
        default=10, description="Working days for every other task."
    )
    outreach_success_prior: float = Field(
        default=0.3, description="Likelihood of success before any outcome is known."
    )
    outreach_prior_strength: float = Field(
        default=10.0, description="Weight (pseudo-outcomes) of that prior per task type."
    )
    outreach_min_labels: int = Field(
        default=30, description="Outcomes before the learned success model joins the prior."
    )
    outreach_weight_value: float = Field(
        default=0.4, description="Priority weight of the value at stake."
    )
    outreach_weight_urgency: float = Field(
        default=0.35, description="Priority weight of the urgency."
    )
    outreach_weight_likelihood: float = Field(
        default=0.25, description="Priority weight of the likelihood of success."
    )
    outreach_churn_risk_score: float = Field(
        default=0.5,
        description="Churn score from which a declining merchant gets a retention visit.",
    )
    outreach_task_expiry_days: int = Field(
        default=30, description="Open tasks without an outcome are cancelled after this long."
    )

    @model_validator(mode="after")
    def _check_intervals(self) -> Settings:
        if self.state_write_interval_s < self.sink_flush_interval_s:
            if "state_write_interval_s" not in self.model_fields_set:
                # The default gives way to a longer flush interval set on its own.
                object.__setattr__(self, "state_write_interval_s", self.sink_flush_interval_s)
                return self
            msg = (
                f"state_write_interval_s ({self.state_write_interval_s}) must be at least "
                f"sink_flush_interval_s ({self.sink_flush_interval_s}): states are written at "
                "a warehouse flush"
            )
            raise ValueError(msg)
        return self

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "kafka" or not parts.netloc:
            msg = f"broker_url must look like 'kafka://host:port', got {value!r}"
            raise ValueError(msg)
        for host_port in parts.netloc.split(";"):
            host, _, port = host_port.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                msg = f"broker_url has a bad host:port {host_port!r}"
                raise ValueError(msg)
        return value

    @field_validator("warehouse_url")
    @classmethod
    def _check_warehouse_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"warehouse_url must be http(s)://host:port, got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("business_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"business_timezone {value!r} is not a known IANA time zone"
            raise ValueError(msg) from exc
        return value

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker URL as a list of 'host:port' for Kafka clients."""
        return urlsplit(self.broker_url).netloc.split(";")

    @property
    def warehouse_dir(self) -> Path:
        """Where the embedded warehouse keeps its tables."""
        return self.data_dir / "warehouse"
