"""Row models of the warehouse tables added for the dashboards (migration 0002) and their names."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from schemas.common import (
    Identifier,
    NonNegativeFen,
    OutputModel,
    PlausibleDate,
    UtcDatetime,
)
from schemas.inputs import Industry, MerchantFlag, MerchantProfile, OutcomeKind, OutreachOutcome

#: A short lower-case name (metric, model, stage): what the dashboards filter on.
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class LifecycleStage(StrEnum):
    """The five lifecycle stages (客户生命周期) of a merchant."""

    ACQUISITION = "acquisition"
    GROWTH = "growth"
    MATURITY = "maturity"
    DECLINE = "decline"
    CHURN = "churn"


class LoanCategory(StrEnum):
    """Five-category loan classification (五级分类, 2023 rules), as the warehouse view names it."""

    NORMAL = "normal"  # 正常
    SPECIAL_MENTION = "special_mention"  # 关注
    SUBSTANDARD = "substandard"  # 次级
    DOUBTFUL = "doubtful"  # 可疑
    LOSS = "loss"  # 损失


class PipelineMetric(StrEnum):
    """Metric names in ``pipeline_metrics`` that the pipeline-health dashboard and alerts read."""

    #: Records behind the end of a partition (one sample per partition, ``partition >= 0``).
    CONSUMER_LAG = "consumer_lag"
    #: Events a worker processed per second since its previous sample (``partition = -1``).
    EVENTS_PER_S = "events_per_s"
    #: Rows buffered in the warehouse sink, waiting for the next flush (``partition = -1``).
    SINK_BUFFER_ROWS = "sink_buffer_rows"


class ModelMetric(StrEnum):
    """Metric names in ``model_metrics`` that the model-health dashboard reads."""

    #: Area under the ROC curve on labels that arrived (delayed) for scores of that day.
    AUC_ONLINE = "auc_online"
    #: Share of the top-k scored merchants (k = managers' weekly capacity) that were right.
    PRECISION_AT_K = "precision_at_k"
    #: Population stability index of the score distribution against the reference window.
    SCORE_PSI = "score_psi"
    #: The largest population stability index over the input features.
    FEATURE_PSI_MAX = "feature_psi_max"
    #: Labelled examples the online metrics of that day rest on.
    LABELLED_SAMPLES = "labelled_samples"


class MerchantProfileRow(OutputModel):
    """The latest profile of a merchant (table ``merchant_profiles``; greatest updated_at wins)."""

    merchant_id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    industry: Industry
    region: Identifier
    grid_id: Identifier
    account_manager_id: Identifier
    onboarding_date: PlausibleDate
    pos_loan_facility_fen: NonNegativeFen = 0
    pos_loan_outstanding_fen: NonNegativeFen = 0
    flags: tuple[MerchantFlag, ...] = ()
    updated_at: UtcDatetime

    @classmethod
    def from_profile(cls, profile: MerchantProfile) -> MerchantProfileRow:
        """The row of a profile payload, flags in a stable (sorted) order."""
        return cls(
            **profile.model_dump(exclude={"flags"}),
            flags=tuple(sorted(profile.flags)),
        )


class MerchantLifecycleRow(OutputModel):
    """A change of a merchant's lifecycle stage, effective from a business day.

    Table ``merchant_lifecycle``: the stage on a day is the latest change on or before it; a
    second decision for the same (merchant, day) replaces the first (greatest decided_at wins).
    """

    merchant_id: Identifier
    effective_from: PlausibleDate
    stage: LifecycleStage
    decided_by: Annotated[str, Field(min_length=1, max_length=64)]
    decided_at: UtcDatetime


class LoanPositionRow(OutputModel):
    """A POS-loan's position at the end of a business day (table ``loan_positions``)."""

    loan_id: Identifier
    merchant_id: Identifier
    day: PlausibleDate
    outstanding_fen: NonNegativeFen
    days_past_due: Annotated[int, Field(ge=0, le=3650)] = 0
    updated_at: UtcDatetime


class OutreachOutcomeRow(OutputModel):
    """What came of an outreach task (table ``outreach_outcomes``, keyed by outcome_id)."""

    outcome_id: Identifier
    task_id: Identifier
    merchant_id: Identifier
    manager_id: Identifier
    event_time: UtcDatetime
    outcome: OutcomeKind
    note: Annotated[str, Field(max_length=1000)] = ""

    @classmethod
    def from_outcome(cls, outcome: OutreachOutcome) -> OutreachOutcomeRow:
        """The row of an outcome payload (the fields map one to one)."""
        return cls(**outcome.model_dump())


class ModelMetricRow(OutputModel):
    """One daily value of a model-health metric (table ``model_metrics``).

    A recomputation for the same (model, metric, model_version, day) replaces the earlier value:
    the row with the greatest ``computed_at`` wins.
    """

    model: Name
    model_version: Annotated[str, Field(min_length=1, max_length=64)]
    day: PlausibleDate
    metric: Name
    value: float = Field(allow_inf_nan=False)
    computed_at: UtcDatetime


#: Table name -> row model, for every table migration 0002 adds.
DASHBOARD_ROWS: dict[str, type[BaseModel]] = {
    "merchant_profiles": MerchantProfileRow,
    "merchant_lifecycle": MerchantLifecycleRow,
    "loan_positions": LoanPositionRow,
    "outreach_outcomes": OutreachOutcomeRow,
    "model_metrics": ModelMetricRow,
}
