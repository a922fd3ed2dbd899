"""The forecast as torch modules (rnnkit.tasks.export): the pre- and post-processing mirrored from the
NumPy code around a traceable copy of the network must give ``ForecastRun.predict_contexts``'s
forecasts. Checked in float64, before any export: the same operations in another order (sums over a
window, a median), so they agree to a few ulps of the forecasts; 1e-11 relative leaves a wide margin
and still catches any wrong index, sign or scale (those are O(1) errors). No ONNX needed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from export_cases import contexts, make_run, rel_diff
from rnnkit import ConfigError
from rnnkit.data.calendar import calendar_features
from rnnkit.tasks.export.graphs import ForecastGraph, StepGraph, median, quantile_median
from rnnkit.tasks.export.traceable import Unrolled, should_unroll, traceable


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


CASES = {
    "window, seasonal skip, log": {},
    "last-value skip": dict(skip="last"),
    "drift skip": dict(skip="drift", transform="none"),
    "window without skip": dict(skip="none", transform="none"),
    "global scaling only": dict(normalise="none", skip="none", transform="none"),
    "standard scaler, Box-Cox": dict(scaler="standard", transform="boxcox"),
    "first differences": dict(difference="first", skip="none"),
    "seasonal differences": dict(difference="seasonal", skip="none"),
    "recursive, window": dict(strategy="recursive", skip="none"),
    "recursive, global, log": dict(strategy="recursive", normalise="none", skip="none", transform="log"),
    "jordan": dict(cell="jordan"),
    "gru, 2 layers": dict(cell="gru", num_layers=2),
    "elman, bidirectional": dict(cell="elman", bidirectional=True),
    "covariates": dict(source="builtin:macro", targets=("realgdp",), covariates=("unemp", "cpi"), lookback=8),
    "two targets, global": dict(source="builtin:macro", targets=("realgdp", "realcons"), lookback=8,
                                normalise="none", skip="none"),
}


@pytest.mark.parametrize("settings", list(CASES.values()), ids=list(CASES))
def test_the_graph_forecasts_what_rnnkit_forecasts_in_float64(settings):
    run = make_run(**settings)
    X = contexts(run)
    # the trained horizon, and beyond it (direct models then feed their forecasts back, block by block)
    for H in (run.data_config.horizon, 2 * run.data_config.horizon + 1) if not run.data_config.covariates else (6,):
        for unroll in (False, True):  # torch's kernels (float32 exports) or the unrolled loop (float64 ones)
            with torch.no_grad():
                got = ForecastGraph(run, H, unroll=unroll)(torch.tensor(X)).numpy()
            assert got.shape == (len(X), H, len(run.targets))
            assert rel_diff(got, run.predict_contexts(X, H)) < 1e-11


@pytest.mark.parametrize("ensemble, lookbacks", [(3, ()), (4, ()), (3, (24, 12, 36))],
                         ids=["median of 3", "median of 4", "three lookbacks"])
def test_ensembles_forecast_their_median(ensemble, lookbacks):
    run = make_run(ensemble=ensemble, lookbacks=lookbacks)
    X = contexts(run)
    with torch.no_grad():
        got = ForecastGraph(run)(torch.tensor(X)).numpy()
    assert rel_diff(got, run.predict_contexts(X, 6)) < 1e-11


def test_other_context_lengths_read_as_rnnkit_reads_them():
    run = make_run(cell="gru", skip="drift", transform="none")
    for L in (13, 40):  # the graph's time axis is dynamic for torch's cells
        X = contexts(run, length=L)
        with torch.no_grad():
            got = ForecastGraph(run)(torch.tensor(X)).numpy()
        assert rel_diff(got, run.predict_contexts(X, 6)) < 1e-11


def test_medians_are_numpys_and_torchs():
    rng = np.random.default_rng(0)
    for n in range(1, 6):
        outs = [torch.tensor(rng.standard_normal((3, 4))) for _ in range(n)]
        np.testing.assert_allclose(median(outs).numpy(), np.median(np.stack([o.numpy() for o in outs]), axis=0),
                                   rtol=0, atol=1e-15)
        np.testing.assert_allclose(quantile_median(outs).numpy(), torch.quantile(torch.stack(outs), 0.5, dim=0),
                                   rtol=0, atol=1e-15)


def test_the_traceable_copy_runs_torch_kernels_or_the_unrolled_loop_and_leaves_the_model_alone():
    for cell, kernel in (("lstm", True), ("gru", True), ("elman", True), ("jordan", False)):
        run = make_run(cell=cell, num_layers=2)
        twin = traceable(run.model)
        assert should_unroll(run.model)  # float64: onnxruntime has no float64 LSTM, GRU or RNN nodes
        assert should_unroll(copy.deepcopy(run.model).float()) is not kernel
        assert isinstance(twin.rnn, Unrolled) is not kernel
        assert not kernel or twin.rnn.backend == "torch"
        assert isinstance(traceable(run.model, unroll=True).rnn, Unrolled)
        assert run.model.rnn.backend == "auto" and all(p.requires_grad for p in run.model.parameters())
        x = torch.tensor(contexts(run)[:, :, :1])
        state, state_twin = run.model.init_state(len(x)), None
        for t in range(3):  # the twin's step (the unrolled or torch loop) is the model's (native) step
            y, state = run.model.step(x[:, t], state)
            y_twin, state_twin = twin.step(x[:, t], state_twin)
            torch.testing.assert_close(y_twin, y, rtol=1e-12, atol=1e-12)


LEVEL_CASES = {
    "quantiles, window, seasonal skip, log": dict(quantiles=(0.1, 0.5, 0.9)),
    "quantiles, centre lowest, standard scaler, Box-Cox": dict(quantiles=(0.5, 0.75), scaler="standard",
                                                               transform="boxcox"),
    "normal, drift skip": dict(distribution="normal", skip="drift", transform="none"),
    "normal, global, two targets": dict(distribution="normal", source="builtin:macro",
                                        targets=("realgdp", "realcons"), lookback=8, normalise="none", skip="none"),
}


@pytest.mark.parametrize("settings", list(LEVEL_CASES.values()), ids=list(LEVEL_CASES))
def test_quantile_and_distribution_heads_forecast_every_level(settings):
    run = make_run(**settings)
    X = contexts(run)
    for H in (run.data_config.horizon, 2):
        with torch.no_grad():
            got = ForecastGraph(run, H)(torch.tensor(X)).numpy()
        assert got.shape == (len(X), H, len(run.targets), len(run.levels))
        assert rel_diff(got, run.predict_contexts(X, H, all_levels=True)) < 1e-11
    with pytest.raises(ConfigError, match="trained horizon"):  # a level fed back as the value means nothing
        ForecastGraph(run, run.data_config.horizon + 1)


def test_in_float64_a_calendar_graph_is_rnnkits_forecast():
    """Future covariates and calendar features: the graph's ``future`` and ``calendar`` inputs (the
    calendar features of the window's stamps) give rnnkit's own forecast of a window inside the data
    (its known inputs from the data, ``run.known``), to float64 rounding."""
    run = make_run(source="builtin:macro", targets=("realgdp",), future_covariates=("unemp",), calendar="sincos",
                   lookback=8)
    data = run.load_data()
    graph = ForecastGraph(run)
    L, H, start = 8, 6, len(data) - 10
    assert graph.n_calendar == 2 and graph.future_rows == H  # quarter of year, sin and cos
    ref = run.predict_contexts(data.values[None, start - L:start], H, run.known(data, [start]))
    unemp = data.values[start:start + H, list(run.columns).index("unemp")]
    calendar = calendar_features(data.frame.index[start - L:start + H], data.freq, "sincos")[0]
    with torch.no_grad():
        got = graph(torch.tensor(data.values[None, start - L:start]), torch.tensor(unemp[None, :, None]),
                    torch.tensor(calendar[None])).numpy()
    assert rel_diff(got, ref) < 1e-12


def test_a_step_graph_needs_one_input_for_every_member():
    run = make_run(ensemble=2, lookbacks=(24, 12))
    with pytest.raises(ConfigError, match="different lookbacks"):
        StepGraph(run.model)


def test_a_bidirectional_network_has_no_step_graph():
    with pytest.raises(ConfigError, match="no streaming step"):
        StepGraph(make_run(cell="gru", bidirectional=True).model)
