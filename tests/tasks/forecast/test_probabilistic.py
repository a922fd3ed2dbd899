"""Interval and quantile scores against closed forms."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from rnnkit.errors import ConfigError, ShapeError
from rnnkit.tasks.forecast.probabilistic import (check_levels, coverage, crps_from_quantiles, interval_width,
                                                 pinball, quantile_scores, weighted_quantile_loss)


def test_coverage_and_width_count_by_hand():
    y = np.array([[[0.0], [1.0], [2.0], [3.0]]])  # (1, 4, 1)
    lo, hi = np.full_like(y, 0.5), np.full_like(y, 2.0)
    assert coverage(y, lo, hi) == 0.5  # 1 and 2 inside, 2 on the closed upper end
    assert interval_width(lo, hi) == 1.5


def test_pinball_of_a_point_by_hand():
    y = np.array([1.0, 3.0])
    f = np.array([[2.0, 2.0], [2.0, 2.0]])  # two levels, the same forecast 2
    # level 0.1: e = -1 -> 0.9; e = 1 -> 0.1; mean 0.5. level 0.9: e=-1 -> 0.1, e=1 -> 0.9: 0.5
    np.testing.assert_allclose(pinball(y, f, [0.1, 0.9]), [0.5, 0.5])
    assert weighted_quantile_loss(y, f, [0.1, 0.9]) == pytest.approx(2 * (1.0 + 1.0) / (2 * 4.0))


N = NormalDist()
ppf = np.vectorize(N.inv_cdf)
cdf = np.vectorize(N.cdf)
pdf = np.vectorize(N.pdf)


def test_crps_from_many_gaussian_quantiles_matches_the_closed_form():
    levels = (np.arange(999) + 0.5) / 999  # (0, 1) evenly, midpoints
    sigma, mu = 2.0, 1.0
    y = np.array([-1.5, 0.3, 1.0, 4.0])
    f = np.broadcast_to(mu + sigma * ppf(levels), (len(y), len(levels)))
    z = (y - mu) / sigma
    closed = sigma * (z * (2 * cdf(z) - 1) + 2 * pdf(z) - 1 / math.sqrt(math.pi))
    # the midpoint rule over 999 levels: error well below 1e-3 of the score here
    assert crps_from_quantiles(y, f, levels) == pytest.approx(closed.mean(), rel=2e-3)


def test_quantile_scores_pair_central_intervals():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3, 1))
    levels = [0.1, 0.5, 0.9]
    f = np.stack([np.full_like(y, v) for v in ppf(levels)], axis=-1)  # (50, 3, 1, 3)
    s = quantile_scores(y, f, levels)
    assert set(s["intervals"]) == {"80"}
    inside = np.mean((y >= ppf(0.1)) & (y <= ppf(0.9)))
    assert s["intervals"]["80"]["coverage"] == inside
    assert s["intervals"]["80"]["width"] == pytest.approx(2 * ppf(0.9))


def test_bad_levels_and_shapes_are_refused():
    for bad in ([], [0.0, 0.5], [0.5, 0.4], [1.2]):
        with pytest.raises(ConfigError):
            check_levels(bad)
    with pytest.raises(ShapeError):
        pinball(np.zeros(3), np.zeros((3, 1)), [0.1, 0.9])
