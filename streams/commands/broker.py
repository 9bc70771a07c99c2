"""`merchant-monitor broker`: run the local tansu broker and create every topic."""

from __future__ import annotations

import click

from schemas.settings import Settings
from streams.broker import LocalBroker, create_topics


@click.command("broker")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port on 127.0.0.1 [default: the port of MONITOR_BROKER_URL].",
)
@click.pass_obj
def command(settings: Settings, port: int | None) -> None:
    """Run a Kafka-compatible broker (tansu, in memory) on loopback until Ctrl-C.

    Creates every topic with MONITOR_PARTITIONS partitions. Data lives in memory and is gone
    when the broker stops; production uses a real Kafka cluster (see docker-compose.yml).
    """
    if port is None:
        port = int(settings.bootstrap_servers[0].rpartition(":")[2])
    broker = LocalBroker(port=port, log_path=settings.data_dir / "broker.log").start()
    try:
        created = create_topics(broker.bootstrap_servers, settings.partitions)
        click.echo(
            f"broker listening on {broker.url}; created {len(created)} topic(s) "
            f"with {settings.partitions} partitions; Ctrl-C stops it"
        )
        broker.wait()
    except KeyboardInterrupt:
        click.echo("stopping broker")
    finally:
        broker.stop()
