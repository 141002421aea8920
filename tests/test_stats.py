"""tasks.classifier.stats: t quantiles, run summaries and paired differences, as properties
checked over many random draws (not single hand-picked examples)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tasks.classifier.stats import paired_difference, summarise, t_quantile

DRAWS = [np.random.default_rng(seed) for seed in range(200)]


def sample(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(2, 40))
    return rng.normal(rng.uniform(0.5, 0.9), rng.uniform(0.001, 0.05), size=n)


def test_t_quantile_matches_scipy_and_decreases_towards_z():
    values = [t_quantile(df) for df in range(1, 501)]
    for df, value in enumerate(values, start=1):
        assert value == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=1e-5), df
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] > 1.959964 and values[-1] == pytest.approx(1.96, abs=0.005)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0)


@pytest.mark.parametrize("rng", DRAWS[:60])
def test_summary_is_the_t_interval_and_moves_with_the_data(rng):
    xs = sample(rng)
    s = summarise(xs)
    assert s.n == len(xs) and s.mean == pytest.approx(xs.mean())
    assert s.std == pytest.approx(xs.std(ddof=1))
    low, high = scipy_stats.t.interval(0.95, len(xs) - 1, loc=xs.mean(),
                                       scale=xs.std(ddof=1) / math.sqrt(len(xs)))
    assert (s.low, s.high) == pytest.approx((low, high), abs=1e-6)
    assert s.low <= s.mean <= s.high and s.high - s.mean == pytest.approx(s.mean - s.low)
    shift, scale = rng.uniform(-1, 1), rng.uniform(0.1, 10)
    moved = summarise(xs * scale + shift)
    assert moved.low == pytest.approx(s.low * scale + shift)
    assert moved.high == pytest.approx(s.high * scale + shift)
    assert summarise(xs[:1]).n == 1 and math.isnan(summarise(xs[:1]).low)


def test_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    trials = 4000
    hits = 0
    for _ in range(trials):
        s = summarise(rng.normal(0.8, 0.02, size=int(rng.integers(2, 12))))
        hits += s.low <= 0.8 <= s.high
    # Binomial(4000, 0.95): sd 0.34 %, so +-1.4 points is over 4 sd either side.
    assert 0.936 <= hits / trials <= 0.964


@pytest.mark.parametrize("rng", DRAWS[60:120])
def test_paired_difference_cancels_what_runs_share(rng):
    base = sample(rng)
    effect = rng.normal(rng.uniform(-0.03, 0.03), 0.005, size=len(base))
    variant = base + effect
    d = paired_difference(variant, base)
    assert (d.mean, d.low, d.high) == pytest.approx(
        (summarise(effect).mean, summarise(effect).low, summarise(effect).high))
    assert d.excludes_zero == (d.low > 0 or d.high < 0)
    # A per-run offset common to both arms (a hard test fold, a lucky seed) changes nothing.
    shared = rng.normal(0, 0.05, size=len(base))
    same = paired_difference(variant + shared, base + shared)
    assert (same.mean, same.low, same.high) == pytest.approx((d.mean, d.low, d.high))
    flipped = paired_difference(base, variant)
    assert (flipped.mean, flipped.low, flipped.high) == pytest.approx((-d.mean, -d.high, -d.low))
    assert flipped.excludes_zero == d.excludes_zero


def test_paired_difference_needs_matching_runs_and_two_of_them():
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([0.8, 0.7], [0.7])
    one = paired_difference([0.8], [0.7])
    assert one.mean == pytest.approx(0.1) and not one.excludes_zero and math.isnan(one.high)
    assert one.as_dict()["high"] is None  # JSON-safe: no NaN in compare.json
