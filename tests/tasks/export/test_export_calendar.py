"""The forecast graph of a run with calendar features (issue 17): ``calendar`` holds the features of
the context's rows and of the forecast's rows (:func:`rnnkit.data.calendar.calendar_features` of their
time stamps), and the graph forecasts what the run forecasts from the data itself
(``run.forecast(data)``, whose stamps rnnkit computes), for one series (with and without future
covariates, sin/cos and one-hot, direct and recursive) and for a panel.

Tolerance: 1e-5 relative to the forecasts' size for float32 networks, as in test_export_known.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import rnnkit
from rnnkit import DataConfig, ModelConfig, TrainConfig, fit_forecaster
from rnnkit.data.calendar import calendar_features, future_index
from rnnkit.data.series import series_from_frame

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install 'rnnkit[deploy]')")
onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'rnnkit[deploy]')")

from export_cases import props, rel_diff, scramble, session  # noqa: E402

TOL = 1e-5
N, H, L = 150, 4, 12
_rng = np.random.default_rng(5)
MONTHS = pd.date_range("1990-01-01", periods=N + 2 * H, freq="MS")
SEASON = np.sin(2 * np.pi * MONTHS.month.to_numpy() / 12)
FRAME = pd.DataFrame({"date": MONTHS.strftime("%Y-%m-%d"), "y": 10 + 3 * SEASON + _rng.normal(0, 0.3, len(MONTHS)),
                      "x": _rng.normal(size=len(MONTHS))})


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


def _calendar(index: pd.DatetimeIndex, freq: str, kind: str, lookback: int, rows: int) -> np.ndarray:
    """What a user feeds: the features of the context's last stamps and of the ``rows`` after them."""
    stamps = index[-lookback:].append(future_index(index, freq, rows))
    return calendar_features(stamps, freq, kind)[0]


CASES = {
    "lstm, direct, sin/cos": dict(cell="lstm", strategy="direct", calendar="sincos"),
    "gru, recursive, one-hot": dict(cell="gru", strategy="recursive", calendar="onehot"),
    "gru, direct, sin/cos and a future covariate": dict(cell="gru", strategy="direct", calendar="sincos", future=("x",)),
    "lstm, recursive, one-hot and a future covariate": dict(cell="lstm", strategy="recursive", calendar="onehot",
                                                            future=("x",)),
}


@pytest.mark.parametrize("settings", list(CASES.values()), ids=list(CASES))
def test_the_graph_forecasts_what_the_run_forecasts_from_its_data(tmp_path, settings):
    settings = dict(settings)
    kind, future = settings.pop("calendar"), settings.pop("future", ())
    columns = ["date", "y", *future]
    dc = DataConfig(horizon=H, lookback=L, calendar=kind, future_covariates=future, linear_covariates="none")
    data = series_from_frame(FRAME.iloc[:N][columns], target="y", time_col="date", covariates=list(future))
    run = fit_forecaster(dc, ModelConfig(hidden_size=4, **settings), TrainConfig(epochs=1), data=data, quiet=True,
                         evaluate=False)
    scramble(run.model)
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    names = ["context", *(["future"] if future else []), "calendar"]
    assert [i.name for i in s.get_inputs()] == names
    meta = props(path)
    K = calendar_features(MONTHS[:2], "MS", kind)[1]
    assert meta["calendar"] == kind and meta["freq"] == "MS" and json.loads(meta["calendar_columns"]) == K
    inputs = {i["name"]: i for i in json.loads(meta["inputs"])}
    assert inputs["calendar"]["shape"] == ["batch", f"time + {H}", len(K)] and inputs["calendar"]["columns"] == K
    ctx, cal, fut, want = [], [], [], []
    for end in (N - 30, N - 7, N):
        part = series_from_frame(FRAME.iloc[:end][columns], target="y", time_col="date", covariates=list(future))
        ahead = FRAME.iloc[end:end + H][["date", *future]].reset_index(drop=True) if future else None
        want.append(run.forecast(part, future=ahead)[["y"]].to_numpy())  # rnnkit's own stamps and features
        ctx.append(part.values[-L:])
        cal.append(_calendar(part.frame.index, "MS", kind, L, H))
        if future:
            fut.append(ahead[list(future)].to_numpy(np.float64))
    feeds = {"context": np.stack(ctx), "calendar": np.stack(cal), **({"future": np.stack(fut)} if future else {})}
    (got,) = s.run(["forecast"], feeds)
    assert rel_diff(got, np.stack(want)) < TOL
    assert float(meta["checked_max_rel_diff"]) < TOL
    wrong = dict(feeds, calendar=np.stack(cal)[:, ::-1].copy())  # another month's features: another forecast
    assert rel_diff(s.run(["forecast"], wrong)[0], np.stack(want)) > 1e-3


def test_a_panel_graph_with_calendar_features(tmp_path):
    rng = np.random.default_rng(2)
    blocks = []
    for k, (start, n) in enumerate((("1995-01-01", 70), ("1996-06-01", 60), ("1994-03-01", 64))):
        idx = pd.date_range(start, periods=n, freq="MS")
        blocks.append(pd.DataFrame({"id": f"s{k}", "date": idx.strftime("%Y-%m-%d"),
                                    "y": (k + 1) * (5 + np.sin(2 * np.pi * idx.month / 12)) + rng.normal(0, .2, n)}))
    raw = pd.concat(blocks, ignore_index=True)
    run = rnnkit.fit_forecaster(DataConfig(id_col="id", time_col="date", horizon=H, lookback=L, calendar="sincos"),
                                ModelConfig(hidden_size=4, cell="gru"), TrainConfig(epochs=1), data=raw, quiet=True,
                                evaluate=False)
    scramble(run.model)
    want = run.forecast(raw)
    path = rnnkit.export_onnx(run, tmp_path / "model.onnx")
    s = session(path)
    assert [i.name for i in s.get_inputs()] == ["context", "shift", "scale", "calendar"]
    table = pd.read_csv(tmp_path / "model.series.csv", dtype={"id": str}).set_index("id")
    panel = run.load_data(raw)
    ids = list(panel.ids)
    feeds = {"context": np.stack([s_.values[-L:] for s_ in panel.series]),
             "shift": table.loc[ids, ["shift_y"]].to_numpy(), "scale": table.loc[ids, ["scale_y"]].to_numpy(),
             "calendar": np.stack([_calendar(s_.frame.index, "MS", "sincos", L, H) for s_ in panel.series])}
    (got,) = s.run(["forecast"], feeds)
    ref = np.stack([want[want.id == i][["y"]].to_numpy() for i in ids])
    assert rel_diff(got, ref) < TOL
    with pytest.raises(rnnkit.RnnkitError, match=r"calendar must be \(S, 16, 2\)"):
        run.predict_contexts(feeds["context"], ids, H, calendar=feeds["calendar"][:, 1:])
