"""Seed tutorial 002 (POSTECH Industrial AI Lab, "Recurrent Neural Network"): a stacked LSTM
that predicts the next piece of a vibration signal, then generates 25 pieces on its own.

The tutorial cuts an acceleration signal of a rotating machine into chunks of
``n_input = 100`` samples; each training example is ``n_step = 25`` consecutive chunks (2500
samples), starting every 5 samples (5000 examples), and the target is the next 100 samples.
The network is LSTM(100, all steps) -> LSTM(100, last step) -> Dense(100) -> Dense(100), both
Dense layers linear, trained with Adam on the mean squared error for 3 epochs (batch 32, Keras'
default); Keras reports a training MSE of 0.0311, 0.0071 and 0.0053 after the three epochs.
It then predicts one chunk after a test window, and finally generates 25 chunks autoregressively
(each predicted chunk appended to the window, the oldest dropped) and plots them against the
ground truth.

The tutorial's data file (``rnn_time_signal.pkl``) is not available, so this script makes a
comparable signal (see :func:`make_signal`): the sum of three sinusoids (periods 40, 13 and 5.3
samples, like a shaft frequency and two harmonics of a gear mesh), multiplied by a slow
amplitude modulation (period 7000 samples, +-30 %), plus Gaussian noise of standard deviation
0.05; seeded, so every run sees the same signal. Its range is about [-1.2, 1.2], like the
tutorial's [-1, 1].

The model is a small ``torch.nn.Module`` built from two ``rnnkit.LSTM`` layers
(``batch_first=True``, Keras-style initialisation ``init="keras"`` as the tutorial's Keras layers
have) and two ``torch.nn.Linear`` layers; :func:`rnnkit.summary` prints its table and
:func:`rnnkit.fit` trains it. rnnkit's LSTM has torch's parameter layout, two bias vectors per
layer (``b_ih`` and ``b_hh``, 4H each), so an LSTM(100 -> 100) has 4 * (100*100 + 100*100 + 2*100)
= 80,800 parameters where Keras, with one bias per gate, has 80,400: 181,800 in all instead of
the tutorial's 181,000. The extra biases add nothing the model could not express otherwise.

One deliberate change: the tutorial generates from ``data[10000:]``, inside the span its
training windows cover (samples 0 to 27,595). Here generation starts at sample 30,000, after
every training sample, so the generated chunks are a real forecast; ``--tutorial-start`` uses
the tutorial's sample 10,000 instead.

Run: ``PYTHONPATH=src python examples/postech_stacked_lstm.py [--out DIR] [--seed N] [--full]``.
The default run already *is* the tutorial's full length (5000 windows, 3 epochs: about 7 s of
training on one CPU core), so ``--full`` changes nothing here; it is accepted so that every
example takes the same flags. ``--samples N`` trains on fewer windows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import rnnkit

NAME = "postech_stacked_lstm"
N_STEP, N_INPUT = 25, 100  # chunks per window, samples per chunk
N_LSTM1 = N_LSTM2 = N_HIDDEN = N_OUTPUT = 100
STRIDE = 5
TEST_START = 30_000


def make_signal(n: int = 35_000, seed: int = 0) -> np.ndarray:
    """A synthetic vibration signal standing in for the tutorial's measured one (see above)."""
    t = np.arange(n, dtype=np.float64)
    tones = (0.6 * np.sin(2 * np.pi * t / 40.0)
             + 0.25 * np.sin(2 * np.pi * t / 13.0 + 1.0)
             + 0.1 * np.sin(2 * np.pi * t / 5.3 + 2.0))
    envelope = 1.0 + 0.3 * np.sin(2 * np.pi * t / 7000.0)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(n)
    return envelope * tones + noise


def make_windows(signal: np.ndarray, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Example i: samples [5i, 5i + 2500) as (25, 100) chunks; target: the next 100 samples."""
    span = N_STEP * N_INPUT
    starts = np.arange(n_samples) * STRIDE
    X = signal[starts[:, None] + np.arange(span)].reshape(n_samples, N_STEP, N_INPUT)  # (N, 25, 100)
    Y = signal[starts[:, None] + span + np.arange(N_OUTPUT)]  # (N, 100)
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)


class StackedLSTM(nn.Module):
    """LSTM(100, all steps) -> LSTM(100, last step) -> Linear(100) -> Linear(100)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm1 = rnnkit.LSTM(N_INPUT, N_LSTM1, batch_first=True, init="keras")
        self.lstm2 = rnnkit.LSTM(N_LSTM1, N_LSTM2, batch_first=True, init="keras")
        self.dense1 = nn.Linear(N_LSTM2, N_HIDDEN)
        self.dense2 = nn.Linear(N_HIDDEN, N_OUTPUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm1(x)  # (B, 25, 100) -> (B, 25, 100)
        h, _ = self.lstm2(h)
        return self.dense2(self.dense1(h[:, -1]))  # last step (B, 100) -> (B, 100)


@torch.no_grad()
def mse_over(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    total = sum(float(F.mse_loss(model(X[i:i + batch]), Y[i:i + batch], reduction="sum"))
                for i in range(0, len(X), batch))
    return total / Y.numel()


@torch.no_grad()
def generate(model: nn.Module, window: torch.Tensor, chunks: int) -> np.ndarray:
    """Predict a chunk, append it to the window, drop the oldest; ``chunks`` times."""
    model.eval()
    out = []
    for _ in range(chunks):
        nxt = model(window)  # (1, 100)
        out.append(nxt[0].numpy())
        window = torch.cat([window[:, 1:], nxt[:, None]], 1)  # (1, 25, 100)
    return np.concatenate(out)


def plot_generation(past: np.ndarray, truth: np.ndarray, gen: np.ndarray, mse: float, path: Path) -> None:
    """The tutorial's figure (ground truth, then the generated part), plus a zoom on its start."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = len(past)
    t = np.arange(n + len(truth))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.2))
    for ax, lo, hi, aa in ((a1, 0, len(t), False), (a2, n - 300, n + 600, True)):  # no anti-aliasing
        kw = {"lw": 0.8, "antialiased": aa}  # where the lines are dense keeps the PNG small
        ax.plot(t[lo:hi], np.concatenate([past, truth])[lo:hi], color="tab:blue", label="ground truth", **kw)
        ax.plot(t[n:hi], gen[:hi - n], color="tab:red", label="generated", **kw)
        ax.axvline(n, color="tab:red", ls="--", lw=1)
        ax.set_xlim(lo, hi - 1)
    a1.set_title(f"25 chunks (2500 samples) generated autoregressively: MSE {mse:.4f}")
    a1.legend(loc="upper left", fontsize=8)
    a2.set(title="zoom: the last 300 samples of the window and the first 6 generated chunks", xlabel="sample")
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=f"runs/examples/{NAME}", help="where the figures and numbers go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true",
                        help="the tutorial's full length; the default already is (accepted for uniformity)")
    parser.add_argument("--samples", type=int, default=5000, help="training windows (the tutorial's 5000)")
    parser.add_argument("--tutorial-start", action="store_true",
                        help="generate from sample 10,000 (inside the training span) as the tutorial does")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 was fastest on a shared 2-core machine; 0 = torch's default)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_samples = args.samples
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        signal = make_signal()
        X, Y = make_windows(signal, n_samples)
        torch.manual_seed(args.seed)
        model = StackedLSTM()
        table = rnnkit.summary(model, (1, N_STEP, N_INPUT))
        n_params = sum(p.numel() for p in model.parameters())
        config = rnnkit.TrainConfig(epochs=3, batch_size=32, lr=1e-3, optimizer="adam", patience=0,
                                    restore_best=False, seed=args.seed)
        loss_fn = lambda m, b: F.mse_loss(m(b[0]), b[1])
        t0 = time.perf_counter()
        history = rnnkit.fit(model, loss_fn, (X, Y), None, config, quiet=True,
                             callbacks=[lambda r: print(f"epoch {r['epoch']}/3  training MSE "
                                                        f"{r['train_loss']:.4f}  [{r['seconds']:.1f} s]")])
        seconds = time.perf_counter() - t0
        train_mse = mse_over(model, X, Y)
        repeat_last = float(F.mse_loss(X[:, -1], Y))  # "the next chunk equals the last one"
        start = 10_000 if args.tutorial_start else TEST_START
        window = torch.as_tensor(signal[start:start + N_STEP * N_INPUT], dtype=torch.float32).view(1, N_STEP, N_INPUT)
        truth = signal[start + N_STEP * N_INPUT:start + 2 * N_STEP * N_INPUT]
        gen = generate(model, window, N_STEP)
        one_chunk_mse = float(np.mean((gen[:N_OUTPUT] - truth[:N_OUTPUT]) ** 2))
        gen_mse = float(np.mean((gen - truth) ** 2))
        print(f"after 3 epochs: training MSE {train_mse:.5f} (model in eval mode over all {n_samples} windows); "
              f"repeating the last chunk: {repeat_last:.5f}")
        print(f"from sample {start}: next chunk MSE {one_chunk_mse:.5f}; 25 generated chunks (2500 samples) "
              f"MSE {gen_mse:.5f}; signal variance {np.var(truth):.5f}  [training {seconds:.1f} s]")
        past = signal[start:start + N_STEP * N_INPUT]
        plot_generation(past, truth, gen, gen_mse, out / "generated.png")
        from rnnkit.training import plots
        plots.plot_learning_curve(history, out / "learning_curve.png", title="stacked LSTM, training MSE")
    finally:
        torch.set_num_threads(threads)
    numbers = {"seed": args.seed, "n_samples": n_samples, "n_params": n_params,
               "n_params_keras_layout": n_params - 2 * 4 * N_LSTM1,
               "train_loss_per_epoch": history.train_loss, "train_mse": train_mse,
               "repeat_last_chunk_mse": repeat_last, "generation_start": start,
               "next_chunk_mse": one_chunk_mse, "generated_25_chunks_mse": gen_mse,
               "signal_variance": float(np.var(truth)), "train_seconds": seconds, "summary": table}
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2))
    print(f"figures and numbers.json in {out}")
    return numbers


if __name__ == "__main__":
    main()
