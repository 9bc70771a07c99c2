"""Bounded-memory sketches: sliding-window HyperLogLog for distinct cards, gap-length histogram."""

from __future__ import annotations

from math import log

from detectors.features.state import GAP_EDGES, HLL_PAIR_BITS, HLL_PAIR_MASK, HLL_REGISTERS

_HLL_ALPHA = 0.7213 / (1 + 1.079 / HLL_REGISTERS)
_INVERSE_POWERS = tuple(2.0**-rank for rank in range(64))


def hll_estimate(registers: list[int]) -> float:
    """HyperLogLog cardinality from register ranks, with linear counting for small counts.

    >>> hll_estimate([0] * 64)
    0.0
    >>> round(hll_estimate([1] + [0] * 63), 2)  # one card: linear counting is near exact
    1.01
    """
    m = len(registers)
    inverse_sum = sum(map(_INVERSE_POWERS.__getitem__, registers))
    return _estimate(m, inverse_sum, registers.count(0))


def _estimate(m: int, inverse_sum: float, zeros: int) -> float:
    raw = _HLL_ALPHA * m * m / inverse_sum
    if raw <= 2.5 * m and zeros:
        return m * log(m / zeros)
    return raw


def hll_window_registers(
    frontier: list[int], day: int, windows: tuple[int, ...]
) -> list[list[int]]:
    """Register ranks of each window ending at ``day``; prunes pairs older than the largest.

    A register's frontier holds (day, rank) pairs, newest first, with ranks rising as days get
    older (a later pair with a higher rank dominates); a window's rank is that of its oldest
    pair inside the window.
    """
    # A pair lies inside window k when pair >= bounds[k] (pairs are day << 6 | rank).
    bounds = [(day - w + 1) << 6 for w in windows]
    n = len(windows)
    per_window = [[0] * len(frontier) for _ in windows]
    for register, packed in enumerate(frontier):
        if not packed:
            continue
        rest, kept, k, rank, bound = packed, 0, 0, 0, bounds[0]
        while rest:
            pair = rest & HLL_PAIR_MASK
            while pair < bound:
                # This pair and the older ones lie outside window k: its value is settled.
                per_window[k][register] = rank
                k += 1
                if k == n:
                    break
                bound = bounds[k]
            if k == n:
                # Older pairs cannot enter any window of a later close: forget them.
                frontier[register] = packed & ((1 << (HLL_PAIR_BITS * kept)) - 1)
                break
            rank = pair & 63
            rest >>= HLL_PAIR_BITS
            kept += 1
        for i in range(k, n):
            per_window[i][register] = rank
    return per_window


def hll_window_estimates(frontier: list[int], day: int, windows: tuple[int, ...]) -> list[float]:
    """Distinct-card estimates of each window ending at ``day``."""
    m = HLL_REGISTERS
    out = []
    for registers in hll_window_registers(frontier, day, windows):
        zeros = registers.count(0)
        if zeros == m:
            out.append(0.0)
            continue
        out.append(_estimate(m, sum(map(_INVERSE_POWERS.__getitem__, registers)), zeros))
    return out


def gap_quantile(hist: list[int], q: float) -> float:
    """The q-quantile of gap lengths in days (lower/inverted-CDF rule) from the histogram.

    Exact for gaps up to 9 days (one bin per length); inside a wider bin the value is
    interpolated by rank between the bin's smallest and largest length; 365+ reports 365.
    Returns 0.0 when no gap has been seen.

    >>> hist = [0] * len(GAP_EDGES)
    >>> hist[0], hist[1] = 18, 2  # 18 gaps of 1 day, 2 of 2 days
    >>> gap_quantile(hist, 0.5), gap_quantile(hist, 0.95)
    (1.0, 2.0)
    """
    total = sum(hist)
    if not total:
        return 0.0
    target = q * total
    cumulative = 0
    for i, count in enumerate(hist):
        if count and cumulative + count >= target:
            low = GAP_EDGES[i]
            if i + 1 == len(GAP_EDGES):
                return float(low)
            high = GAP_EDGES[i + 1] - 1
            if high == low:
                return float(low)
            fraction = max(target - cumulative, 0.0) / count
            return low + fraction * (high - low)
        cumulative += count
    return float(GAP_EDGES[-1])
