"""`merchant-monitor topics`: create or list the project's topics on any Kafka cluster."""

from __future__ import annotations

import click

from schemas.settings import Settings
from schemas.topics import TOPICS
from streams.broker import create_topics


@click.group("topics")
def command() -> None:
    """The project's topics on the broker at MONITOR_BROKER_URL."""


@command.command("create")
@click.pass_obj
def create(settings: Settings) -> None:
    """Create missing topics with MONITOR_PARTITIONS partitions; existing ones are kept."""
    created = create_topics(
        settings.bootstrap_servers,
        settings.partitions,
        replication_factor=settings.replication_factor,
    )
    click.echo(f"created {len(created)} topic(s): {', '.join(created) or 'none missing'}")


@command.command("list")
def list_topics() -> None:
    """Print the topic catalogue: name, direction, payload model, cleanup policy."""
    for spec in TOPICS:
        policy = "compact" if spec.compacted else "delete"
        click.echo(f"{spec.name:28} {spec.direction:7} {spec.model.__name__:20} {policy}")
