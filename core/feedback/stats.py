"""Textbook interval estimates for proportions and their differences (no SciPy needed).

- :func:`wilson_interval`: Wilson (1927) score interval for one proportion.
- :func:`newcombe_interval`: Newcombe (1998) "hybrid score" interval for p1 - p2 (method 10 in
  Newcombe, *Statistics in Medicine* 17:873-890), built from the two Wilson intervals. Stays inside
  [-1, 1] and behaves at 0 % and 100 %; the default for campaign uplift.
- :func:`wald_interval`: the Wald interval for p1 - p2 (method 1 there), for comparison.
- :func:`risk_ratio_interval`: the Katz et al. (1978) log interval for p1 / p2; relative uplift is
  ``ratio - 1``.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def z_value(confidence: float) -> float:
    """The two-sided normal quantile: 1.959964 for 0.95."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for ``successes / n``; None when n is 0."""
    if n <= 0:
        return None
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lower = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds, not rounding noise
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for ``x1/n1 - x2/n2``; None when either group is empty."""
    w1, w2 = wilson_interval(x1, n1, confidence), wilson_interval(x2, n2, confidence)
    if w1 is None or w2 is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = w1, w2
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lower, upper


def wald_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wald interval ``d ± z·sqrt(p1q1/n1 + p2q2/n2)`` for ``x1/n1 - x2/n2``; None when a group is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    z = z_value(confidence)
    p1, p2 = x1 / n1, x2 / n2
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2 - half, p1 - p2 + half


def risk_ratio_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Katz log interval for ``(x1/n1) / (x2/n2)``; None when a count is 0 (the log is undefined)."""
    if min(x1, x2) <= 0 or n1 <= 0 or n2 <= 0:
        return None
    z = z_value(confidence)
    ratio = (x1 / n1) / (x2 / n2)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return ratio * math.exp(-z * se), ratio * math.exp(z * se)


DIFFERENCE_METHODS = {"newcombe": newcombe_interval, "wald": wald_interval}
