"""`merchant-monitor schemas export`: write the JSON Schema files of every topic and table."""

from __future__ import annotations

from pathlib import Path

import click

from schemas.jsonschema import render_all


@click.group("schemas")
def command() -> None:
    """JSON Schema files of every topic payload and warehouse row."""


@command.command("export")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deploy/schemas"),
    show_default=True,
    help="Directory to write into (topics/ and warehouse/ below it).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file is out of date.")
def export(out: Path, check: bool) -> None:
    """Render the schemas; with --check, report files that differ from the code."""
    stale = []
    for name, text in sorted(render_all().items()):
        path = out / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if check and stale:
        raise click.ClickException(
            f"{len(stale)} schema file(s) out of date: {', '.join(stale)}; run `make schemas`"
        )
    click.echo(f"{len(stale)} file(s) {'stale' if check else 'written'} under {out}")
