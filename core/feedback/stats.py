"""Textbook interval estimates for proportions and their differences (no SciPy needed).

- :func:`wilson_interval`: Wilson (1927) score interval for one proportion.
- :func:`newcombe_interval`: Newcombe (1998) "hybrid score" interval for p1 - p2 (method 10 in
  Newcombe, *Statistics in Medicine* 17:873-890), built from the two Wilson intervals. Stays inside
  [-1, 1] and behaves at 0 % and 100 %; the default for campaign uplift.
- :func:`wald_interval`: the Wald interval for p1 - p2 (method 1 there), for comparison.
- :func:`risk_ratio_interval`: the Katz et al. (1978) log interval for p1 / p2; relative uplift is
  ``ratio - 1``.
- :func:`fisher_exact`, :func:`chi_square_independence`, :func:`benjamini_hochberg`: the tests of the segment
  portrait (Fisher's exact test per value, Pearson's chi-square per attribute, false discovery rate control).
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


# ---- tests for the segment portrait ---------------------------------------------------------------

def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test for the 2×2 table ``[[a, b], [c, d]]``.

    The probability, given the margins, of every table at most as likely as the observed one (the
    "minimum likelihood" two-sided rule, as R's ``fisher.test``; a relative tolerance of 1e-7 keeps tables
    tied with the observed one despite rounding)."""
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0 or row1 in (0, n) or col1 in (0, n):
        return 1.0
    low, high = max(0, row1 + col1 - n), min(row1, col1)
    denominator = _log_choose(n, col1)

    def log_p(x: int) -> float:
        return _log_choose(row1, x) + _log_choose(n - row1, col1 - x) - denominator

    observed = log_p(a)
    limit = observed + math.log1p(1e-7)
    total = sum(math.exp(lp) for lp in (log_p(x) for x in range(low, high + 1)) if lp <= limit)
    return min(1.0, total)


def _upper_gamma_regularized(s: float, x: float) -> float:
    """Q(s, x) = Γ(s, x) / Γ(s): a series below x < s + 1, Lentz's continued fraction above (Numerical
    Recipes §6.2)."""
    if x <= 0:
        return 1.0
    log_front = s * math.log(x) - x - math.lgamma(s)
    if x < s + 1:
        term = total = 1.0 / s
        k = s
        for _ in range(10000):
            k += 1
            term *= x / k
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - s
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square distributed with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    return _upper_gamma_regularized(df / 2, statistic / 2)


def chi_square_independence(table) -> tuple[float, int, float]:
    """Pearson's chi-square test of independence of an r×c table of counts (no continuity correction):
    ``(statistic, degrees of freedom, p-value)``. Rows or columns that are all zero are dropped."""
    rows = [list(r) for r in table if sum(r)]
    if not rows:
        return 0.0, 0, 1.0
    keep = [j for j in range(len(rows[0])) if sum(r[j] for r in rows)]
    rows = [[r[j] for j in keep] for r in rows]
    n = sum(map(sum, rows))
    df = (len(rows) - 1) * (len(keep) - 1)
    if df == 0:
        return 0.0, 0, 1.0
    col_totals = [sum(r[j] for r in rows) for j in range(len(keep))]
    statistic = 0.0
    for r in rows:
        row_total = sum(r)
        for j, observed in enumerate(r):
            expected = row_total * col_totals[j] / n
            statistic += (observed - expected) ** 2 / expected
    return statistic, df, chi_square_sf(statistic, df)


def benjamini_hochberg(p_values) -> list[float]:
    """Benjamini–Hochberg (1995) adjusted p-values (q-values) controlling the false discovery rate, in input
    order: ``q_(i) = min over j >= i of p_(j) · m / j``, capped at 1."""
    p = list(p_values)
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted
