"""Statistics for repeated classifier runs: mean, spread, 95 % intervals, paired differences.

    summarise([0.77, 0.78, 0.76])             -> Summary(n, mean, std, low, high, method)
    paired_difference(variant, baseline)      -> Difference(n, mean, std, low, high, excludes_zero)

Intervals are Student-t intervals over runs (mean ± t[0.975, n-1] · s / sqrt(n), s the sample
standard deviation with n - 1 in the denominator): each run (seed, fold) is one observation,
and the paired difference of two variants is taken run by run, on the same seed and fold, so
what every run shares (the test sentences, the initial filters) cancels out. With one run the
interval is undefined (reported as NaN, never as a zero-width interval). No params section.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# Two-sided 95 % Student-t quantiles t[0.975, df] for df = 1..30 (standard tables, 6 places).
T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
        2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
        2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
        2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
Z975 = 1.959964


def t_quantile(df: int) -> float:
    """t[0.975, df]: the table up to 30, then the Cornish-Fisher expansion around z (error
    < 2e-6 beyond df 30)."""
    if df < 1:
        raise ValueError(f"t_quantile: degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z, v = Z975, float(df)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float        # sample standard deviation (n - 1); NaN when n < 2
    low: float        # 95 % t-interval for the mean; NaN when n < 2
    high: float
    method: str = "t"

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Difference(Summary):
    excludes_zero: bool = False  # the interval lies wholly above or below 0


def summarise(values: Sequence[float]) -> Summary:
    """Mean, sample std and the 95 % t-interval of the mean of `values` (>= 1 value)."""
    xs = [float(x) for x in values]
    if not xs:
        raise ValueError("summarise: no values")
    n, mean = len(xs), math.fsum(xs) / len(xs)
    if n < 2:
        return Summary(n, mean, math.nan, math.nan, math.nan)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> Difference:
    """Run-by-run `values[i] - baseline[i]` (same seed and fold), summarised as above."""
    if len(values) != len(baseline):
        raise ValueError(f"paired_difference: {len(values)} runs against {len(baseline)}; "
                         "the runs must pair up one to one")
    s = summarise([a - b for a, b in zip(values, baseline, strict=True)])
    excludes = s.n >= 2 and (s.low > 0 or s.high < 0)
    return Difference(s.n, s.mean, s.std, s.low, s.high, excludes_zero=excludes)
