"""The pure helpers of `make quality` (benchmarks/quality/): its measures against closed forms, the
.tsf reader, the horizon rule, the routing of --rnnkit-option settings and the targets table.

Nothing here needs the benchmark's own packages (statsforecast, tslearn, ...) or any data set."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from quality import report, rnnkit_calls, scores, sources  # noqa: E402


def test_seasonal_naive_repeats_the_last_season():
    y = np.arange(1.0, 9.0)  # 1..8
    np.testing.assert_array_equal(scores.seasonal_naive(y, 6, 4), [5, 6, 7, 8, 5, 6])
    np.testing.assert_array_equal(scores.seasonal_naive(y, 3, 1), [8, 8, 8])
    np.testing.assert_array_equal(scores.seasonal_naive(y[:3], 2, 4), [3, 3])  # shorter than a season: last value


def test_naive_drift_extends_the_mean_step():
    np.testing.assert_allclose(scores.naive_drift(np.array([1.0, 3.0, 5.0]), 2), [7.0, 9.0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(scores.naive_drift(np.array([4.0]), 2), [4.0, 4.0])


def test_mase_scale_and_mase():
    y = np.array([1.0, 2.0, 4.0, 7.0])
    assert scores.mase_scale(y, 1) == pytest.approx(2.0, abs=1e-15)  # mean(1, 2, 3)
    assert scores.mase_scale(y, 2) == pytest.approx(4.0, abs=1e-15)  # mean(|4-1|, |7-2|)
    assert scores.mase_scale(y, 4) == pytest.approx(2.0, abs=1e-15)  # not longer than m: lag 1
    assert math.isnan(scores.mase_scale(np.ones(5), 1))  # constant: MASE undefined
    assert scores.mase(np.array([10.0, 12.0]), np.array([11.0, 9.0]), 2.0) == pytest.approx(1.0, abs=1e-15)


def test_smape_in_percent_with_zero_steps():
    assert scores.smape(np.array([100.0]), np.array([110.0])) == pytest.approx(200 * 10 / 210, rel=1e-14)
    assert scores.smape(np.array([0.0, 5.0]), np.array([0.0, 5.0])) == 0.0
    assert scores.smape(np.array([0.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(100.0, rel=1e-14)


def test_relative_geomean_wins_and_worse_than():
    assert scores.relative_geomean([2.0, 0.5], [1.0, 1.0]) == pytest.approx(1.0, rel=1e-14)
    assert scores.relative_geomean([2.0, math.nan, 8.0], [1.0, 1.0, 1.0]) == pytest.approx(4.0, rel=1e-14)
    assert math.isnan(scores.relative_geomean([math.nan], [1.0]))
    table = {"a": [1.0, 2.0, math.nan], "b": [1.0, 1.0, 5.0], "c": [3.0, 3.0, None]}
    assert scores.wins(table) == {"a": 1, "b": 3, "c": 0}  # a tie shares the first series
    assert scores.worse_than([1.0, 3.0, math.nan, 2.0], [2.0, 2.0, 1.0, 2.0]) == 1


def test_rounding_differences_are_ties_not_losses():
    # a seasonal-naive fallback forecast after log + exp differs from seasonal naive in the last bits
    ref, rounded = 0.5484251968503937, 0.5484251968503955
    assert scores.worse_than([rounded], [ref]) == 0
    assert scores.wins({"a": [ref], "b": [rounded]}) == {"a": 1, "b": 1}
    assert scores.worse_than([ref * (1 + 1e-6)], [ref]) == 1  # a real difference, however small, still counts


def test_accuracy_compares_labels_as_strings():
    assert scores.accuracy([1, 2, 2, 1], ["1", "2", "1", "1"]) == 0.75
    with pytest.raises(ValueError, match="one non-zero length"):
        scores.accuracy([1, 2], [1])


def _series_record(name, mase, smape=10.0, failed=(), cpu=0.5):
    methods = {k: {"mase": v, "smape": smape, "cpu_s": cpu,
                   "failure": {"kind": "refused", "message": f"too few rows ({name})"} if k in failed else None}
               for k, v in mase.items()}
    return {"name": name, "m": 1, "horizon": 6, "n": 30, "methods": methods}


def test_summarise_forecasts_over_series():
    recs = [_series_record("s1", {"seasonal naive": 2.0, "AutoETS": 1.0, "rnnkit": 2.0}, failed=("rnnkit",)),
            _series_record("s2", {"seasonal naive": 1.0, "AutoETS": 4.0, "rnnkit": 0.5})]
    s = scores.summarise_forecasts(recs)
    assert s["AutoETS"]["geomean_rel_mase"] == pytest.approx(math.sqrt(0.5 * 4.0), rel=1e-14)
    assert s["rnnkit"]["geomean_rel_mase"] == pytest.approx(math.sqrt(1.0 * 0.5), rel=1e-14)
    assert s["rnnkit"]["mean_mase"] == pytest.approx(1.25, rel=1e-14)
    assert (s["rnnkit"]["failures"], s["AutoETS"]["failures"]) == (1, 0)
    assert (s["AutoETS"]["wins"], s["rnnkit"]["wins"], s["seasonal naive"]["wins"]) == (1, 1, 0)
    assert s["AutoETS"]["worse_than_reference"] == 1


def test_targets_table_reads_the_summaries():
    single = [_series_record(f"s{i}", {"seasonal naive": 1.0, "AutoETS": 0.8, "rnnkit": v})
              for i, v in enumerate([0.5, 0.8, 0.9, 1.2, 0.7])]
    sets = [{"name": n, "methods": {"1-NN DTW": {"accuracy": 0.9}, "rnnkit": {"accuracy": a, "fit_accuracy": f}}}
            for n, a, f in (("A", 0.95, 1.0), ("B", 0.85, 0.9), ("C", 0.9, 0.99), ("D", 1.0, 1.0), ("E", 0.91, 0.97))]
    rows = {r[0]: r[1:] for r in report.targets({"forecast": single, "classify": sets})}
    geo = math.exp(np.mean(np.log([0.5, 0.8, 0.9, 1.2, 0.7])))
    assert rows["single series: defaults, geo-mean relative MASE <= 0.90"] == [f"{geo:.3f} (0 of 5 fits failed)", "yes"]
    assert rows["single series: defaults worse than seasonal naive on at most 1 in 5 series"] == ["1 of 5", "yes"]
    assert rows["classification: defaults at or above 1-NN DTW on at least 4 of the 5 sets"] == ["4 of 5", "yes"]
    assert rows["classification: training accuracy >= 0.95 on every set"] == ["below on B 0.900", "**no**"]
    assert rows["single series: `--auto` geo-mean relative MASE below AutoETS's"][1] == "-"  # no --auto: not judged


def test_parse_tsf_and_horizons():
    text = ("# comment\n@relation M1\n@attribute series_name string\n@frequency yearly\n@horizon 6\n@data\n"
            "T1:1972-01-01 00-00-00:1,2,3.5\nT2:1900-01-01 00-00-00:4,5\n")
    header, rows = sources.parse_tsf(text)
    assert header == {"relation": "M1", "frequency": "yearly", "horizon": "6"}
    assert [(n, s[:4], v.tolist()) for n, s, v in rows] == [("T1", "1972", [1.0, 2.0, 3.5]), ("T2", "1900", [4.0, 5.0])]
    assert sources.horizon_for("monthly", 176) == 18
    assert sources.horizon_for("monthly", 36) == 12  # at most a third of the series
    assert sources.horizon_for("quarterly", 89) == 8


def test_rnnkit_options_reach_the_right_config():
    assert rnnkit_calls.parse_option("lr=0.003") == ("lr", 0.003)
    assert rnnkit_calls.parse_option("cell=gru") == ("cell", "gru")
    assert rnnkit_calls.parse_option("bidirectional=true") == ("bidirectional", True)
    opts = {"lookback": 24, "classify.pool": "mean", "epochs": 7}
    assert rnnkit_calls.job_options("forecast", opts) == {"lookback": 24, "epochs": 7}
    assert rnnkit_calls.job_options("classify", opts) == {"pool": "mean", "epochs": 7}
    (dc, mc, tc, sc), kwargs = rnnkit_calls._configure("forecast", {"cell": "gru", "epochs": 7, "ensemble": 3},
                                                       horizon=6, seasonal_period=1, test_frac=0.0)
    assert (dc.horizon, dc.seasonal_period, dc.test_frac, mc.cell, tc.epochs, sc.ensemble, kwargs) == \
        (6, 1, 0.0, "gru", 7, 3, {})
    (_, mc, hc, tc), _ = rnnkit_calls._configure("classify", {})
    from rnnkit.tasks.classify.config import CLASSIFY_DEFAULTS
    assert (mc, hc, tc) == CLASSIFY_DEFAULTS  # the job's defaults (its ensemble included), not the dataclasses'
    (_, _, hc, _), kwargs = rnnkit_calls._configure("classify", {"classify.ensemble": 1})
    assert hc == CLASSIFY_DEFAULTS[1].replace(ensemble=1) and kwargs == {}
    for bad, why in (({"nope": 1}, "has no setting 'nope'"), ({"forecast.pool": 1}, "forecast job has no setting"),
                     ({"x.lr": 1}, "prefix must be")):
        with pytest.raises(ValueError, match=why):
            rnnkit_calls.job_options("forecast", bad)
    with pytest.raises(ValueError, match="key=value"):
        rnnkit_calls.parse_option("lookback")
