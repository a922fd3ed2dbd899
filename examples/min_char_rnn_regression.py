"""Seed tutorial 004 (an RNN/LSTM introduction that turns Karpathy's min-char-rnn into a
regression): an Elman network with 100 hidden units learns to predict the next value of cos(x).

The tutorial's NumPy code keeps Karpathy's structure and changes the task: one input and one
output value per step instead of characters, a linear output ``y_t = W_hy h_t + b_y`` instead of
a softmax, and a squared error instead of the cross-entropy::

    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)        y_t = W_hy h_t + b_y
    loss = sum_t (y_t - target_t)^2 / (2 T)

Its backward pass, however, starts from ``dy = y_t - target_t``: that is the gradient of
``sum_t (y_t - target_t)^2 / 2`` (without the 1/T), and that is what the updates use. Every
gradient is clipped elementwise to [-5, 5] and the parameters follow Adagrad with learning rate
0.001 (``mem += d * d; p -= lr * d / sqrt(mem + 1e-8)``). Weights start as N(0, 0.01^2), biases
at zero. Each training step draws a random start on [0, 100) and takes 21 consecutive points of
the *noise-free* cos(x) on the data's grid (spacing 0.01): 20 inputs and the 20 values one step
later as targets. The tutorial trains for 100,000 steps and shows the loss curve and the
predictions on a smooth cosine, without a test number.

Here the same network is ``rnnkit.RNN(1, 100, batch_first=True)`` with a ``torch.nn.Linear``
readout, initialised as the tutorial does, and trained by :func:`rnnkit.fit` with
``TrainConfig(optimizer="adagrad", lr=1e-3, clip_value=5.0, batch_size=1)`` and the tutorial's
loss ``0.5 * sum((y - target)^2)``, so each update is the tutorial's (torch's Adagrad adds its
epsilon 1e-10 outside the square root instead of 1e-8 inside; nothing else differs). Each epoch
sees a fresh pool of random windows (a callback redraws them in place), so, as in the tutorial,
no window is seen twice. Each window starts from a zero hidden state (the tutorial's training
loop is not shown; carrying the state from one random window to an unrelated one would only add
noise).

Before training, the script checks rnnkit's gradients against a NumPy transcription of the
tutorial's backward pass in float64 (``tests/test_examples.py`` does the same with its own
NumPy code). After training it scores one-step predictions on a smooth test cosine, x in
[0, 20) on the same 0.01 grid, run as one sequence from a zero state, next to the trivial
forecast "the next value equals this one" (whose MSE is about 5e-5 at this spacing).

Run: ``PYTHONPATH=src python examples/min_char_rnn_regression.py [--out DIR] [--seed N] [--full]``.
The default trains 20,000 steps (about 25 s); ``--full`` the tutorial's 100,000 (2-4 min).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rnnkit
from rnnkit.training import plots

NAME = "min_char_rnn_regression"
HIDDEN = 100
STEPS = 20  # time steps per training window
RESOLUTION = 100 / 10_000  # the tutorial's data(0, 100, 10000) grid spacing
POOL = 2000  # windows per epoch


class ElmanRegressor(nn.Module):
    """h_t = tanh(W_xh x_t + W_hh h_{t-1} + b), y_t = W_hy h_t + b_y: rnnkit.RNN + nn.Linear."""

    def __init__(self, hidden: int = HIDDEN, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.rnn = rnnkit.RNN(1, hidden, batch_first=True, dtype=dtype)
        self.out = nn.Linear(hidden, 1, dtype=dtype)

    def init_like_tutorial(self, generator: torch.Generator | None = None) -> ElmanRegressor:
        """Weights N(0, 0.01^2), biases 0 (rnnkit's two biases b_ih + b_hh play the tutorial's b_h)."""
        with torch.no_grad():
            for w in (self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.out.weight):
                w.normal_(0.0, 0.01, generator=generator)
            for b in (self.rnn.bias_ih_l0, self.rnn.bias_hh_l0, self.out.bias):
                b.zero_()
        return self

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.rnn(x, h0)[0])  # (B, T, 1) -> (B, T, H) -> (B, T, 1)


def tutorial_loss(model: nn.Module, batch) -> torch.Tensor:
    """The loss whose gradient the tutorial's backward pass computes: 0.5 * sum of squares."""
    x, target = batch
    return 0.5 * ((model(x) - target) ** 2).sum()


def random_windows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's next_batch(20), n times: inputs and targets, each (n, 20, 1)."""
    start = rng.random(n) * (100 - (STEPS + 1) * RESOLUTION)
    y = np.cos(start[:, None] + np.arange(STEPS + 1) * RESOLUTION)  # (n, 21)
    return y[:, :-1, None], y[:, 1:, None]


def numpy_bptt(params: dict, xs: np.ndarray, targets: np.ndarray, hprev: np.ndarray) -> dict:
    """The tutorial's forward and backward pass (one sequence, column vectors), before clipping."""
    Wxh, Whh, Why, bh, by = (params[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    hs, ys = {-1: hprev}, {}
    for t in range(len(xs)):
        hs[t] = np.tanh(Wxh * xs[t] + Whh @ hs[t - 1] + bh)
        ys[t] = Why @ hs[t] + by
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros_like(hprev)
    for t in reversed(range(len(xs))):
        dy = ys[t] - targets[t]
        grads["Why"] += dy @ hs[t].T
        grads["by"] += dy
        dh = Why.T @ dy + dh_next
        dh_raw = (1 - hs[t] ** 2) * dh
        grads["bh"] += dh_raw
        grads["Wxh"] += dh_raw * xs[t]
        grads["Whh"] += dh_raw @ hs[t - 1].T
        dh_next = Whh.T @ dh_raw
    return grads


def gradient_check(seed: int) -> float:
    """Largest |rnnkit - NumPy| over all gradients, float64, one random window (8 hidden units)."""
    torch.manual_seed(seed)
    model = ElmanRegressor(hidden=8, dtype=torch.float64)
    with torch.no_grad():  # larger weights than the tutorial's start, so the check is not trivial
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    x, target = random_windows(1, np.random.default_rng(seed))
    h0 = torch.randn(1, 1, 8, dtype=torch.float64) * 0.5
    model.zero_grad()
    tutorial_loss_with_h0 = 0.5 * ((model(torch.as_tensor(x), h0) - torch.as_tensor(target)) ** 2).sum()
    tutorial_loss_with_h0.backward()
    r, o = model.rnn, model.out
    params = {"Wxh": r.weight_ih_l0.detach().numpy(), "Whh": r.weight_hh_l0.detach().numpy(),
              "Why": o.weight.detach().numpy(), "by": o.bias.detach().numpy()[:, None],
              "bh": (r.bias_ih_l0 + r.bias_hh_l0).detach().numpy()[:, None]}
    g = numpy_bptt(params, x[0, :, 0], target[0, :, 0], h0[0, 0].numpy()[:, None])
    diffs = [np.abs(r.weight_ih_l0.grad.numpy() - g["Wxh"]), np.abs(r.weight_hh_l0.grad.numpy() - g["Whh"]),
             np.abs(r.bias_ih_l0.grad.numpy() - g["bh"][:, 0]), np.abs(r.bias_hh_l0.grad.numpy() - g["bh"][:, 0]),
             np.abs(o.weight.grad.numpy() - g["Why"]), np.abs(o.bias.grad.numpy() - g["by"][:, 0])]
    return float(max(d.max() for d in diffs))


@torch.no_grad()
def smooth_test(model: ElmanRegressor) -> dict:
    """One-step predictions along cos(x), x = 0, 0.01, ..., 19.99, as one sequence from h = 0."""
    model.eval()
    y = np.cos(np.arange(2000) * RESOLUTION)
    pred = model(torch.as_tensor(y[None, :-1, None], dtype=torch.float32))[0, :, 0].numpy()
    return {"x": np.arange(1, 2000) * RESOLUTION, "actual": y[1:], "predicted": pred,
            "mse": float(np.mean((pred - y[1:]) ** 2)), "last_value_mse": float(np.mean((y[:-1] - y[1:]) ** 2))}


@torch.no_grad()
def window_test(model: ElmanRegressor, rng: np.random.Generator, n: int = 1000) -> float:
    """MSE over fresh random 20-step windows, every step, each window from h = 0."""
    model.eval()
    x, t = random_windows(n, rng)
    pred = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
    return float(np.mean((pred - t) ** 2))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=f"runs/examples/{NAME}", help="where the figures and numbers go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20_000, help="training steps (windows); default 20,000")
    parser.add_argument("--full", action="store_true", help="the tutorial's 100,000 steps")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest here)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = 100_000 if args.full else args.steps
    epochs = max(1, steps // POOL)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        grad_diff = gradient_check(args.seed)
        print(f"gradients, rnnkit vs the tutorial's NumPy BPTT (float64): max |difference| {grad_diff:.2e}")

        rng = np.random.default_rng(args.seed)
        torch.manual_seed(args.seed)
        model = ElmanRegressor().init_like_tutorial()
        x, t = random_windows(min(POOL, steps), rng)
        X, T = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)

        def fresh_windows(row: dict) -> None:  # after every epoch: new random windows, in place
            xn, tn = random_windows(len(X), rng)
            X.copy_(torch.as_tensor(xn))
            T.copy_(torch.as_tensor(tn))

        config = rnnkit.TrainConfig(epochs=epochs, batch_size=1, lr=1e-3, optimizer="adagrad", clip_value=5.0,
                                    patience=0, restore_best=False, seed=args.seed)
        t_train = time.perf_counter()
        history = rnnkit.fit(model, tutorial_loss, (X, T), None, config, quiet=True, callbacks=[fresh_windows])
        train_seconds = time.perf_counter() - t_train
        mse_curve = [2 * v / STEPS for v in history.train_loss]  # 0.5 * sum over 20 steps -> mean square
        smooth = smooth_test(model)
        windows_mse = window_test(model, np.random.default_rng(10_000 + args.seed))
        print(f"{epochs * len(X)} Adagrad steps (lr 1e-3, clip 5) in {train_seconds:.1f} s: training MSE "
              f"{mse_curve[0]:.4f} (first {len(X)} steps) -> {mse_curve[-1]:.2e} (last {len(X)})")
        print(f"one-step prediction MSE on cos(x), x in [0, 20): {smooth['mse']:.2e} "
              f"(\"next = this value\": {smooth['last_value_mse']:.2e}); "
              f"on 1000 fresh random 20-step windows from h = 0: {windows_mse:.2e}")

        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
        a1.plot(np.arange(1, epochs + 1) * len(X), mse_curve)
        a1.set(yscale="log", xlabel="training step", ylabel=f"training MSE (mean over {len(X)} windows)",
               title="Elman(100), Adagrad lr 1e-3")
        a2.plot(smooth["x"], smooth["actual"], color="black", lw=1.2, label="cos(x)")
        a2.plot(smooth["x"], smooth["predicted"], color="tab:orange", lw=1.2, ls="--", label="one-step prediction")
        a2.set(xlabel="x", title=f"test on a smooth cosine: MSE {smooth['mse']:.1e}")
        a2.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "training_and_test.png", dpi=72)
        plt.close(fig)
        plots.plot_learning_curve(history, out / "learning_curve.png", title="tutorial loss (0.5 * sum) per epoch")
    finally:
        torch.set_num_threads(threads)
    numbers = {"seed": args.seed, "steps": epochs * len(X), "gradient_max_abs_diff": grad_diff,
               "train_mse_per_epoch": mse_curve, "test_one_step_mse": smooth["mse"],
               "test_last_value_mse": smooth["last_value_mse"], "random_windows_mse": windows_mse,
               "train_seconds": train_seconds, "seconds": time.perf_counter() - t0}
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2))
    print(f"figures and numbers.json in {out}  [{numbers['seconds']:.1f} s]")
    return numbers


if __name__ == "__main__":
    main()
