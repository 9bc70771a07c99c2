"""The scenario file: the built-in default, partial files merged over it, clear errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from streams.errors import InputFileError
from streams.sim import TRAJECTORIES, Scenario
from streams.sim.calendar import SPRING_FESTIVAL, festival_offsets


def test_default_is_a_demo_size() -> None:
    scenario = Scenario.default()
    assert (scenario.population.merchants, scenario.population.days) == (500, 60)
    shares = [getattr(scenario.trajectories, name).share for name in TRAJECTORIES]
    assert sum(shares) == pytest.approx(1.0)


def test_resized_overrides_only_the_size() -> None:
    scenario = Scenario.default().resized(merchants=30, days=20)
    assert (scenario.population.merchants, scenario.population.days) == (30, 20)
    assert scenario.industries == Scenario.default().industries
    assert Scenario.default().resized() == Scenario.default()


def test_partial_file_is_merged_over_the_default(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(
        'name = "small"\n[population]\nmerchants = 42\n[industries.catering]\nticket_cny = 75.0\n',
        encoding="utf-8",
    )
    scenario = Scenario.load(path)
    assert scenario.name == "small"
    assert scenario.population.merchants == 42
    assert scenario.population.days == 60
    assert scenario.industries.catering.ticket_cny == 75.0
    assert scenario.industries.catering.mcc == Scenario.default().industries.catering.mcc


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[population]\nmerchant = 5\n", "population.merchant"),
        ("[population]\nmerchants = 0\n", "population.merchants"),
        (
            "[industries.catering]\nweekday_profile = [1, 2]\n",
            "industries.catering.weekday_profile",
        ),
        ("[trajectories.stable]\nshare = 0.9\n", "trajectory shares must sum to 1"),
        ("[trajectories.growth]\nonset = [0.5, 0.1]\n", "trajectories.growth.onset"),
        ("[industries.manufacturing.card_mix]\ndebit = 0.9\n", "card_mix shares"),
        ('[population]\ntimezone = "Mars/Olympus"\n', "population.timezone"),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputFileError, match=named.replace(".", r"\.")) as info:
        Scenario.load(path)
    assert str(path) in str(info.value)


def test_unreadable_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        Scenario.load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[population\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="not valid TOML"):
        Scenario.load(broken)


def test_window_must_be_inside_the_festival_table() -> None:
    with pytest.raises(InputFileError, match="Spring Festival table"):
        Scenario.default().starting(date(2040, 1, 1))


def test_festival_dates_and_offsets() -> None:
    assert SPRING_FESTIVAL[2024] == date(2024, 2, 10)
    assert SPRING_FESTIVAL[2025] == date(2025, 1, 29)
    assert SPRING_FESTIVAL[2026] == date(2026, 2, 17)
    assert SPRING_FESTIVAL[2027] == date(2027, 2, 6)
    assert SPRING_FESTIVAL[2028] == date(2028, 1, 26)
    offsets = festival_offsets(date(2026, 2, 15), 5)
    assert offsets.tolist() == [-2, -1, 0, 1, 2]
