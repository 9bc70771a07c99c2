"""Running a worker as a child process and watching its consumer group catch up."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType

from faust.types import TP
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from schemas.settings import Settings
from streams.compat import probe_end_offsets
from streams.errors import StreamsError

log = logging.getLogger(__name__)


def settings_env(settings: Settings) -> dict[str, str]:
    """The MONITOR_* environment that reproduces ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"MONITOR_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """`merchant-monitor worker` in a child process, stopped gracefully (SIGTERM, then SIGKILL)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **settings_env(self.settings)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # stopped by us (SIGTERM), not by the terminal's Ctrl-C
            )
        return self

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise StreamsError(
                f"the worker exited with status {self._process.returncode}; "
                f"see its log at {self.log_path}"
            )

    def stop(self, timeout_s: float = 60.0) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("worker did not stop in %.0f s; killing it", timeout_s)
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> int | None:
        """SIGKILL, as a crash would end it: no flush, no commit, no goodbye."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        return process.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def consumer_lag(
    bootstrap_servers: list[str], group_id: str, topic_names: Iterable[str]
) -> tuple[int, int]:
    """(records not yet committed by the group, records in the topics) over ``topic_names``."""
    # A consumer that names the group but never subscribes reads its committed offsets
    # without joining it, so watching never disturbs the workers' assignment.
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topic_names
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        reported: Mapping[TopicPartition, int] = consumer.end_offsets(partitions)
        committed = {tp: consumer.committed(tp) for tp in partitions}
        # The local broker reports a partition's end a record batch short (streams/compat.py):
        # without the probe, "everything committed" came true before the last batches were.
        probed = probe_end_offsets(
            bootstrap_servers,
            {TP(tp.topic, tp.partition): end for tp, end in reported.items()},
            log_level=logging.DEBUG,  # called every poll
        )
        ends = {tp: probed[TP(tp.topic, tp.partition)] for tp in reported}
    except KafkaError as exc:
        raise StreamsError(f"cannot read consumer lag from the broker: {exc}") from exc
    finally:
        consumer.close()
    total = sum(ends.values())
    done = sum(min(end, committed[tp] or 0) for tp, end in ends.items())
    return total - done, total


def wait_until_consumed(
    bootstrap_servers: list[str],
    group_id: str,
    topic_names: Iterable[str],
    timeout_s: float,
    on_progress: Callable[[int, int], None] | None = None,
    alive: Callable[[], None] | None = None,
    poll_s: float = 1.0,
) -> None:
    """Wait until the group has committed every record in the topics, or raise on timeout."""
    names = list(topic_names)
    deadline = time.monotonic() + timeout_s
    while True:
        if alive is not None:
            alive()
        lag, total = consumer_lag(bootstrap_servers, group_id, names)
        if on_progress is not None:
            on_progress(total - lag, total)
        if lag == 0 and total > 0:
            return
        if time.monotonic() > deadline:
            raise StreamsError(
                f"the worker did not catch up in {timeout_s:.0f} s ({lag} of {total} left)"
            )
        time.sleep(poll_s)
