"""What a seed reproduces: identical histories and weights at one thread count, byte-identical
run files, and the wall-clock timing kept apart from them (history.csv vs timing.csv).

Across thread counts nothing is promised for the torch loop: torch's multithreaded kernels split
long sums between threads (see the TrainConfig docstring), so it is tested at one thread count;
the fused trainer, single-threaded, is tested across two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit import DataConfig, ModelConfig, TrainConfig
from rnnkit.cli import main
from rnnkit.training.runs import read_run_files
from rnnkit.training.loop import HISTORY_COLUMNS, TIMING_COLUMNS, History

# 2 stacked LSTM layers with dropout between them, float32, batch x hidden 16 x 16 = 256: over the
# fused kernels' LSTM limit (128), so the torch loop runs torch's multithreaded oneDNN LSTM
DROPOUT_LSTM = ModelConfig(cell="lstm", hidden_size=16, num_layers=2, dropout=0.3)
TORCH_LOOP = TrainConfig(epochs=3, batch_size=16, lr=0.01, engine="torch", patience=0, seed=4)
SINE = DataConfig(source="builtin:sine", lookback=8, horizon=2, val_frac=0.2, test_frac=0.2)


@pytest.fixture
def threads():
    """Set torch's intra-op thread count inside a test; the previous count comes back afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _fit_torch_loop():
    run = rnnkit.fit_forecaster(SINE, DROPOUT_LSTM, TORCH_LOOP, quiet=True)
    assert run.history.engine == "torch"
    return ([(r["epoch"], r["train_loss"], r["val_loss"], r["lr"]) for r in run.history.rows],
            {k: v.clone() for k, v in run.model.state_dict().items()})


@pytest.mark.parametrize("n_threads", [1, 2])
def test_torch_loop_with_dropout_repeats_exactly_at_one_thread_count(threads, n_threads):
    """The guarantee the docs state: same seed, same thread count -> the same history and weights,
    bit for bit (dropout masks included); the same code runs twice, so exact equality."""
    threads(n_threads)
    (h1, w1), (h2, w2) = _fit_torch_loop(), _fit_torch_loop()
    assert h1 == h2
    assert list(w1) == list(w2)
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k


def test_fused_trainer_numbers_do_not_depend_on_the_thread_count(threads):
    """The fused trainer runs each epoch natively on one thread: torch's thread count, which the
    torch loop's kernels split their sums by, changes nothing, so exact equality holds."""
    results = []
    for n in (1, 2):
        threads(n)
        run = rnnkit.fit_forecaster(SINE, ModelConfig(cell="gru", hidden_size=8),
                                    TORCH_LOOP.replace(engine="fused"), quiet=True)
        assert run.history.engine == "fused"
        results.append(([(r["train_loss"], r["val_loss"]) for r in run.history.rows],
                        [p.detach().clone() for p in run.model.parameters()]))
    (h1, w1), (h2, w2) = results
    assert h1 == h2 and all(torch.equal(a, b) for a, b in zip(w1, w2))


def _fit_cli(data, out, *extra) -> None:
    assert main(["fit", str(data), "--target", "y", "--lookback", "6", "--horizon", "2", "--epochs", "4",
                 "--hidden", "5", "--batch-size", "8", "--seed", "3", "--quiet", "--out", str(out), *extra]) == 0


@pytest.mark.parametrize("engine", ["auto", "torch"])
def test_two_fits_with_one_seed_write_byte_identical_files(tmp_path, engine):
    t = np.arange(80)
    data = tmp_path / "series.csv"
    pd.DataFrame({"y": np.sin(t / 4) + 0.01 * t}).to_csv(data, index=False)
    extra = ["--engine", engine] + (["--layers", "2", "--dropout", "0.2"] if engine == "torch" else [])
    a, b = tmp_path / "a", tmp_path / "b"
    _fit_cli(data, a, *extra)
    _fit_cli(data, b, *extra)
    for name in ("history.csv", "weights.safetensors", "metrics.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    history, timing = pd.read_csv(a / "history.csv"), pd.read_csv(a / "timing.csv")
    assert tuple(history.columns) == HISTORY_COLUMNS and history["epoch"].tolist() == [1, 2, 3, 4]
    assert tuple(timing.columns) == TIMING_COLUMNS and timing["epoch"].tolist() == [1, 2, 3, 4]
    assert (timing["seconds"] >= 0).all()


def _history() -> History:
    return History(rows=[{"epoch": e, "train_loss": 1.0 / e, "val_loss": float("nan") if e == 2 else 0.5 / e,
                          "lr": 0.01, "seconds": 0.25 * e} for e in (1, 2, 3)])


def test_loaded_history_joins_the_timing_again(tmp_path):
    h = _history()
    h.to_frame().to_csv(tmp_path / "history.csv", index=False)
    h.timing_frame().to_csv(tmp_path / "timing.csv", index=False)
    assert "seconds" not in (tmp_path / "history.csv").read_text()
    loaded, _ = read_run_files(tmp_path)
    assert loaded.train_loss == h.train_loss and loaded.val_loss[0] == h.val_loss[0]
    assert np.isnan(loaded.val_loss[1])  # an epoch without a validation check stays NaN
    assert [r["seconds"] for r in loaded.rows] == [0.25, 0.5, 0.75]
    (tmp_path / "timing.csv").unlink()  # timing is optional: the history still loads, without it
    loaded, _ = read_run_files(tmp_path)
    assert loaded.train_loss == h.train_loss and all("seconds" not in r for r in loaded.rows)


def test_history_with_a_seconds_column_from_older_runs_still_loads(tmp_path):
    pd.DataFrame(_history().rows).to_csv(tmp_path / "history.csv", index=False)  # seconds inside
    loaded, _ = read_run_files(tmp_path)
    assert [r["seconds"] for r in loaded.rows] == [0.25, 0.5, 0.75]


def test_timing_of_other_epochs_is_ignored_with_a_warning(tmp_path):
    """timing.csv is a report, like history.csv: a damaged one never stops a load (runcheck)."""
    dc = DataConfig(source="builtin:sine", lookback=5, horizon=1)
    run = rnnkit.fit_forecaster(dc, ModelConfig(hidden_size=3), TrainConfig(epochs=2, patience=0), quiet=True)
    out = rnnkit.save_run(run, tmp_path / "run")
    assert all("seconds" in r for r in rnnkit.load_run(out).history.rows)  # joined from timing.csv
    pd.DataFrame({"epoch": [1], "seconds": [0.1]}).to_csv(out / "timing.csv", index=False)
    with pytest.warns(rnnkit.errors.RnnkitWarning, match="timing.csv"):
        loaded = rnnkit.load_run(out)
    assert [r["epoch"] for r in loaded.history.rows] == [1, 2]  # the history itself is intact
    assert not any("seconds" in r for r in loaded.history.rows)
