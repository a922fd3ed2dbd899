"""Seed tutorial 003 ("Hidden state" / RNN implementation with Keras): a SimpleRNN on a noisy sine.

The tutorial samples sin(x) at 50 points of [-2 pi, 2 pi] (``np.linspace``'s default count) and
adds Gaussian noise of standard deviation 0.1. It cuts 40 windows of 10 steps; the target of
each window is the same series shifted by one step, so the network predicts the next value at
every step (many-to-many). The model is Keras' ``SimpleRNN(20, return_sequences=True)`` followed
by a linear ``Dense(1)`` at every step (461 parameters), trained with plain SGD (Keras' default
learning rate 0.01) on the mean squared error, batch size 8, 20 epochs, with the last 10 % of
the windows (4 of 40) held out by ``validation_split=0.1``; Keras reports a validation loss of
0.0897 after epoch 20. Finally the tutorial starts from the first window and predicts 40 values
autoregressively: each time the last 10 values (its own predictions, after the first window) go
through the network and the output at the last step is appended.

With rnnkit: ``Forecaster(1, 1, ModelConfig(cell="elman", hidden_size=20, strategy="recursive",
init="keras"))`` is the same network (rnnkit's Elman layer has torch's two bias vectors, so 481
parameters instead of 461), and ``TrainConfig(many_to_many=True, optimizer="sgd", lr=0.01,
batch_size=8, epochs=20)`` the same training, with :func:`rnnkit.tasks.forecast.workflow.forecast_loss`
scoring every step. The validation windows are the last 4, as Keras takes them (before any
shuffling). ``restore_best=False`` keeps the weights of epoch 20, as Keras does, and the
reported validation MSE is that of epoch 20.

Initialisation matters at this budget (100 SGD steps): Keras initialises the input weights
Glorot-uniform, the recurrent weights orthogonal and the biases to zero; torch draws everything
from U(-1/sqrt(20), 1/sqrt(20)). ``init="keras"`` reproduces Keras' choice. This script trains
both for every seed and reports the median validation MSE of each.

The tutorial draws the noise and the initial weights without a seed; here seed s draws the
noise with ``np.random.default_rng(s)`` and the weights and batch order with ``torch`` seed s.

The seed page also shows a PyTorch character-level name classifier; that belongs to sequence
classification and is reproduced with that capability, not here.

Run: ``PYTHONPATH=src python examples/hidden_state_simplernn.py [--out DIR] [--seeds 5] [--full]``.
The default trains 5 seeds x 2 initialisations (about 5 s); ``--full`` trains 20 seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import rnnkit
from rnnkit.training import plots
from rnnkit.tasks.forecast.workflow import forecast_loss

NAME = "hidden_state_simplernn"
N_RNN = 10  # steps per window


def make_data(seed: int) -> dict:
    """The tutorial's data: noisy sine, 40 windows of 10 steps, last 4 windows for validation."""
    x_data = np.linspace(-2 * np.pi, 2 * np.pi)  # 50 points
    sin_data = np.sin(x_data) + 0.1 * np.random.default_rng(seed).standard_normal(len(x_data))
    X, Y = rnnkit.make_windows(sin_data[:, None], sin_data[:, None], lookback=N_RNN, horizon=1)
    # X (40, 10, 1) = x in the tutorial; Y (40, 1, 1) = the value after each window, so the
    # tutorial's t = X shifted by one step with Y appended, which forecast_loss builds itself
    n_train = int(len(X) * (1 - 0.1))  # Keras' validation_split: the last 10 % of the samples
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)
    return {"sin_data": sin_data, "X": X, "train": (as_t(X[:n_train]), as_t(Y[:n_train])),
            "val": (as_t(X[n_train:]), as_t(Y[n_train:]))}


def train(data: dict, seed: int, init: str) -> tuple[rnnkit.Forecaster, rnnkit.History]:
    torch.manual_seed(seed)
    model = rnnkit.Forecaster(1, 1, config=rnnkit.ModelConfig(cell="elman", hidden_size=20,
                                                              strategy="recursive", init=init))
    config = rnnkit.TrainConfig(epochs=20, batch_size=8, lr=0.01, optimizer="sgd", many_to_many=True,
                                patience=0, restore_best=False, seed=seed)
    history = rnnkit.fit(model, forecast_loss(model, config), data["train"], data["val"], config, quiet=True)
    return model, history


@torch.no_grad()
def predict_autoregressively(model: rnnkit.Forecaster, first_window: np.ndarray, n: int) -> np.ndarray:
    """The tutorial's loop: run the last 10 values, append the output at the last step."""
    model.eval()
    predicted = list(first_window)
    for _ in range(n):
        window = torch.as_tensor(predicted[-N_RNN:], dtype=torch.float32).view(1, N_RNN, 1)
        predicted.append(float(model(window)[0, -1, 0]))
    return np.asarray(predicted)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=f"runs/examples/{NAME}", help="where the figures and numbers go")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--full", action="store_true", help="20 seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest here)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_seeds = 20 if args.full else args.seeds
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    val: dict[str, list[float]] = {"keras": [], "torch": []}
    try:
        for seed in range(n_seeds):
            data = make_data(seed)
            for init in ("keras", "torch"):
                model, history = train(data, seed, init)
                val[init].append(history.val_loss[-1])  # epoch 20's validation MSE
                if seed == 0 and init == "keras":
                    first = (model, history, data)
        medians = {k: float(np.median(v)) for k, v in val.items()}
        for init in ("keras", "torch"):
            print(f"init={init!r:8}: validation MSE after 20 epochs, seeds 0-{n_seeds - 1}: "
                  + " ".join(f"{v:.4f}" for v in val[init]) + f"  -> median {medians[init]:.4f}")
        model, history, data = first
        n_sample = len(data["X"])
        predicted = predict_autoregressively(model, data["X"][0, :, 0], n_sample)
        free_mse = float(np.mean((predicted[N_RNN:] - np.sin(np.linspace(-2 * np.pi, 2 * np.pi))[N_RNN:]) ** 2))
        plots.plot_series_prediction(data["sin_data"], predicted, out / "prediction.png", split=N_RNN,
                                     title="SimpleRNN(20), seed 0: autoregressive prediction",
                                     labels=("noisy sine (training data)", "predicted"))
        plots.plot_learning_curve(history, out / "learning_curve.png",
                                  title="SimpleRNN(20), seed 0, init='keras'")
        print(f"seed 0: autoregressive prediction of 40 values from the first window: MSE {free_mse:.4f} "
              f"against the noise-free sine")
    finally:
        torch.set_num_threads(threads)
    numbers = {"seeds": n_seeds, "val_mse": val, "median_val_mse": medians,
               "seed0_autoregressive_mse_vs_clean_sine": free_mse,
               "n_params": sum(p.numel() for p in model.parameters()), "seconds": time.perf_counter() - t0}
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2))
    print(f"figures and numbers.json in {out}  [{numbers['seconds']:.1f} s]")
    return numbers


if __name__ == "__main__":
    main()
