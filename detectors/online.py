"""A shared online classifier: River StandardScaler + LogisticRegression, neutral until warm."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from river import linear_model, optim, preprocessing

from detectors.base import Detector, DetectorParamsError, feature
from detectors.monitoring import ModelHealth
from schemas.outputs import ReasonCode


class OnlineClassifier(Detector):
    """P(label) from a River logistic regression on standardised inputs, learned one at a time.

    Until it has seen ``min_labels`` labels, ``min_positives`` of them positive, it is not warm
    and ``score_one`` returns ``neutral_score`` (the caller's rules decide meanwhile). Every label
    is first scored (progressive validation in ``health``) and then learned. ``version`` names the
    model design and its inputs, so rows of a different design never mix in the warehouse.

    Parameters
    ----------
    name
        Model name in ``model_metrics``.
    inputs
        Input names in order (others are ignored, missing read as 0).
    learning_rate, l2
        SGD step and L2 penalty of the logistic regression.
    min_labels, min_positives
        Warm-up.

    Examples
    --------
    >>> clf = OnlineClassifier("demo", ("a",), min_labels=4, min_positives=2)
    >>> clf.score_one({"a": 3.0})
    0.0
    >>> for _ in range(50):
    ...     clf.learn_one({"a": 3.0}, True)
    ...     clf.learn_one({"a": -3.0}, False)
    >>> clf.is_warm, clf.score_one({"a": 3.0}) > 0.5 > clf.score_one({"a": -3.0})
    (True, True)
    """

    def __init__(
        self,
        name: str,
        inputs: tuple[str, ...],
        learning_rate: float = 0.03,
        l2: float = 1e-4,
        min_labels: int = 500,
        min_positives: int = 20,
    ) -> None:
        if min_labels < 1 or min_positives < 0 or learning_rate <= 0:
            raise DetectorParamsError("need min_labels >= 1, min_positives >= 0, learning_rate > 0")
        self.name = name
        self.inputs = inputs
        self.learning_rate = learning_rate
        self.l2 = l2
        self.min_labels = min_labels
        self.min_positives = min_positives
        self._scaler: Any = preprocessing.StandardScaler()
        self._lr: Any = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), l2=l2, intercept_lr=learning_rate
        )
        self._labels = 0
        self._positives = 0
        self.health = ModelHealth(name)
        digest = hashlib.sha1(",".join(inputs).encode(), usedforsecurity=False).hexdigest()[:8]
        self.version = f"{name}-lr1-{digest}"

    def _x(self, x: Mapping[str, float]) -> dict[str, float]:
        return {name: feature(x, name) for name in self.inputs}

    @property
    def is_warm(self) -> bool:
        return self._labels >= self.min_labels and self._positives >= self.min_positives

    @property
    def labels_seen(self) -> int:
        return self._labels

    def learn_one(self, x: Mapping[str, float], y: float | bool | None = None) -> None:
        if y is None:
            return
        label = bool(y)
        xs = self._x(x)
        self.health.observe(self._proba(xs), label)
        self.health.observe_inputs(xs)
        self._scaler.learn_one(xs)
        self._lr.learn_one(self._scaler.transform_one(xs), label)
        self._labels += 1
        self._positives += label

    def _proba(self, xs: dict[str, float]) -> float:
        proba = self._lr.predict_proba_one(self._scaler.transform_one(xs))
        return float(proba.get(True, 0.0))

    def proba_one(self, x: Mapping[str, float]) -> float:
        """The model's probability even while it warms up (for progressive comparisons)."""
        return self._proba(self._x(x))

    def score_one(self, x: Mapping[str, float]) -> float:
        if not self.is_warm:
            return self.neutral_score
        return self._proba(self._x(x))

    def reasons(self, x: Mapping[str, float], top: int = 3) -> list[ReasonCode]:
        """The inputs pushing the score up most: weight x standardised value, population mean."""
        xs = self._x(x)
        z = self._scaler.transform_one(xs)
        weights = self._lr.weights
        parts = sorted(
            ((float(weights.get(n, 0.0)) * float(z.get(n, 0.0)), n) for n in self.inputs),
            reverse=True,
        )
        return [
            ReasonCode(
                feature=name,
                value=round(xs[name], 6),
                baseline=round(float(self._scaler.means.get(name, 0.0)), 6),
                contribution=round(c, 6),
            )
            for c, name in parts[:top]
            if c > 0
        ]
