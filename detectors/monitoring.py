"""Online model health: progressive validation (ROC AUC, precision at k, calibration) and drift."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from river import metrics

from schemas.dashboard_rows import ModelMetric, ModelMetricRow

_SCORE_EDGES = tuple(i / 10 for i in range(1, 10))
_PSI_FLOOR = 1e-4


def psi(reference: Sequence[int], current: Sequence[int]) -> float:
    """Population stability index of two histograms over the same bins (0 = identical).

    >>> psi([10, 10], [10, 10]), round(psi([10, 10], [18, 2]), 3)
    (0.0, 0.879)
    """
    total_r, total_c = sum(reference), sum(current)
    if not total_r or not total_c:
        return 0.0
    out = 0.0
    for r, c in zip(reference, current, strict=True):
        p = max(r / total_r, _PSI_FLOOR)
        q = max(c / total_c, _PSI_FLOOR)
        out += (q - p) * math.log(q / p)
    return out


@dataclass(slots=True)
class ModelHealth:
    """Progressive validation of one model: every label is scored before the model learns it.

    ``observe`` takes (score before learning, label); ``observe_score`` every served score
    (for score drift); ``observe_inputs`` the inputs of labelled samples (for input drift).
    ``rows(day)`` gives the day's ``model_metrics`` rows and starts a new day.

    Examples
    --------
    >>> h = ModelHealth("churn", reference_samples=4)
    >>> for s, y in [(0.9, True), (0.2, False), (0.7, True), (0.4, False)]:
    ...     h.observe(s, y)
    >>> rows = {r.metric: r.value for r in h.rows(date(2026, 3, 1), "v1")}
    >>> rows["auc_online"], rows["labelled_samples"]
    (1.0, 4.0)
    """

    model: str
    top_k: int = 50
    reference_samples: int = 2000
    _auc: object = field(default_factory=metrics.ROCAUC)
    _day_pairs: list[tuple[float, bool]] = field(default_factory=list)
    _labelled: int = 0
    _brier_sum: float = 0.0
    _score_ref: list[int] = field(default_factory=lambda: [0] * 10)
    _score_day: list[int] = field(default_factory=lambda: [0] * 10)
    _input_ref_values: dict[str, list[float]] = field(default_factory=dict)
    _input_edges: dict[str, tuple[float, ...]] = field(default_factory=dict)
    _input_ref: dict[str, list[int]] = field(default_factory=dict)
    _input_day: dict[str, list[int]] = field(default_factory=dict)

    def observe(self, score: float, label: bool) -> None:
        self._auc.update(label, score)  # type: ignore[attr-defined]
        self._day_pairs.append((score, label))
        self._labelled += 1
        self._brier_sum += (score - float(label)) ** 2

    def observe_score(self, score: float) -> None:
        b = bisect_right(_SCORE_EDGES, score)
        if sum(self._score_ref) < self.reference_samples:
            self._score_ref[b] += 1
        else:
            self._score_day[b] += 1

    def observe_inputs(self, x: Mapping[str, float]) -> None:
        if not self._input_edges:
            for name, value in x.items():
                self._input_ref_values.setdefault(name, []).append(value)
            first = next(iter(self._input_ref_values.values()), [])
            if len(first) >= self.reference_samples:
                self._freeze_inputs()
            return
        for name, edges in self._input_edges.items():
            if name in x:
                self._input_day[name][bisect_right(edges, x[name])] += 1

    def _freeze_inputs(self) -> None:
        for name, values in self._input_ref_values.items():
            ordered = sorted(values)
            edges = sorted({ordered[len(ordered) * q // 10] for q in range(1, 10)})
            self._input_edges[name] = tuple(edges)
            ref = [0] * (len(edges) + 1)
            for v in values:
                ref[bisect_right(edges, v)] += 1
            self._input_ref[name] = ref
            self._input_day[name] = [0] * (len(edges) + 1)
        self._input_ref_values = {}

    def _precision_at_k(self) -> float | None:
        if not self._day_pairs:
            return None
        top = sorted(self._day_pairs, key=lambda p: -p[0])[: self.top_k]
        return sum(1 for _, y in top if y) / len(top)

    def rows(self, day: date, version: str) -> list[ModelMetricRow]:
        """The day's rows (then the day's counters restart); ``computed_at`` is the day's end."""
        values: dict[str, float | None] = {
            ModelMetric.LABELLED_SAMPLES.value: float(self._labelled),
            ModelMetric.AUC_ONLINE.value: float(self._auc.get()) if self._labelled else None,  # type: ignore[attr-defined]
            ModelMetric.PRECISION_AT_K.value: self._precision_at_k(),
            "brier_score": self._brier_sum / self._labelled if self._labelled else None,
            "calibration_gap": self._calibration_gap(),
            ModelMetric.SCORE_PSI.value: psi(self._score_ref, self._score_day)
            if sum(self._score_day)
            else None,
            ModelMetric.FEATURE_PSI_MAX.value: max(
                (psi(self._input_ref[n], h) for n, h in self._input_day.items() if sum(h)),
                default=None,
            ),
        }
        self._day_pairs = []
        self._score_day = [0] * 10
        self._input_day = {n: [0] * len(h) for n, h in self._input_day.items()}
        at = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return [
            ModelMetricRow(
                model=self.model,
                model_version=version,
                day=day,
                metric=metric,
                value=value,
                computed_at=at,
            )
            for metric, value in values.items()
            if value is not None and math.isfinite(value)
        ]

    def _calibration_gap(self) -> float | None:
        """Mean predicted minus observed rate over the day's labels (0 = calibrated on average)."""
        if not self._day_pairs:
            return None
        n = len(self._day_pairs)
        return sum(s for s, _ in self._day_pairs) / n - sum(1 for _, y in self._day_pairs if y) / n


def rank_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Exact ROC AUC (Mann-Whitney, ties counted half); None without both classes.

    >>> rank_auc([0.9, 0.2, 0.7, 0.7], [True, False, True, False])
    0.875
    """
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    pos_ranks = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (pos_ranks - pos * (pos + 1) / 2.0) / (pos * neg)


@dataclass
class Rivalry:
    """Which of two scorers ranks the same recent labels better: a model and the rules.

    Every resolved label is scored by both before the model learns it (progressive
    validation); the model decides only while its exact AUC over the last ``window`` labels
    beats the rules' by ``margin`` (re-judged every ``every`` labels, at least ``min_labels``).

    Examples
    --------
    >>> r = Rivalry(window=100, min_labels=10, every=1)
    >>> for i in range(20):
    ...     r.observe(model=i % 2, rules=0.5, label=bool(i % 2))
    >>> r.model_decides, round(r.model_auc or 0, 2), r.rules_auc
    (True, 1.0, 0.5)
    """

    window: int = 2000
    min_labels: int = 500
    every: int = 100
    margin: float = 0.0
    _pairs: list[tuple[float, float, bool]] = field(default_factory=list)
    _since: int = 0
    model_auc: float | None = None
    rules_auc: float | None = None
    model_decides: bool = False

    def observe(self, model: float, rules: float, label: bool) -> None:
        self._pairs.append((float(model), float(rules), bool(label)))
        if len(self._pairs) > self.window:
            del self._pairs[: len(self._pairs) - self.window]
        self._since += 1
        if self._since >= self.every and len(self._pairs) >= self.min_labels:
            self._since = 0
            labels = [y for _, _, y in self._pairs]
            self.model_auc = rank_auc([m for m, _, _ in self._pairs], labels)
            self.rules_auc = rank_auc([r for _, r, _ in self._pairs], labels)
            self.model_decides = (
                self.model_auc is not None
                and self.rules_auc is not None
                and self.model_auc > self.rules_auc + self.margin
            )
