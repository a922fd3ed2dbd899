"""Log and Box-Cox target transforms: exact inverses, Guerrero's lambda, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit import ConfigError, DataError
from rnnkit.data.boxcox import TargetTransform, guerrero_lambda

rng = np.random.default_rng(1)


@pytest.mark.parametrize("name, lam", [("none", 1.0), ("log", 0.0), ("boxcox", 0.5), ("boxcox", -0.3), ("boxcox", 1.7)])
def test_inverse_is_exact(name, lam):
    tr = TargetTransform(name, lam)
    y = rng.uniform(0.5, 500.0, size=(40, 2))
    np.testing.assert_allclose(tr.inverse(tr.forward(y)), y, rtol=1e-12)
    if name == "boxcox":  # the closed form
        np.testing.assert_allclose(tr.forward(y), (y ** lam - 1) / lam, rtol=1e-14)


def test_guerrero_lambda_finds_multiplicative_and_additive_seasons():
    t = np.arange(240)
    season = np.sin(2 * np.pi * t / 12)
    multiplicative = np.exp(3 + 0.01 * t) * (1 + 0.3 * season)
    additive = 100 + 0.5 * t + 10 * season
    assert guerrero_lambda(multiplicative, 12) < 0.3
    assert guerrero_lambda(additive, 12) > 0.7


def test_auto_chooses_log_only_for_positive_growing_spread():
    t = np.arange(120)
    grows = (np.exp(2 + 0.02 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)))[:, None]
    assert TargetTransform.choose("auto", grows, 12) == TargetTransform("log", 0.0)
    assert TargetTransform.choose("auto", grows - grows.mean(), 12) == TargetTransform()  # not positive
    assert TargetTransform.choose("auto", (50 + np.sin(t))[:, None], 12) == TargetTransform()


def test_refusals():
    with pytest.raises(DataError, match="positive"):
        TargetTransform.choose("log", np.array([[1.0], [-2.0]]), 1)
    with pytest.raises(DataError, match="positive"):
        TargetTransform("log", 0.0).forward(np.array([3.0, 0.0]))
    with pytest.raises(ConfigError, match="unknown target transform"):
        TargetTransform.choose("sqrt", np.ones((3, 1)), 1)
    for name, lam in [("log", 0.5), ("none", 0.0), ("boxcox", float("nan")), ("auto", 1.0)]:
        with pytest.raises(ConfigError):
            TargetTransform(name, lam)
