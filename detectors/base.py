"""River-style base class of the detectors, and the root of their exceptions."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from typing import Any


class DetectorError(Exception):
    """Root of the errors raised by the detectors, their policies and the pipeline."""


class DetectorParamsError(DetectorError, ValueError):
    """A hyperparameter out of range."""


class StateDecodeError(DetectorError):
    """Bytes that are not a per-merchant detector state this build can read."""


class Detector:
    """A River-style online detector: ``learn_one`` / ``score_one``, higher score means worse.

    Hyperparameters are stored under their constructor names (``_get_params`` reads them back),
    learned state lives in private attributes, ``clone()`` gives an untrained copy, and while
    warming up ``score_one`` returns ``neutral_score`` instead of raising. Inputs are plain
    feature dicts; missing features read as 0 and unknown ones are ignored; inputs are never
    mutated. Subclasses override ``learn_one``, ``score_one`` and ``is_warm``.

    Examples
    --------
    >>> class Constant(Detector):
    ...     def __init__(self, level: float = 0.3) -> None:
    ...         self.level = level
    ...     def score_one(self, x: Mapping[str, float]) -> float:
    ...         return self.level
    >>> det = Constant(level=0.7)
    >>> det.clone()._get_params()
    {'level': 0.7}
    >>> det.score_one({}), det.neutral_score
    (0.7, 0.0)
    """

    #: Score returned while the detector has not learned enough to judge.
    neutral_score: float = 0.0

    def _get_params(self) -> dict[str, Any]:
        """The constructor's parameters with their current values (River's convention)."""
        names = [
            name
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def clone(self) -> Detector:
        """A fresh, untrained copy with the same hyperparameters."""
        return type(self)(**copy.deepcopy(self._get_params()))

    def learn_one(self, x: Mapping[str, float], y: float | bool | None = None) -> None:
        """Update the learned state with one observation (the default learns nothing)."""

    def score_one(self, x: Mapping[str, float]) -> float:
        """Score of one observation; higher means worse."""
        raise NotImplementedError

    @property
    def is_warm(self) -> bool:
        """Whether the detector has learned enough to score (always, by default)."""
        return True

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"


def feature(x: Mapping[str, float], name: str, default: float = 0.0) -> float:
    """A feature by name; missing, None or non-finite reads as ``default`` (tolerates any input).

    >>> feature({"a": 2.0}, "a"), feature({}, "a", 1.0), feature({"a": float("nan")}, "a")
    (2.0, 1.0, 0.0)
    """
    value = x.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def clip(value: float, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` limited to ``[low, high]``."""
    return low if value < low else high if value > high else value


def sigmoid(z: float) -> float:
    """The logistic function, safe for large arguments."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
