"""The local-broker workarounds of streams/compat.py that need no broker."""

from __future__ import annotations

import asyncio

import faust
import pytest
from pydantic import ValidationError

from schemas.settings import Settings
from streams import compat


def _worker_consumer_wait() -> int:
    async def build() -> int:
        app = faust.App("compat-test", broker="kafka://127.0.0.1:9")
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()  # never started: releases what the constructor made

    return asyncio.run(build())


def test_the_fetch_wait_reaches_fausts_worker_consumer() -> None:
    assert compat.FAUST_FETCH_MAX_WAIT_MS == 1500
    compat.install_fetch_max_wait(250)
    try:
        assert _worker_consumer_wait() == 250
        compat.install_fetch_max_wait(80)  # a second call changes the wait, no double wrap
        assert _worker_consumer_wait() == 80
    finally:
        compat.install_fetch_max_wait(compat.FAUST_FETCH_MAX_WAIT_MS)
    assert _worker_consumer_wait() == compat.FAUST_FETCH_MAX_WAIT_MS


def test_the_fetch_wait_setting_is_checked() -> None:
    assert Settings().consumer_fetch_max_wait_ms == compat.FAUST_FETCH_MAX_WAIT_MS
    assert Settings(consumer_fetch_max_wait_ms=250).consumer_fetch_max_wait_ms == 250
    with pytest.raises(ValidationError, match="consumer_fetch_max_wait_ms"):
        Settings(consumer_fetch_max_wait_ms=0)
