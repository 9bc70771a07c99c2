"""Expand the ClickHouse plugin's Grafana macros and variables into parameterised SQL.

Grafana's ClickHouse plugin rewrites ``$__timeFilter(col)``, ``$__fromTime`` and friends before
a query reaches ClickHouse, and Grafana substitutes ``${var:singlequote}``. Outside Grafana (tests,
previews) this module does the same, with every value as a ``{name:Type}`` server-side parameter
instead of text pasted into the SQL; the shape of each expansion follows the plugin's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: The value Grafana gives a variable whose "All" option is selected.
ALL = "$__all"

_CONDITIONAL_ALL = "$__conditionalAll("
_VARIABLE = re.compile(r"\$\{(?P<braced>[A-Za-z_]\w*)(?::(?P<fmt>\w+))?\}|\$(?P<bare>[A-Za-z]\w*)")
_COLUMN_MACRO = re.compile(r"\$__(?P<name>timeFilter_ms|timeFilter|dateFilter|timeInterval)\(")


class MacroError(ValueError):
    """A macro or variable that cannot be expanded (unknown, unbalanced, or All misused)."""


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range and the panel interval, as Grafana passes them."""

    start: datetime
    end: datetime
    interval_s: int = 60

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MacroError("time range bounds must be timezone-aware")
        if self.start > self.end:
            raise MacroError("time range starts after it ends")

    def parameters(self) -> dict[str, Any]:
        """Parameter values of every time macro (only those the SQL uses are sent)."""
        start, end = self.start.astimezone(UTC), self.end.astimezone(UTC)
        return {
            "__from_s": int(start.timestamp()),
            "__to_s": int(end.timestamp()),
            "__from_ms": int(start.timestamp() * 1000),
            "__to_ms": int(end.timestamp() * 1000),
            "__from_date": start.date(),
            "__to_date": end.date(),
            "__interval_s": self.interval_s,
        }


def _arguments(sql: str, open_at: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose ``(`` is at ``open_at``; and its end."""
    depth, quote, args, start = 0, "", [], open_at + 1
    for index in range(open_at, len(sql)):
        char = sql[index]
        if quote:
            if char == quote and sql[index - 1] != "\\":
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:index].strip())
                return args, index + 1
        elif char == "," and depth == 1:
            args.append(sql[start:index].strip())
            start = index + 1
    raise MacroError(f"unbalanced parentheses after position {open_at}")


def _conditional_all(sql: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    """``$__conditionalAll(condition, $var)``: the condition, or ``1=1`` when All is selected."""
    while (at := sql.find(_CONDITIONAL_ALL)) >= 0:
        args, end = _arguments(sql, at + len(_CONDITIONAL_ALL) - 1)
        if len(args) != 2:
            raise MacroError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        name = args[1].removeprefix("$").strip("{}")
        if name not in variables:
            raise MacroError(f"variable {name!r} has no value")
        value = variables[name]
        selected_all = value == ALL or (not isinstance(value, str) and ALL in value)
        sql = sql[:at] + ("1=1" if selected_all else args[0]) + sql[end:]
    return sql


def _column_macros(sql: str) -> str:
    """Macros that take a column: each becomes the plugin's expression with parameters."""
    templates = {
        "timeFilter": "{c} >= toDateTime({{__from_s:Int64}}) "
        "AND {c} <= toDateTime({{__to_s:Int64}})",
        "timeFilter_ms": "{c} >= fromUnixTimestamp64Milli({{__from_ms:Int64}}) "
        "AND {c} <= fromUnixTimestamp64Milli({{__to_ms:Int64}})",
        "dateFilter": "{c} >= toDate({{__from_date:Date}}) AND {c} <= toDate({{__to_date:Date}})",
        "timeInterval": "toStartOfInterval(toDateTime({c}), "
        "INTERVAL {{__interval_s:UInt32}} second)",
    }
    while match := _COLUMN_MACRO.search(sql):
        args, end = _arguments(sql, match.end() - 1)
        if len(args) != 1 or not args[0]:
            raise MacroError(f"$__{match['name']} takes one column, got {args}")
        sql = sql[: match.start()] + templates[match["name"]].format(c=args[0]) + sql[end:]
    return sql


_SCALAR_MACROS = (
    ("$__fromTime_ms", "fromUnixTimestamp64Milli({__from_ms:Int64})"),
    ("$__toTime_ms", "fromUnixTimestamp64Milli({__to_ms:Int64})"),
    ("$__fromTime", "toDateTime({__from_s:Int64})"),
    ("$__toTime", "toDateTime({__to_s:Int64})"),
    ("$__interval_s", "{__interval_s:UInt32}"),
)


def expand(
    sql: str, time_range: TimeRange, variables: Mapping[str, str | Sequence[str]] | None = None
) -> tuple[str, dict[str, Any]]:
    """SQL with macros and variables expanded, and the parameters it needs.

    A variable's value is a string, a list of strings (multi-value), or ``ALL``.

    >>> from datetime import datetime, UTC
    >>> window = TimeRange(datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC))
    >>> text, params = expand(
    ...     "SELECT 1 FROM t WHERE $__timeFilter(ts) AND "
    ...     "$__conditionalAll(region IN (${region:singlequote}), $region)",
    ...     window, {"region": ["east", "west"]})
    >>> for part in text.split(" AND "):
    ...     print(part)
    SELECT 1 FROM t WHERE ts >= toDateTime({__from_s:Int64})
    ts <= toDateTime({__to_s:Int64})
    region IN ({v_region_0:String}, {v_region_1:String})
    >>> sorted(params)
    ['__from_s', '__to_s', 'v_region_0', 'v_region_1']
    """
    variables = dict(variables or {})
    sql = _conditional_all(sql, variables)
    sql = _column_macros(sql)
    for macro, replacement in _SCALAR_MACROS:
        sql = sql.replace(macro, replacement)
    params: dict[str, Any] = {}

    def substitute(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if match["fmt"] not in (None, "singlequote"):
            raise MacroError(f"format :{match['fmt']} of ${name} is not supported")
        if name not in variables:
            raise MacroError(f"unknown macro or variable ${name}")
        value = variables[name]
        if value == ALL or (not isinstance(value, str) and ALL in value):
            raise MacroError(f"${name} is All outside $__conditionalAll")
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            raise MacroError(f"${name} has no value selected")
        if len(values) == 1:
            params[f"v_{name}"] = values[0]
            return f"{{v_{name}:String}}"
        names = [f"v_{name}_{index}" for index in range(len(values))]
        params.update(zip(names, values, strict=True))
        return ", ".join(f"{{{n}:String}}" for n in names)

    sql = _VARIABLE.sub(substitute, sql)
    if "$" in sql:
        raise MacroError(f"unknown macro at ...{sql[sql.index('$') :][:40]}")
    params.update(
        {name: value for name, value in time_range.parameters().items() if f"{{{name}:" in sql}
    )
    return sql, params
