"""Seed tutorial 000 (ReNom, "Recurrent Neural Network (RNN) and LSTM"): a sine wave, an LSTM.

The tutorial samples sin(x) at 50 evenly spaced points of [-10, 10], cuts the series into
windows of 5 values each followed by the value to predict, trains on the first half of the
windows and tests on the second half. Its model is an LSTM with 2 units and a dense output,
trained with Adam in batches of 5 for at most 2000 epochs; every 200 epochs it checks the test
loss and stops once that loss fell by less than 1 % since the previous check. Finally it draws a
*recursive* prediction curve: starting from the first test window, each prediction is appended
to the window and the oldest value dropped, so the network runs on its own outputs.

Here the same experiment runs for the LSTM and for the Elman network whose equations the
tutorial writes out (tanh hidden layer, linear output), both through rnnkit's public API:

* windows: :func:`rnnkit.make_windows`; model: :class:`rnnkit.Forecaster` (many-to-one, one
  step ahead); training: :func:`rnnkit.fit` with the loss :func:`rnnkit.tasks.forecast.workflow.forecast_loss`;
* the stopping rule is ``TrainConfig(check_every=200, patience=1, min_delta=0.01)`` with the
  *test* windows as validation data, exactly as the tutorial does (so the test loss is not an
  untouched hold-out score here; it also chooses when to stop). ``restore_best=False`` keeps the
  weights of the last epoch trained, as the tutorial does;
* the recursive curve is :meth:`rnnkit.Forecaster.predict` asked for 23 steps from a model
  trained for one: it slides the window over its own forecasts.

Numbers are plain mean squared errors. ReNom's ``rm.mse`` is half of that
(``sum((z - y)**2) / (2 N)``), so the tutorial's "test loss 0.00198" is an MSE of about 0.004.

Run: ``PYTHONPATH=src python examples/renom_sine.py [--out DIR] [--seed N] [--full]``.
The default run *is* the tutorial's full length (2000 epochs at most, about 15 s on one CPU
core for both networks); ``--full`` additionally repeats it for seeds 0-9 and reports the median
and worst test MSE of each network.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import rnnkit
from rnnkit.tasks.forecast.workflow import forecast_loss

NAME = "renom_sine"
LOOKBACK = 5
HIDDEN = 2  # the tutorial's rm.Lstm(2)


def make_data() -> dict:
    """sin(x) on 50 points of [-10, 10]; windows of 5 -> next value; first half train, rest test."""
    series = rnnkit.load_builtin("sine")  # exactly np.sin(np.linspace(-10, 10, 50))
    y = series.target_values  # (50, 1)
    x = np.linspace(-10.0, 10.0, len(y))
    X, Y = rnnkit.make_windows(y, y, lookback=LOOKBACK, horizon=1)  # (45, 5, 1), (45, 1, 1)
    n_train = int(len(X) * 0.5)  # 22 training windows, 23 test windows, as in the tutorial
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)
    return {"x": x, "y": y[:, 0], "train": (as_t(X[:n_train]), as_t(Y[:n_train])),
            "test": (as_t(X[n_train:]), as_t(Y[n_train:])), "n_train": n_train}


def recursive_curve(model: rnnkit.Forecaster, first_window: torch.Tensor, steps: int) -> np.ndarray:
    """Slide over the model's own forecasts from ``first_window (1, L, 1)``: ``steps`` values."""
    was = model.training
    model.eval()
    out = model.predict(first_window, horizon=steps)[0, :, 0].numpy()  # (steps,)
    model.train(was)
    return out


def train_one(cell: str, data: dict, seed: int, epochs: int = 2000, record: bool = True) -> dict:
    """Train one network with the tutorial's settings; return its history, curves and scores."""
    torch.manual_seed(seed)
    model = rnnkit.Forecaster(1, 1, horizon=1, config=rnnkit.ModelConfig(cell=cell, hidden_size=HIDDEN))
    config = rnnkit.TrainConfig(epochs=epochs, batch_size=5, lr=1e-3, optimizer="adam",
                                check_every=200, patience=1, min_delta=0.01, restore_best=False,
                                seed=seed)
    loss_fn = forecast_loss(model, config)
    X_test, Y_test = data["test"]
    n_test = len(X_test)
    test_curve: list[float] = []
    snapshots: dict[int, np.ndarray] = {}

    def watch(row: dict) -> None:  # the tutorial records the test loss every epoch
        if not record:
            return
        with torch.no_grad():
            test_curve.append(float(torch.mean((model(X_test) - Y_test) ** 2)))
        if row["epoch"] % 200 == 0:
            snapshots[row["epoch"]] = recursive_curve(model, X_test[:1], n_test)

    t0 = time.perf_counter()
    history = rnnkit.fit(model, loss_fn, data["train"], data["test"], config, quiet=True, callbacks=[watch])
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        test_mse = float(torch.mean((model(X_test) - Y_test) ** 2))
        train_mse = float(torch.mean((model(data["train"][0]) - data["train"][1]) ** 2))
    curve = recursive_curve(model, X_test[:1], n_test)
    truth = data["y"][data["n_train"] + LOOKBACK:]  # the 23 values the curve should follow
    return {"model": model, "history": history, "test_curve": test_curve, "snapshots": snapshots,
            "curve": curve, "test_mse": test_mse, "train_mse": train_mse,
            "recursive_mse": float(np.mean((curve - truth) ** 2)),
            "epochs_run": len(history.rows), "stopped_early": history.stopped_early, "seconds": seconds}


def plot(cell: str, result: dict, data: dict, path: Path) -> None:
    """Two panels like the tutorial's: the learning curves, and the recursive prediction curves
    after every 200 epochs drawn after the training part of the sine."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    x, y, cut = data["x"], data["y"], data["n_train"] + LOOKBACK
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
    epochs = np.arange(1, len(result["test_curve"]) + 1)
    a1.plot(epochs, result["history"].train_loss, label="train (mean over batches)")
    a1.plot(epochs, result["test_curve"], label="test")
    a1.set(yscale="log", xlabel="epoch", ylabel="MSE", title=f"{cell.upper()}({HIDDEN}): learning curves")
    a1.legend(fontsize=8)
    a2.plot(x[:cut], y[:cut], color="tab:blue", lw=2, label="training part")
    a2.plot(x[cut:], y[cut:], color="black", lw=1, ls=":", label="truth")
    cmap = plt.get_cmap("viridis")
    snaps = sorted(result["snapshots"].items())
    for k, (epoch, curve) in enumerate(snaps):
        a2.plot(x[cut:], curve, color=cmap(k / max(1, len(snaps) - 1)), lw=1, label=f"epoch {epoch}")
    a2.set(xlabel="x", title="recursive prediction from the first test window")
    a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=f"runs/examples/{NAME}", help="where the figures and numbers go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also repeat for seeds 0-9 (2-3 minutes)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest for models this small)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        data = make_data()
        numbers: dict = {"seed": args.seed, "hidden_size": HIDDEN, "n_train": len(data["train"][0]),
                         "n_test": len(data["test"][0])}
        for cell in ("lstm", "elman"):
            r = train_one(cell, data, args.seed)
            plot(cell, r, data, out / f"{cell}.png")
            numbers[cell] = {k: r[k] for k in ("test_mse", "train_mse", "recursive_mse", "epochs_run",
                                               "stopped_early", "seconds")}
            numbers[cell]["test_loss_renom_convention"] = r["test_mse"] / 2
            print(f"{cell:>5}: stopped after {r['epochs_run']} epochs, test MSE {r['test_mse']:.6f} "
                  f"(ReNom's half-MSE {r['test_mse'] / 2:.6f}), train MSE {r['train_mse']:.6f}, "
                  f"recursive 23-step MSE {r['recursive_mse']:.6f}  [{r['seconds']:.1f} s]")
        if args.full:
            for cell in ("lstm", "elman"):
                mses = [train_one(cell, data, s, record=False)["test_mse"] for s in range(10)]
                numbers[cell]["seeds_0_9_test_mse"] = mses
                print(f"{cell:>5}: seeds 0-9 test MSE median {np.median(mses):.6f}, worst {max(mses):.6f}")
    finally:
        torch.set_num_threads(threads)
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2))
    print(f"figures and numbers.json in {out}")
    return numbers


if __name__ == "__main__":
    main()
