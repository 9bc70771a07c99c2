"""Alert thresholds, shared by the alert rules and the panels that draw them as lines."""

from __future__ import annotations

#: Consumer lag (records behind, summed over a worker's partitions) that pages the on-call when it
#: lasts PIPELINE_LAG_FOR: at the measured ~11k events/s of one worker, about 5 s of work.
PIPELINE_LAG_MAX_RECORDS = 50_000
PIPELINE_LAG_FOR = "5m"
#: Dead letters of one source topic in the last DEAD_LETTER_WINDOW_MIN minutes that count as
#: growth when also DEAD_LETTER_GROWTH_FACTOR times the average of the 24 hours before.
DEAD_LETTER_WINDOW_MIN = 15
DEAD_LETTER_MIN_COUNT = 20
DEAD_LETTER_GROWTH_FACTOR = 3.0
#: New dormancy alerts of one grid in 24 hours that count as a surge when also
#: DORMANCY_SURGE_FACTOR times the grid's daily average of the 28 days before.
DORMANCY_SURGE_MIN_ALERTS = 3
DORMANCY_SURGE_FACTOR = 3.0
DORMANCY_BASELINE_DAYS = 28
#: How far back a "new" high-severity credit alert may have turned high (one evaluation interval
#: plus slack, so a late-arriving alert is still caught once).
CREDIT_ALERT_WINDOW_MIN = 10
