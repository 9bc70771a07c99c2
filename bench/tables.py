"""State per merchant as the worker really keeps it: read back from its tables' changelog topics."""

from __future__ import annotations

from typing import Any

from bench.common import quantile, read_topics

#: The worker's tables (streams/app.py) and what their keys are.
TABLES = {
    "merchant-state": "merchant",
    "merchant-txn-ids": "merchant",
    "detector-state": "merchant",
    "merchant-actions": "merchant",
    "pos-loan-limit": "merchant",
    "merchant-segment": "merchant",
    "manager-queue": "account manager",
}


def changelog_sizes(bootstrap: list[str], app_id: str) -> dict[str, dict[str, Any]]:
    """Per table: keys, value bytes of each key's latest record (p50, p99, max, mean, with the
    key), and every record the changelog holds (how many table writes reached the broker).

    A compacted changelog on a real cluster keeps about one record per key; the count here
    (tansu keeps them all) is the write traffic, which is what replication and recovery pay.
    """
    out: dict[str, dict[str, Any]] = {}
    for table, keyed_by in TABLES.items():
        records = read_topics(bootstrap, [f"{app_id}-{table}-changelog"], idle_ms=1500)
        latest: dict[bytes, int] = {}
        written = 0
        for r in records:
            written += len(r.key or b"") + len(r.value or b"")
            if r.value is None:
                latest.pop(r.key, None)
            else:
                latest[r.key] = len(r.key) + len(r.value)
        sizes = list(latest.values())
        out[table] = {
            "keyed_by": keyed_by,
            "keys": len(sizes),
            "records": len(records),
            "record_bytes": written,
            "p50": quantile(sizes, 0.5) if sizes else None,
            "p99": quantile(sizes, 0.99) if sizes else None,
            "max": max(sizes) if sizes else None,
            "mean": round(sum(sizes) / len(sizes), 1) if sizes else None,
        }
    return out
