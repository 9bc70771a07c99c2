"""The one settings object, read once from the environment (prefix ``MONITOR_``) at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
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
    web_port: Annotated[int, Field(ge=1, le=65535)] = 6066
    sink_flush_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=2.0, description="Seconds between warehouse flushes of changed merchant-days."
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
    state_cache_merchants: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=50_000, description="Decoded merchant states kept in memory between batches."
    )
    consumer_max_fetch_bytes: Annotated[int, Field(ge=16_384, le=64 * 1024 * 1024)] = Field(
        default=1_048_576,
        description="Bytes fetched per partition per request.",
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
