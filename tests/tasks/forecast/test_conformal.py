"""Split-conformal intervals (rnnkit.tasks.forecast.conformal): the quantile against a brute-force
count, its finite-sample guarantee counted exactly, coverage on fresh windows of a known Gaussian
AR(1) process, residuals that are genuinely out of sample, and the run directory's round trip."""

from __future__ import annotations

import json
import math
import shutil
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import rnnkit
from rnnkit import ConfigError, DataConfig, DataError, ModelConfig, RunError, SearchConfig, TrainConfig
from rnnkit.data.series import series_from_frame
from rnnkit.errors import RnnkitWarning
from rnnkit.tasks.forecast.conformal import (Calibration, calibration_origins, conformal_rank, default_spacing,
                                             half_widths, min_windows)
from rnnkit.tasks.forecast.levels import check_interval_levels
from rnnkit.tasks.forecast.rolling import refit_settings
from rnnkit.tasks.forecast.workflow import fit_forecaster

FAST = TrainConfig(epochs=15, batch_size=32, patience=0, seed=0)
SMALL = ModelConfig(cell="gru", hidden_size=6)


# --- the quantile ----------------------------------------------------------------------------------

def _brute_force_half_width(scores, level) -> float:
    """The smallest score q with #{scores <= q} >= (K + 1) a / 100, counted in exact arithmetic."""
    need = Fraction(len(scores) + 1) * Fraction(str(level)) / 100
    for q in sorted(scores):
        if sum(s <= q for s in scores) >= need:
            return q
    return math.inf


@pytest.mark.parametrize("K", [1, 3, 4, 9, 19, 20, 57])
@pytest.mark.parametrize("level", [50, 80, 90, 95, 97.5])
def test_half_width_is_the_brute_force_count(K, level):
    rng = np.random.default_rng(K)
    r = np.abs(rng.normal(size=(K, 3, 2)))
    r[:, 0, 0] = np.round(r[:, 0, 0], 1)  # ties in one column
    expected = np.array([[_brute_force_half_width(list(r[:, h, c]), level) for c in range(2)] for h in range(3)])
    if np.isinf(expected).any():  # too few windows for this level: refused, never a silent max
        assert K < min_windows([level])
        with pytest.raises(ConfigError, match="calibration window"):
            half_widths(r, [level])
    else:
        assert K >= min_windows([level])
        np.testing.assert_array_equal(half_widths(r, [level])[0], expected)


@pytest.mark.parametrize("level", [50, 66.6, 80, 90, 95, 99, 99.9])
def test_min_windows_is_the_fewest_that_bound_the_level(level):
    K = min_windows([level])
    assert conformal_rank(K, level) <= K and (K == 1 or conformal_rank(K - 1, level) > K - 1)
    assert {80: 4, 95: 19, 90: 9, 99: 99, 50: 1}.get(level, K) == K
    assert min_windows([80, 95]) == 19


@pytest.mark.parametrize("K, level", [(4, 80), (19, 80), (19, 95), (30, 90)])
def test_the_finite_sample_guarantee_holds_exactly_over_every_choice_of_test_point(K, level):
    # exchangeability: with K + 1 distinct scores, each equally likely to be the new one, the
    # interval calibrated on the other K covers it with probability in [a, a + 1/(K + 1))
    rng = np.random.default_rng(level)
    for _ in range(20):
        s = rng.exponential(size=K + 1)
        covered = sum(s[i] <= half_widths(np.delete(s, i)[:, None], [level])[0, 0] for i in range(K + 1))
        assert level / 100 <= covered / (K + 1) < level / 100 + 1 / (K + 1)


@pytest.mark.parametrize("bad", [[0], [100], [-5], [50, 50], [float("nan")], ["abc"]])
def test_bad_levels_are_refused(bad):
    with pytest.raises(ConfigError):
        check_interval_levels(bad)
    with pytest.raises(ConfigError):
        SearchConfig(intervals=tuple(bad))
    with pytest.raises(ConfigError):
        check_interval_levels([])  # no levels: SearchConfig's default, no intervals


def test_levels_are_sorted_and_the_windows_checked():
    assert SearchConfig(intervals=(95, 80)).intervals == (80.0, 95.0)
    with pytest.raises(ConfigError, match="at least 19"):
        SearchConfig(intervals=(80, 95), calibration_windows=18)
    for kw in ({"calibration_windows": 5}, {"calibration_spacing": 2}, {"calibration_refit": "first"}):
        with pytest.raises(ConfigError, match="--intervals"):
            SearchConfig(**kw)
    with pytest.raises(ConfigError):
        SearchConfig(intervals=(80,), calibration_refit="sometimes")


def test_origins_end_with_the_fitted_rows_and_spread_up_to_the_horizon():
    np.testing.assert_array_equal(calibration_origins(100, 3, 4, 2), [91, 93, 95, 97])  # 97 + 3 = 100
    assert default_spacing(586, 12, 19) == 12  # a long series: horizons that share no row
    assert default_spacing(120, 12, 19) == 2   # (60 - 12) // 18: the origins stay in the second half
    assert default_spacing(40, 2, 19) == 1 and default_spacing(40, 2, 1) == 1


def test_bands_leave_steps_past_the_calibrated_horizon_empty():
    cal = Calibration.from_residuals(np.arange(12.0).reshape(4, 3, 1), [80], [0, 1, 2, 3], 1)
    (level, lo, hi), = cal.bands(np.zeros((1, 5, 1)))
    np.testing.assert_array_equal(hi[0, :3, 0], [9.0, 10.0, 11.0])  # the 4th smallest of 4 at each step
    np.testing.assert_array_equal(lo[0, :3, 0], -hi[0, :3, 0])
    assert np.isnan(lo[0, 3:]).all() and np.isnan(hi[0, 3:]).all()


# --- calibration by the pipeline -------------------------------------------------------------------

def _ar1(n: int, phi: float = 0.8, sigma: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    e = rng.normal(scale=sigma, size=n + 100)
    y = np.zeros(n + 100)
    for t in range(1, len(y)):
        y[t] = phi * y[t - 1] + e[t]
    return series_from_frame(pd.DataFrame({"y": y[100:] + 10.0}), target="y", source="ar1")


def test_coverage_on_fresh_windows_of_a_gaussian_ar1_is_nominal():
    # 2000 fitted rows, then 4000 fresh one-step test windows of the same process. Conditional on the
    # K calibration errors the coverage is the fraction of the error distribution below the
    # calibrated quantile, Beta-distributed with variance about a(1-a)/(K+2); the W test points add
    # the binomial a(1-a)/W of their count. Tolerance: 4 standard errors of both together (about
    # 0.057 at 80 %, 0.031 at 95 %). One refit ("first") before K = 999 origins keeps this fast.
    K, W = 999, 4000
    data = _ar1(2000 + W)
    dc = DataConfig(lookback=4, horizon=1, val_frac=0.05, test_frac=W / (2000 + W))
    run = fit_forecaster(dc, SMALL, FAST, data=data, quiet=True,
                         search=SearchConfig(intervals=(80, 95), calibration_windows=K, calibration_refit="first"))
    assert run.meta["test_start"] == 2000 and run.calibration.windows == K
    for level in (80, 95):
        a = level / 100
        tol = 4 * math.sqrt(a * (1 - a) / (K + 2) + a * (1 - a) / W)
        got = run.metrics["model"]["intervals"][str(level)]["coverage"]
        assert abs(got - a) < tol, (level, got, tol)
    # and the 80 % half-width is about the Gaussian's 1.2816 sigma (sigma = 1) plus the model's error
    assert 1.2 < run.calibration.widths[0, 0, 0] < 1.6


def test_each_residual_comes_from_a_refit_on_the_rows_before_its_origin():
    data = _ar1(160, seed=1)
    dc = DataConfig(lookback=6, horizon=2, test_frac=0.15)
    run = fit_forecaster(dc, SMALL, FAST, data=data, quiet=True, search=SearchConfig(intervals=(80,)))
    cal = run.calibration
    assert cal.windows == 4 and cal.refit == "each" and cal.origins[-1] + 2 == run.meta["test_start"]
    # origin k's error, made again by hand in this thread: the pipeline fitted on rows[:o_k] only
    # (exactly the same numbers: the refits trained side by side build and train as one thread does)
    dc_refit, search = refit_settings(run)
    values = data.values
    for k in (0, len(cal.origins) - 1):
        o = cal.origins[k]
        sub = series_from_frame(data.frame.iloc[:o].reset_index(drop=True), target="y", source="ar1")
        r = fit_forecaster(dc_refit, run.model_config, run.train_config, data=sub, quiet=True, evaluate=False,
                           search=search)
        pred = r.predict_contexts(values[None, o - 6:o], 2)[0]
        np.testing.assert_array_equal(cal.residuals[k], np.abs(values[o:o + 2, :1] - pred))


def test_refits_use_the_final_settings_and_the_ensemble_size_without_searching():
    data = _ar1(160, seed=2)
    run = fit_forecaster(DataConfig(lookback=6, horizon=2, test_frac=0.15), SMALL, FAST, data=data, quiet=True,
                         search=SearchConfig(ensemble=3))
    run.search = SearchConfig(ensemble=1, auto=True, intervals=(80,))  # as an --auto run that chose 3 members
    dc, search = refit_settings(run)
    assert search == SearchConfig(ensemble=3) and not search.intervals
    assert (dc.lookback, dc.normalise, dc.skip, dc.transform, dc.test_frac) == \
        (6, run.data_config.normalise, run.data_config.skip, run.data_config.transform, 0.0)


def test_a_series_too_short_for_the_windows_is_one_error_before_any_training(monkeypatch):
    from rnnkit.tasks.forecast import fitting

    def no_training(*args, **kwargs):
        raise AssertionError("trained before refusing")
    monkeypatch.setattr(fitting, "fit", no_training)
    data = _ar1(30, seed=3)  # 27 fitted rows: the first of 19 origins one step apart leaves 7 rows
    with pytest.raises(DataError, match="calibration origins") as e:
        fit_forecaster(DataConfig(lookback=6, horizon=2, test_frac=0.1), SMALL, FAST, data=data, quiet=True,
                       search=SearchConfig(intervals=(80, 95)))
    assert "\n" not in str(e.value) and "--calibration-windows" in str(e.value)


# --- the run directory -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    data = _ar1(120, seed=4)
    run = fit_forecaster(DataConfig(lookback=6, horizon=3, test_frac=0.2), SMALL, FAST, data=data, quiet=True,
                         search=SearchConfig(intervals=(80, 90)))
    out = tmp_path_factory.mktemp("conformal") / "run"
    run.save(out, data=data)
    return run, data, out


def test_a_reloaded_run_reproduces_the_intervals_bit_for_bit(saved):
    run, data, out = saved
    again = rnnkit.load_run(out)
    pd.testing.assert_frame_equal(again.forecast(data), run.forecast(data), check_exact=True)
    assert list(run.forecast(data).columns) == ["horizon", "y", "y_lo_80", "y_hi_80", "y_lo_90", "y_hi_90"]
    np.testing.assert_array_equal(again.calibration.widths, run.calibration.widths)
    assert again.evaluate(data) == run.evaluate(data)
    written = _read_csv(out / "forecast.csv")
    np.testing.assert_array_equal(written["y_hi_90"].to_numpy(), run.forecast(data)["y_hi_90"].to_numpy())
    s = run.metrics["model"]["intervals"]
    assert set(s) == {"80", "90"} and s["80"]["width"] <= s["90"]["width"] and len(s["80"]["per_step"]) == 3


def _read_csv(path) -> pd.DataFrame:
    # the values written (shortest round-tripping repr) read back exactly: pandas 3 by default, pandas 2 when asked
    return pd.read_csv(path, **({"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}))


def _damaged(saved, tmp_path, edit):
    _, _, out = saved
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    edit(copy)
    return copy


@pytest.mark.parametrize("edit, needle", [
    (lambda d: (d / "intervals.json").unlink(), "intervals.json: is missing"),
    (lambda d: _edit_json(d, lambda c: c["half_widths"]["90"][0].__setitem__(0, c["half_widths"]["90"][0][0] + 1e-9)), "conformal quantiles"),
    (lambda d: _edit_json(d, lambda c: c.__setitem__("levels", [80, 95])), "search section asks"),
    (lambda d: _edit_json(d, lambda c: c.__setitem__("origins", c["origins"][::-1])), "origins"),
    (lambda d: _edit_json(d, lambda c: c.__setitem__("residuals", [[[-1.0]]])), "residuals"),
], ids=["missing", "a half-width changed", "other levels", "origins", "residuals"])
def test_a_damaged_calibration_is_refused_on_load(saved, tmp_path, edit, needle):
    with pytest.raises(RunError, match=needle):
        rnnkit.load_run(_damaged(saved, tmp_path, edit))


def test_half_widths_never_narrow_from_one_step_to_the_next():
    # each step's conformal quantile, then the running maximum over the steps (a later step's dip
    # below an earlier one's is raised to it; the other steps keep their own quantile)
    rng = np.random.default_rng(3)
    r = np.abs(rng.normal(size=(19, 5, 2))) * np.array([1.0, 0.6, 1.4, 0.9, 1.6])[None, :, None]
    cal = Calibration.from_residuals(r, [80, 95], origins=range(19), spacing=1)
    for i, a in enumerate([80, 95]):
        per_step = np.sort(r, axis=0)[math.ceil(20 * a / 100) - 1]
        for c in range(2):
            assert cal.widths[i, :, c].tolist() == [max(per_step[:h + 1, c]) for h in range(5)]
    assert (cal.widths[0, 1] > np.sort(r, axis=0)[15, 1]).any()  # this draw has a dip to raise
    assert cal.to_dict()["steps"] == "envelope"


def test_a_run_saved_before_the_step_envelope_loads_with_its_per_step_widths(saved, tmp_path):
    run, data, _ = saved

    def per_step(c):  # intervals.json as rnnkit wrote it before: no "steps", each step's own quantile
        del c["steps"]
        r = np.asarray(c["residuals"])
        c["half_widths"] = {k: w.tolist() for k, w in zip(c["half_widths"], half_widths(r, run.calibration.levels))}
    old = rnnkit.load_run(_damaged(saved, tmp_path, lambda d: _edit_json(d, per_step)))
    assert old.calibration.steps == "per-step"
    np.testing.assert_array_equal(old.calibration.widths,
                                  half_widths(run.calibration.residuals, run.calibration.levels))
    assert "steps" not in old.calibration.to_dict()


def test_an_envelope_that_narrows_is_refused_on_load(saved, tmp_path):
    def narrow(c):
        c["residuals"] = None  # nothing to recompute them from: the shape of the widths is checked
        w = c["half_widths"]["80"]
        w[-1][0] = w[0][0] / 2
    with pytest.raises(RunError, match="narrow from one step to the next"):
        rnnkit.load_run(_damaged(saved, tmp_path / "a", lambda d: _edit_json(d, narrow)))
    with pytest.raises(RunError, match="steps 'sideways'"):
        rnnkit.load_run(_damaged(saved, tmp_path / "b", lambda d: _edit_json(d, lambda c: c.__setitem__(
            "steps", "sideways"))))


def test_a_calibration_the_config_does_not_ask_for_is_refused(saved, tmp_path):
    def drop_intervals(d):
        config = json.loads((d / "config.json").read_text())
        config["search"]["intervals"] = []
        (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="asks for no intervals"):
        rnnkit.load_run(_damaged(saved, tmp_path, drop_intervals))


def _edit_json(d, change):
    c = json.loads((d / "intervals.json").read_text())
    change(c)
    (d / "intervals.json").write_text(json.dumps(c))


def test_a_recursive_forecast_past_the_calibrated_horizon_says_so():
    data = _ar1(120, seed=5)
    run = fit_forecaster(DataConfig(lookback=6, horizon=2, test_frac=0.2), SMALL.replace(strategy="recursive"), FAST,
                         data=data, quiet=True, search=SearchConfig(intervals=(80,)))
    with pytest.warns(RnnkitWarning, match="calibrated for 2 step"):
        frame = run.forecast(data, horizon=4)
    assert frame["y_lo_80"].iloc[:2].notna().all() and frame["y_lo_80"].iloc[2:].isna().all()
    assert frame["y"].notna().all()


# --- the command line ------------------------------------------------------------------------------

CLI = ["--lookback", "5", "--horizon", "2", "--epochs", "5", "--hidden", "4", "--quiet"]


def test_cli_fit_writes_the_interval_columns_and_forecast_evaluate_backtest_show_them(tmp_path, capsys):
    from rnnkit.cli import main
    out = tmp_path / "run"
    assert main(["fit", "builtin:sine", *CLI, "--intervals", "80,95", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "calibrated on 19 rolling origins" in said and "intervals on the test rows: 80 %: coverage" in said
    frame = _read_csv(out / "forecast.csv")
    assert list(frame.columns) == ["step", "horizon", "y", "y_lo_80", "y_hi_80", "y_lo_95", "y_hi_95"]
    assert (frame["y_lo_95"] <= frame["y_lo_80"]).all() and (frame["y_lo_80"] <= frame["y"]).all()
    assert (frame["y"] <= frame["y_hi_80"]).all() and (frame["y_hi_80"] <= frame["y_hi_95"]).all()
    assert main(["forecast", "--run", str(out), "--out", str(tmp_path / "f.csv")]) == 0
    pd.testing.assert_frame_equal(_read_csv(tmp_path / "f.csv"), frame, check_exact=True)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores["model"]["intervals"]) == {"80", "95"}
    assert main(["backtest", "--run", str(out), "--data", "builtin:sine", "--folds", "3"]) == 0
    assert "intervals on the folds: 80 %" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["--intervals", "0"], "strictly between 0 and 100"), (["--intervals", "100"], "strictly between 0 and 100"),
    (["--intervals", "50,50"], "given twice"), (["--intervals", "abc"], "invalid list"),
    (["--intervals", "95", "--calibration-windows", "10"], "at least 19"),
    (["--calibration-windows", "10"], "pass --intervals"),
    (["--intervals", "99"], "calibration origins"),  # 99 windows: far more than the 50-row series holds
], ids=["0", "100", "50,50", "abc", "too few windows", "windows without intervals", "too short"])
def test_cli_refuses_bad_interval_settings_in_one_line(tmp_path, capsys, args, needle):
    from cli_cases import one_line_error
    out = tmp_path / "run"
    err = one_line_error(capsys, ["fit", "builtin:sine", *CLI, *args, "--out", str(out)])
    assert needle in err and not out.exists()


def test_ctrl_c_during_the_calibration_refits_stops_every_one(monkeypatch):
    # the refits (here each an ensemble of 2, trained side by side inside side-by-side refits) would
    # train 100000 epochs; a real SIGINT once any refit has trained 3 must stop all of them within an epoch
    import signal
    import threading
    from rnnkit.tasks.forecast import workflow
    real, epochs, sent = workflow.fit_forecaster, {}, threading.Event()
    main_thread = threading.main_thread().ident

    def refit(dc, mc, tc, evaluate=True, callbacks=(), **kw):
        if evaluate:  # the run itself: as asked
            return real(dc, mc, tc, evaluate=evaluate, callbacks=callbacks, **kw)
        key = object()

        def count(row):
            epochs[key] = row["epoch"]
            if row["epoch"] >= 3 and not sent.is_set():
                sent.set()
                signal.pthread_kill(main_thread, signal.SIGINT)
        return real(dc, mc, tc.replace(epochs=100_000, patience=0), evaluate=False,
                    callbacks=[*callbacks, count], **kw)
    monkeypatch.setattr(workflow, "fit_forecaster", refit)
    with pytest.raises(KeyboardInterrupt):
        refit(DataConfig(lookback=6, horizon=2, test_frac=0.15), SMALL, FAST, data=_ar1(160, seed=6), quiet=True,
              search=SearchConfig(ensemble=2, intervals=(80,)))
    assert sent.is_set() and epochs and max(epochs.values()) < 100_000


def test_auto_leaves_out_lookbacks_the_calibration_refits_have_no_rows_for():
    # --auto with intervals: a candidate the calibration could not refit is not tried (admissible)
    import torch
    from rnnkit.tasks.forecast.search import auto_search

    def admissible(prep):
        if prep.data_config.lookback != 8:
            raise DataError("too long for the refits")
    dc = DataConfig(source="builtin:sunspots", horizon=3, lookback=8)
    *_, record = auto_search(dc, SMALL, FAST, None, torch.float32, 30.0, 1, admissible=admissible)
    assert len(record) > 1 and all("lookback" not in r for r in record[1:])
