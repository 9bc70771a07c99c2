"""The simulation scenario: size, rhythms per industry, account flows, loans, trajectory mix."""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.common import Identifier
from schemas.inputs import BankCode, Industry
from streams.errors import InputFileError
from streams.sim.calendar import SPRING_FESTIVAL, festival_table_covers

#: Every trajectory the simulator knows, in the order used for codes and reports.
TRAJECTORIES: tuple[str, ...] = (
    "stable",
    "seasonal",
    "growth",
    "decline_churn",
    "acquirer_switch",
    "settlement_moved",
    "dormant",
    "dormant_reactivated",
    "credit_default",
    "inflated_turnover",
    "new_merchant",
)

_SHARE_TOLERANCE = 1e-6

Share = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"range [{value[0]}, {value[1]}] has its low end above its high end")
    return value


#: A closed range [low, high] drawn from uniformly per merchant.
Range = Annotated[tuple[NonNegative, NonNegative], AfterValidator(_ordered)]
#: A closed range of whole days.
DayRange = Annotated[
    tuple[Annotated[int, Field(ge=0, le=3650)], Annotated[int, Field(ge=0, le=3650)]],
    AfterValidator(_ordered),
]
Mcc = Annotated[str, Field(pattern=r"^\d{4}$")]


def _sums_to_one(shares: dict[str, float], what: str) -> None:
    total = sum(shares.values())
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        raise ValueError(f"{what} must sum to 1, they sum to {total:.6g}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HarvestPeak(_Model):
    """A harvest season: extra trade as a Gaussian bump around a day of the year."""

    day_of_year: Annotated[int, Field(ge=1, le=366)]
    width_days: Annotated[int, Field(ge=1, le=120)]
    extra: NonNegative


class CardMix(_Model):
    debit: Share
    credit: Share
    prepaid: Share

    @model_validator(mode="after")
    def _sum(self) -> Self:
        _sums_to_one(self.model_dump(), "card_mix shares")
        return self


class ChannelMix(_Model):
    chip: Share
    contactless: Share
    magstripe: Share
    qr: Share
    ecommerce: Share
    manual: Share

    @model_validator(mode="after")
    def _sum(self) -> Self:
        _sums_to_one(self.model_dump(), "channel_mix shares")
        return self


class IndustryConfig(_Model):
    """Rhythms and ticket sizes of one industry."""

    share: Share
    mcc: Annotated[tuple[Mcc, ...], Field(min_length=1)]
    txns_per_day: Positive = Field(description="Median over merchants of approved txns per day.")
    txns_per_day_sigma: Annotated[float, Field(ge=0.0, le=3.0)]
    ticket_cny: Positive = Field(description="Median over merchants of the median ticket.")
    ticket_sigma: Annotated[float, Field(ge=0.0, le=3.0)]
    weekday_profile: Annotated[tuple[NonNegative, ...], Field(min_length=7, max_length=7)]
    hourly_profile: Annotated[tuple[NonNegative, ...], Field(min_length=24, max_length=24)]
    closed_weekday_share: Share
    month_end_factor: Positive
    payday_factor: Positive
    spring_festival_closure_share: Share
    spring_festival_peak: Positive
    spring_festival_dip: Positive
    harvest_base: Positive = 1.0
    harvest_peaks: tuple[HarvestPeak, ...] = ()
    card_mix: CardMix
    channel_mix: ChannelMix
    decline_rate: Share
    refund_rate: Share
    chargeback_rate: Share
    reversal_rate: Share
    pos_share_of_revenue: Annotated[float, Field(gt=0.0, le=1.0)]

    @field_validator("weekday_profile", "hourly_profile")
    @classmethod
    def _some_trade(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if sum(value) <= 0:
            raise ValueError("profile must have some positive weight")
        return value


class IndustriesConfig(_Model):
    wholesale_retail: IndustryConfig
    manufacturing: IndustryConfig
    catering: IndustryConfig
    other_services: IndustryConfig
    agriculture: IndustryConfig

    @model_validator(mode="after")
    def _sum(self) -> Self:
        _sums_to_one(
            {k: getattr(self, k).share for k in type(self).model_fields}, "industry shares"
        )
        return self

    def ordered(self) -> list[tuple[Industry, IndustryConfig]]:
        """The industries in schemas.inputs.Industry order (that order defines their codes)."""
        return [(industry, getattr(self, industry.value)) for industry in Industry]


class TrajectoryConfig(_Model):
    """Share and timing of one trajectory; what ``duration_days`` and ``strength`` mean depends
    on the trajectory (see docs/simulator.md)."""

    share: Share
    onset: Range = Field(default=(0.2, 0.6), description="Onset as fractions of the window.")
    duration_days: DayRange = (14, 28)
    strength: Range = (0.5, 1.0)

    @field_validator("onset")
    @classmethod
    def _fraction(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[1] > 1.0:
            raise ValueError("onset is a fraction of the window, at most 1")
        return value


class TrajectoriesConfig(_Model):
    stable: TrajectoryConfig
    seasonal: TrajectoryConfig
    growth: TrajectoryConfig
    decline_churn: TrajectoryConfig
    acquirer_switch: TrajectoryConfig
    settlement_moved: TrajectoryConfig
    dormant: TrajectoryConfig
    dormant_reactivated: TrajectoryConfig
    credit_default: TrajectoryConfig
    inflated_turnover: TrajectoryConfig
    new_merchant: TrajectoryConfig

    @model_validator(mode="after")
    def _sum(self) -> Self:
        _sums_to_one({k: getattr(self, k).share for k in TRAJECTORIES}, "trajectory shares")
        return self


class PopulationConfig(_Model):
    merchants: Annotated[int, Field(ge=1, le=10_000_000)]
    days: Annotated[int, Field(ge=1, le=3650)]
    start: date
    timezone: str = "Asia/Shanghai"
    bank_code: BankCode
    other_bank_codes: Annotated[tuple[BankCode, ...], Field(min_length=1)]
    other_acquirer_codes: Annotated[tuple[BankCode, ...], Field(min_length=1)]
    lender_codes: Annotated[tuple[BankCode, ...], Field(min_length=1)]
    regions: Annotated[tuple[Identifier, ...], Field(min_length=1)]
    grids_per_region: Annotated[int, Field(ge=1, le=1000)]
    managers_per_grid: Annotated[int, Field(ge=1, le=100)]
    paydays: Annotated[tuple[Annotated[int, Field(ge=1, le=28)], ...], Field(min_length=1)]
    card_pool_days: Annotated[float, Field(gt=0.0, le=365.0)] = Field(
        description="Distinct cards per merchant = this x its daily transactions."
    )
    card_repeat_skew: Annotated[float, Field(ge=1.0, le=10.0)] = Field(
        description="Higher = regular customers' cards come back more often."
    )
    daily_noise_shape: Annotated[float, Field(gt=0.0, le=1000.0)] = Field(
        description="Gamma shape of day-to-day turnover noise (higher = steadier)."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a known IANA time zone") from exc
        return value

    @model_validator(mode="after")
    def _festival_known(self) -> Self:
        if not festival_table_covers(self.start, self.days):
            years = f"{min(SPRING_FESTIVAL)}-{max(SPRING_FESTIVAL)}"
            raise ValueError(
                f"window {self.start} + {self.days} days reaches beyond the Spring Festival "
                f"table ({years}); extend streams/sim/calendar.py"
            )
        return self


class AccountConfig(_Model):
    """Business-account flows, sized against each merchant's monthly revenue."""

    mdr_ppm: Annotated[int, Field(ge=0, le=100_000)] = Field(
        description="Acquiring fee in parts per million of approved turnover (6000 = 0.6%)."
    )
    buffer_months: Range
    payroll_share: Range
    payroll_days: Annotated[tuple[Annotated[int, Field(ge=1, le=28)], ...], Field(min_length=1)]
    tax_share: Range
    quarterly_tax_share: Share
    tax_day: Annotated[int, Field(ge=1, le=28)]
    utility_share: Range
    other_lender_share: Share
    other_lender_installment: Range
    supplier_payment_prob: Share
    spend_share: Range
    cash_withdrawal_prob: Share
    own_transfer_prob: Share
    transfer_in_per_day: Annotated[float, Field(ge=0.0, le=50.0)]
    returned_item_fee_cny: NonNegative


class LoanConfig(_Model):
    """POS loans (POS贷) at our bank."""

    pos_loan_share: Share
    amount_months: Range
    product_cap_cny: Positive
    term_months: Annotated[int, Field(ge=1, le=120)]
    annual_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    growth_loan_share: Share = Field(
        description="Share of growing merchants that take a new POS loan in the window."
    )


class Scenario(_Model):
    """Everything a simulation needs besides the seed.

    Load a file with :meth:`load` (it is merged over the built-in default, so a file only names
    what it changes); :meth:`resized` overrides the population size.
    """

    name: Annotated[str, Field(min_length=1, max_length=100)] = "default"
    description: str = ""
    population: PopulationConfig
    industries: IndustriesConfig
    trajectories: TrajectoriesConfig
    accounts: AccountConfig
    loans: LoanConfig

    @classmethod
    def default(cls) -> Scenario:
        """The built-in scenario: 500 merchants x 60 days from 2026-01-05 (a demo size)."""
        return cls.from_mapping(_default_mapping(), "built-in default scenario")

    @classmethod
    def load(cls, path: Path | str) -> Scenario:
        """Read a TOML scenario file, merged over the built-in default."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                override = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise InputFileError(f"scenario file {path} not found") from exc
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputFileError(f"scenario file {path} is not valid TOML: {exc}") from exc
        return cls.from_mapping(_deep_merge(_default_mapping(), override), f"scenario {path}")

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "scenario") -> Scenario:
        """Validate a complete scenario mapping; errors name the bad key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [
                f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                for err in exc.errors()
            ]
            raise InputFileError(f"{source} is invalid:\n" + "\n".join(lines)) from exc

    def resized(self, merchants: int | None = None, days: int | None = None) -> Scenario:
        """A copy with another population size or window length (validated again)."""
        data = self.model_dump(mode="python")
        if merchants is not None:
            data["population"]["merchants"] = merchants
        if days is not None:
            data["population"]["days"] = days
        return Scenario.from_mapping(data, "resized scenario")

    def starting(self, start: date) -> Scenario:
        """A copy whose window starts on another date."""
        data = self.model_dump(mode="python")
        data["population"]["start"] = start
        return Scenario.from_mapping(data, "scenario with a new start")


def _default_mapping() -> dict[str, Any]:
    text = resources.files("streams.sim").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
