"""River-style generic checks, run against every detector."""

from __future__ import annotations

import copy
import pickle

import pytest

from detectors.base import Detector
from detectors.churn import ChurnRules, churn_heads
from detectors.credit import CreditRules, SegmentAnomaly, delinquency_head
from detectors.dormancy import DormancyDetector
from detectors.online import OnlineClassifier

BUSY = {
    "ever_active": 1.0,
    "days_since_last_txn": 12.0,
    "gap_q95_days": 2.0,
    "gap_count": 40.0,
    "weekday_of_day": 3.0,
    "log_days_since_last_txn": 2.5,
    "active_share_7d": 0.2,
    "settlement_missing_days": 4.0,
    "returned_item_count_30d": 2.0,
    "overdraft_days_30d": 0.2,
    "turnover_fast_vs_slow": 0.4,
    "drift_direction": -1.0,
    "trend_7d_vs_prev_28d": -0.4,
}


def _detectors() -> list[Detector]:
    churn, inactive = churn_heads(min_labels=5, min_positives=1)
    return [
        DormancyDetector(),
        ChurnRules(),
        CreditRules(),
        SegmentAnomaly(window_size=5),
        churn,
        inactive,
        delinquency_head(min_labels=5, min_positives=1),
        OnlineClassifier("t", ("a", "b"), min_labels=3, min_positives=1),
    ]


def _train(det: Detector) -> None:
    for i in range(30):
        det.learn_one(BUSY, i % 2 == 0)
        det.learn_one({**BUSY, "active_share_7d": 1.0, "log_days_since_last_txn": 0.0}, False)


IDS = [type(d).__name__ + str(i) for i, d in enumerate(_detectors())]


@pytest.fixture(params=range(len(IDS)), ids=IDS)
def detector(request: pytest.FixtureRequest) -> Detector:
    return _detectors()[request.param]


def test_pickle_round_trip_scores_the_same(detector: Detector) -> None:
    _train(detector)
    again = pickle.loads(pickle.dumps(detector))
    assert again.score_one(BUSY) == detector.score_one(BUSY)


def test_clone_is_untrained_with_same_params(detector: Detector) -> None:
    _train(detector)
    fresh = detector.clone()
    assert type(fresh) is type(detector)
    assert fresh._get_params() == detector._get_params()
    if not isinstance(detector, ChurnRules | CreditRules | DormancyDetector):
        assert fresh.score_one(BUSY) == fresh.neutral_score


def test_missing_and_new_features_tolerated(detector: Detector) -> None:
    _train(detector)
    for x in ({}, {"brand_new_feature": 3.0}, {**BUSY, "unknown": float("nan")}):
        score = detector.score_one(x)
        assert 0.0 <= score <= 1.0
    detector.learn_one({"brand_new_feature": 1.0}, True)


def test_input_not_mutated(detector: Detector) -> None:
    x = dict(BUSY)
    before = copy.deepcopy(x)
    detector.learn_one(x, True)
    detector.score_one(x)
    assert x == before


def test_neutral_score_during_warm_up(detector: Detector) -> None:
    """An untrained model is neutral; a rule detector is neutral on an empty day."""
    fresh = detector.clone()
    if isinstance(fresh, ChurnRules | CreditRules | DormancyDetector):
        assert fresh.score_one({}) == fresh.neutral_score
    else:
        assert not fresh.is_warm
        assert fresh.score_one(BUSY) == fresh.neutral_score


def test_repr_names_hyperparameters(detector: Detector) -> None:
    assert type(detector).__name__ in repr(detector)
