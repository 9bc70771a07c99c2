"""Pacing and progress of the publisher, without a broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from streams.progress import ProgressLine
from streams.sim.publish import Pacer

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def test_rate_limit_spreads_messages() -> None:
    pacer = Pacer(rate_eps=1000.0, compress_minutes=None, event_span=None, event_origin=None)
    began = time.monotonic()
    for sent in range(101):
        pacer.wait(sent, T0)
    assert time.monotonic() - began >= 0.09


def test_compression_maps_event_time_to_wall_time() -> None:
    # One day in 0.01 minutes: an event 6 hours in goes out 0.15 s after the start.
    pacer = Pacer(None, 0.01, timedelta(days=1), T0)
    began = time.monotonic()
    pacer.wait(0, T0)
    assert time.monotonic() - began < 0.05
    pacer.wait(1, T0 + timedelta(hours=6))
    assert time.monotonic() - began >= 0.14


def test_bad_pacing_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_eps"):
        Pacer(0.0, None, None, None)
    with pytest.raises(ValueError, match="span"):
        Pacer(None, 1.0, None, None)


def test_progress_line_has_counts_rate_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    line = ProgressLine("published", "messages", total=1000)
    line.update(250, T0)
    line.update(1000, T0 + timedelta(days=1), final=True)
    err = capsys.readouterr().err
    assert "published 250 / 1,000 messages" in err
    assert "messages/s" in err
    assert "ETA" in err
    assert "event time 2026-01-06 00:00" in err
    quiet = ProgressLine("published", "messages", enabled=False)
    quiet.update(5, final=True)
    assert capsys.readouterr().err == ""
