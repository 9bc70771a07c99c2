"""Pipeline health: consumer lag, throughput, dead letters and warehouse freshness."""

from __future__ import annotations

from dashboards.common import (
    Dashboard,
    Format,
    Query,
    sql,
    stat,
    table,
    thresholds,
    timeseries,
)
from dashboards.thresholds import PIPELINE_LAG_MAX_RECORDS
from schemas.dashboard_rows import PipelineMetric

UID = "mm-pipeline"
LAG = PipelineMetric.CONSUMER_LAG.value
THROUGHPUT = PipelineMetric.EVENTS_PER_S.value
BUFFER = PipelineMetric.SINK_BUFFER_ROWS.value

#: The latest sample of each partition's lag in the last 5 minutes of the range; the latest
#: worker to report a partition wins, so a rebalance does not count a partition twice.
_LATEST_LAG = """
    SELECT partition, argMax(value, ts) AS lag
    FROM pipeline_metrics FINAL
    WHERE metric = '@LAG@' AND partition >= 0
        AND ts > $__toTime - INTERVAL 5 MINUTE AND ts <= $__toTime
    GROUP BY partition
"""

LAG_NOW = stat(
    "Consumer lag now",
    "Records not yet processed, summed over partitions (latest sample of the last 5 minutes of "
    "the range). Question: is the pipeline keeping up? For: platform on-call.",
    Query(
        sql("SELECT sum(lag) AS consumer_lag FROM (@LATEST@)", LATEST=_LATEST_LAG, LAG=LAG),
        columns=("consumer_lag",),
    ),
    steps=thresholds((PIPELINE_LAG_MAX_RECORDS / 5, "orange"), (PIPELINE_LAG_MAX_RECORDS, "red")),
)

THROUGHPUT_NOW = stat(
    "Throughput now",
    "Events per second over all workers (latest sample of each in the last 5 minutes of the "
    "range). For: platform on-call.",
    Query(
        sql(
            """
            SELECT sum(rate) AS events_per_s
            FROM
            (
                SELECT worker, argMax(value, ts) AS rate
                FROM pipeline_metrics FINAL
                WHERE metric = '@THROUGHPUT@'
                    AND ts > $__toTime - INTERVAL 5 MINUTE AND ts <= $__toTime
                GROUP BY worker
            )
            """,
            THROUGHPUT=THROUGHPUT,
        ),
        columns=("events_per_s",),
    ),
    unit="ops",
)

DEAD_LETTERS = stat(
    "Dead letters in range",
    "Records that could not be processed and went to the dead-letter topic. Question: is bad "
    "input arriving? For: platform on-call, data owners of the source systems.",
    Query(
        sql(
            "SELECT count() AS dead_letters FROM dead_letters FINAL "
            "WHERE $__timeFilter(received_at)"
        ),
        columns=("dead_letters",),
    ),
    steps=thresholds((1, "orange"), (1000, "red")),
)

FRESHNESS = stat(
    "Warehouse freshness",
    "Seconds from the newest merchant-day write to the end of the range. Question: are the "
    "dashboards showing current data? For: platform on-call, risk desk.",
    Query(
        sql(
            """
            SELECT dateDiff('second', max(inserted_at), $__toTime) AS seconds_since_last_write
            FROM merchant_daily
            WHERE day >= @END_DAY@ - 7 AND inserted_at <= $__toTime
            """
        ),
        columns=("seconds_since_last_write",),
    ),
    unit="s",
    steps=thresholds((300, "orange"), (900, "red")),
)

LAG_BY_WORKER = timeseries(
    "Consumer lag by worker",
    "Records behind per worker (summed over its partitions), the worst sample per interval; the "
    f"dashed line is the alert threshold ({PIPELINE_LAG_MAX_RECORDS:,} records). For: platform "
    "on-call.",
    Query(
        sql(
            """
            SELECT time, worker, max(lag) AS consumer_lag
            FROM
            (
                SELECT $__timeInterval(ts) AS time, worker, ts, sum(value) AS lag
                FROM pipeline_metrics FINAL
                WHERE metric = '@LAG@' AND partition >= 0 AND $__timeFilter(ts)
                GROUP BY time, worker, ts
            )
            GROUP BY time, worker
            ORDER BY time, worker
            """,
            LAG=LAG,
        ),
        columns=("time", "worker", "consumer_lag"),
        format=Format.TIME_SERIES,
    ),
    steps=thresholds((PIPELINE_LAG_MAX_RECORDS, "red")),
)

THROUGHPUT_BY_WORKER = timeseries(
    "Throughput by worker",
    "Events processed per second per worker, averaged per interval. For: platform on-call.",
    Query(
        sql(
            """
            SELECT $__timeInterval(ts) AS time, worker, avg(value) AS events_per_s
            FROM pipeline_metrics FINAL
            WHERE metric = '@THROUGHPUT@' AND $__timeFilter(ts)
            GROUP BY time, worker
            ORDER BY time, worker
            """,
            THROUGHPUT=THROUGHPUT,
        ),
        columns=("time", "worker", "events_per_s"),
        format=Format.TIME_SERIES,
    ),
    unit="ops",
)

DEAD_LETTERS_BY_REASON = timeseries(
    "Dead letters by reason",
    "Dead letters per interval by reason (invalid_json, validation, key_mismatch, oversized, "
    "late, empty). Question: what kind of bad input, and since when? For: platform on-call.",
    Query(
        sql(
            """
            SELECT $__timeInterval(received_at) AS time, reason, count() AS dead_letters
            FROM dead_letters FINAL
            WHERE $__timeFilter(received_at)
            GROUP BY time, reason
            ORDER BY time, reason
            """
        ),
        columns=("time", "reason", "dead_letters"),
        format=Format.TIME_SERIES,
    ),
    bars=True,
    stacked=True,
)

SINK_BUFFER = timeseries(
    "Warehouse sink buffer",
    "Rows waiting in each worker's warehouse sink; a buffer that only grows means the warehouse "
    "is slow or unreachable (back-pressure). For: platform on-call.",
    Query(
        sql(
            """
            SELECT $__timeInterval(ts) AS time, worker, max(value) AS buffered_rows
            FROM pipeline_metrics FINAL
            WHERE metric = '@BUFFER@' AND $__timeFilter(ts)
            GROUP BY time, worker
            ORDER BY time, worker
            """,
            BUFFER=BUFFER,
        ),
        columns=("time", "worker", "buffered_rows"),
        format=Format.TIME_SERIES,
    ),
)

LATEST_DEAD_LETTERS = table(
    "Latest dead letters",
    "The newest dead letters with their source position and error (payload snippets stay in "
    "the table, card-number-like digits masked). Question: which record failed, and why? For: "
    "platform on-call.",
    Query(
        sql(
            """
            SELECT received_at, source_topic, partition, offset, reason,
                substring(error, 1, 300) AS error, key
            FROM dead_letters FINAL
            WHERE $__timeFilter(received_at)
            ORDER BY received_at DESC, source_topic, partition, offset
            LIMIT 200
            """
        ),
        columns=("received_at", "source_topic", "partition", "offset", "reason", "error", "key"),
    ),
)


def build() -> Dashboard:
    """The pipeline-health dashboard."""
    return Dashboard(
        uid=UID,
        title="Merchant Monitor · Pipeline health",
        description="Is the streaming pipeline keeping up? Consumer lag, throughput, dead letters "
        "and how fresh the warehouse is.",
        module=__name__,
        panels=(
            LAG_NOW,
            THROUGHPUT_NOW,
            DEAD_LETTERS,
            FRESHNESS,
            LAG_BY_WORKER,
            THROUGHPUT_BY_WORKER,
            DEAD_LETTERS_BY_REASON,
            SINK_BUFFER,
            LATEST_DEAD_LETTERS,
        ),
        time_from="now-6h",
        refresh="1m",
    )
