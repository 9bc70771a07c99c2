"""Hypothesis invariants of the feature engine against the naive reference recomputation."""

from __future__ import annotations

import pickle
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.features import (
    DaySnapshot,
    FeatureParams,
    MerchantState,
    StepStatus,
    close_through,
    decode_ids,
    decode_state,
    encode_ids,
    encode_state,
    feature_names,
)
from tests.unit.test_features_reference import (
    BASE_DAY,
    History,
    apply,
    assert_features_match,
    naive_features,
    naive_totals,
    random_history,
)

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
PARAMS = st.builds(
    FeatureParams,
    lateness_days=st.integers(0, 5),
    settlement_delay_days=st.integers(0, 3),
    windows_days=st.sampled_from([(1, 7, 30, 90), (3, 14, 60)]),
    account_windows_days=st.sampled_from([(1, 7, 30), (2, 30)]),
    gap_decay_total=st.sampled_from([16, 512]),
)


def run_worker(history: History, params: FeatureParams) -> tuple[MerchantState, list[DaySnapshot]]:
    """Drive the engine like the worker: watermark = newest day seen - lateness - 1."""
    state: MerchantState | None = None
    snapshots: list[DaySnapshot] = []
    seen_ids: set[tuple[str, object]] = set()
    newest = -1
    for source, event in history.arrivals:
        newest = max(newest, event[0])
        if state is not None:
            state, closed = close_through(state, newest - params.lateness_days - 1, params)
            snapshots += closed
        before = encode_state(state) if state is not None and source == "stray" else None
        key = (source, event[4] if source != "acct" else event[5])
        state, result = apply(state, source, event, params)
        if source == "stray":
            assert result.status is StepStatus.LATE, result
            assert encode_state(state) == before, "a late event changed the state"
        elif key in seen_ids:
            assert result.status is not StepStatus.APPLIED, (result, event)
        else:
            assert result.status is StepStatus.APPLIED, (result, event)
            snapshots += result.closed
        seen_ids.add(key)
    assert state is not None
    return state, snapshots


def check_snapshots(history: History, snapshots: list[DaySnapshot], params: FeatureParams) -> None:
    days = [s.day for s in snapshots]
    assert days == list(range(days[0], days[-1] + 1)), "every day closes once, in order"
    names = list(feature_names(params))
    sample = {s.day for s in snapshots[::9]} | {s.day for s in snapshots[-4:]}
    for snap in snapshots:
        assert snap.totals == naive_totals(history.applied_pos, history.applied_acct, snap.day)
        assert list(snap.features) == names  # same keys in the same order, every day
        for name, value in snap.features.items():
            if "count" in name or name.startswith(("active_days", "distinct", "history")):
                assert value >= 0, (name, value)
        if snap.day in sample:
            want = naive_features(history.applied_pos, history.applied_acct, snap.day, params)
            assert_features_match(snap.features, want, snap.day)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n_days=st.integers(5, 150), params=PARAMS)
def test_windowed_features_equal_naive_recomputation(
    seed: int, n_days: int, params: FeatureParams
) -> None:
    history = random_history(random.Random(seed), n_days, params.lateness_days)
    if not history.applied_pos and not history.applied_acct:
        return
    state, snapshots = run_worker(history, params)
    state, closed = close_through(state, BASE_DAY + n_days + 3, params)
    check_snapshots(history, snapshots + closed, params)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n_days=st.integers(20, 140))
def test_auto_close_when_the_worker_never_closes(seed: int, n_days: int) -> None:
    params = FeatureParams()
    history = random_history(random.Random(seed), n_days, params.lateness_days, late_prob=0)
    state: MerchantState | None = None
    snapshots: list[DaySnapshot] = []
    for source, event in history.arrivals:
        state, result = apply(state, source, event, params)
        snapshots += result.closed
    assert state is not None
    assert state.max_day - state.next_day_to_close <= 9
    state, closed = close_through(state, BASE_DAY + n_days, params)
    check_snapshots(history, snapshots + closed, params)


@FAST
@given(seed=st.integers(0, 2**32 - 1), n_days=st.integers(10, 100), params=PARAMS)
def test_arrival_order_within_lateness_does_not_matter(
    seed: int, n_days: int, params: FeatureParams
) -> None:
    rng = random.Random(seed)
    history = random_history(rng, n_days, params.lateness_days, duplicate_prob=0, late_prob=0)
    shuffled = History(applied_pos=history.applied_pos, applied_acct=history.applied_acct)
    delayed = [
        (e[0] + rng.uniform(0, params.lateness_days + 0.99), src, e) for src, e in history.arrivals
    ]
    shuffled.arrivals = [(src, e) for _, src, e in sorted(delayed, key=lambda item: item[0])]
    end = BASE_DAY + n_days + 2
    results = []
    for variant in (history, shuffled):
        state, snaps = run_worker(variant, params)
        state, closed = close_through(state, end, params)
        results.append(
            (encode_state(state), [(s.day, s.totals, s.features) for s in snaps + closed])
        )
    assert results[0] == results[1]


@FAST
@given(seed=st.integers(0, 2**32 - 1), n_days=st.integers(10, 120), cut=st.floats(0.1, 0.9))
def test_encode_and_pickle_round_trip_mid_stream(seed: int, n_days: int, cut: float) -> None:
    params = FeatureParams()
    history = random_history(random.Random(seed), n_days, params.lateness_days)
    split = int(len(history.arrivals) * cut)
    first = History(arrivals=history.arrivals[:split])
    rest = History(arrivals=history.arrivals[split:])
    outcomes = []
    for codec in ("none", "encode", "split", "pickle"):
        state, _ = run_worker(first, params) if first.arrivals else (None, [])
        if state is not None and codec == "encode":
            blob = encode_state(state)
            state = decode_state(blob)
            assert encode_state(state) == blob
        elif state is not None and codec == "split":  # the worker's two tables
            blob, ids = encode_state(state, ids=False), encode_ids(state)
            state = decode_state(blob)
            decode_ids(ids, state)
        elif state is not None and codec == "pickle":
            state = pickle.loads(pickle.dumps(state))
        for source, event in rest.arrivals:
            state, _ = apply(state, source, event, params)
        assert state is not None
        state, snaps = close_through(state, BASE_DAY + n_days + 5, params)
        outcomes.append((encode_state(state), [(s.totals, s.features) for s in snaps]))
    assert outcomes[0] == outcomes[1] == outcomes[2] == outcomes[3]


@settings(max_examples=5, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_state_stays_within_2kb_over_long_histories(seed: int) -> None:
    params = FeatureParams()
    history = random_history(random.Random(seed), 400, params.lateness_days, rate=6.0, cards=500)
    state, _ = run_worker(history, params)
    sizes = [len(encode_state(state))]
    state, _ = close_through(state, BASE_DAY + 402, params, with_features=False)
    sizes.append(len(encode_state(state)))
    assert max(sizes) <= 2048, sizes


def test_silent_days_grow_days_since_last_txn() -> None:
    params = FeatureParams()
    history = random_history(random.Random(3), 30, params.lateness_days, late_prob=0)
    state, _ = run_worker(history, params)
    last = max(e[0] for e in history.applied_pos if e[1] == 0)
    state, snaps = close_through(state, last + 40, params)
    silent = [s for s in snaps if s.day > last]
    assert [s.features["days_since_last_txn"] for s in silent] == [
        float(s.day - last) for s in silent
    ]
    assert all(s.totals.event_count == 0 for s in silent if s.day > BASE_DAY + 33)
    assert silent[-1].features["txn_count_30d"] == 0
