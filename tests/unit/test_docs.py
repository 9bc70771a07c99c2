"""The README stays true to the code: every setting and command is documented."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from schemas.settings import Settings
from streams.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands() -> None:
    head = README[:1200]
    assert "make demo" in head
    assert "make test" in head


def test_every_setting_is_in_the_configuration_table() -> None:
    for name in Settings.model_fields:
        assert f"`MONITOR_{name.upper()}`" in README, f"MONITOR_{name.upper()} undocumented"


def test_every_command_is_listed_in_help_and_readme() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in main.list_commands(None):  # type: ignore[arg-type]
        assert name in result.output
        assert f"| `{name}" in README, f"command {name} missing from the README command table"
