"""Seed tutorial 001 (ISS Art blog, "What is a recurrent neural network and how to use it").

The post explains Jordan networks (the hidden layer also reads the network's previous *output*),
Elman networks (it reads its own previous hidden state) and LSTMs, lists five ways to use a
recurrent network, and ends with a Keras example: a stateful LSTM with 16 units, batch size 1,
no shuffling and the state reset after every epoch, trained for 1000 epochs to map sin(x) to
sin(x + 1) for x = 0, 1, ..., 35; primed on the series, it then generates 36 more values on its
own, fed back one at a time, and plots them against sin(36), ..., sin(71).

This script does all of it with rnnkit's public API:

1. **Jordan and Elman networks** on one sequence task: predict the next value of sin(x)
   (integer x) at every step of 10-step windows but the first three (see ``train_sequence_net``). The Jordan network is ``rnnkit.Jordan`` with
   ``output_size=1``: its single output is both the prediction and the recurrent context, as in
   the post's diagram. The Elman network is ``rnnkit.RNN`` with a linear readout.
2. **The five usage modes** the post lists, each on the same sine task:
   many-to-many (``Forecaster(strategy="recursive")`` + ``TrainConfig(many_to_many=True)``),
   many-to-one (``Forecaster(strategy="direct")``: only the last output is read),
   skipping warm-up outputs (``TrainConfig(warmup=3, many_to_many=True)``),
   output fed back as input (``Forecaster.generate`` primed on a single value), and
   prime-then-generate (``Forecaster.generate(prime, steps)`` primed on 10 values).
3. **The stateful LSTM** of the post: ``TrainConfig(stateful=True, tbptt=1, batch_size=1,
   shuffle=False)``, trained by :func:`rnnkit.fit` with :func:`rnnkit.tasks.forecast.workflow.forecast_loss`.
   ``tbptt=1`` is what Keras does with ``batch_input_shape=(1, 1, 1)``: one optimiser step per
   time step, the state carried (and detached) from step to step and reset every epoch. Then
   ``generate(series, 36)`` primes on sin(0..35) and runs free for 36 steps.

Run: ``PYTHONPATH=src python examples/keras_blog_elman_jordan_lstm.py [--out DIR] [--seed N]
[--full]``. The default trains the stateful LSTM for 200 epochs; ``--full`` uses the post's 1000
epochs (0.04 s and 0.2 s in rnnkit's fused trainer, which ``fused=`` enables; about 5 s and 25 s in
the generic torch loop). Everything else is the same in both.
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
from rnnkit.training import plots
from rnnkit.tasks.forecast.workflow import forecast_fused_task, forecast_loss

NAME = "keras_blog_elman_jordan_lstm"
WINDOW = 10


def seq_func(x: np.ndarray) -> np.ndarray:
    """The post's sequence: sin(x) at integer x."""
    return np.sin(x)


def sine_windows(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of sin(x) for x in [start, stop): inputs (W, 10, 1) and the next value (W, 1, 1)."""
    y = seq_func(np.arange(start, stop, dtype=np.float64))[:, None]  # (N, 1)
    X, Y = rnnkit.make_windows(y, y, lookback=WINDOW, horizon=1)
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)


def next_values(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The next value at every step of each window: (W, 10, 1)."""
    return torch.cat([X[:, 1:], Y], 1)


# --- 1. Jordan and Elman networks -----------------------------------------------------------

class ElmanNet(nn.Module):
    """Elman network: tanh hidden layer reading its own previous state, linear output per step."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.rnn = rnnkit.RNN(1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0])  # (B, T, H) -> (B, T, 1)


class JordanNet(nn.Module):
    """Jordan network: the hidden layer reads the input and the network's previous output.

    With ``context=1`` the single output is both the prediction and the recurrent context, as in
    the post's diagram. With a wider context (rnnkit's default, ``output_size = hidden_size``)
    the Jordan layer emits ``context`` linear outputs, fed back as the context, and a linear
    readout combines them into the prediction.
    """

    def __init__(self, hidden: int, context: int) -> None:
        super().__init__()
        self.rnn = rnnkit.Jordan(1, hidden, output_size=context, batch_first=True)
        self.out = nn.Linear(context, 1) if context > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0])  # (B, T, context) -> (B, T, 1)


def train_sequence_net(net: nn.Module, train, test, seed: int, epochs: int, warmup: int = 3) -> dict:
    """Train on the next value at every step but the first ``warmup`` (from one value of sin(x),
    with no history yet, the next one cannot be known: sin(x) = v has two phases), with Adam."""
    def loss_fn(m, b):
        return F.mse_loss(m(b[0])[:, warmup:], next_values(b[0], b[1])[:, warmup:])

    def mse(data) -> float:
        with torch.no_grad():
            return float(loss_fn(net, data))

    before = mse(train)
    config = rnnkit.TrainConfig(epochs=epochs, batch_size=16, lr=1e-2, patience=0, restore_best=False,
                                seed=seed)
    history = rnnkit.fit(net, loss_fn, train, None, config, quiet=True)
    return {"train_mse_before": before, "train_mse_after": mse(train), "test_mse": mse(test),
            "fall": before / mse(train), "history": history}


# --- 2. the five usage modes ----------------------------------------------------------------

def forecaster(strategy: str, seed: int) -> rnnkit.Forecaster:
    torch.manual_seed(seed)
    return rnnkit.Forecaster(1, 1, horizon=1, config=rnnkit.ModelConfig(cell="lstm", hidden_size=16,
                                                                        strategy=strategy))


def usage_modes(train, test, seed: int, epochs: int) -> dict:
    X_test, Y_test = test
    target_test = next_values(X_test, Y_test)
    result = {}
    base = rnnkit.TrainConfig(epochs=epochs, batch_size=16, lr=1e-2, patience=0, restore_best=False, seed=seed)

    # many-to-many: an output at every step, each scored against the next value
    m2m = forecaster("recursive", seed)
    cfg = base.replace(many_to_many=True)
    rnnkit.fit(m2m, forecast_loss(m2m, cfg), train, None, cfg, quiet=True)
    with torch.no_grad():
        err = ((m2m(X_test) - target_test) ** 2).mean(dim=(0, 2))  # (T,) MSE per step
    result["many_to_many"] = {"test_mse": float(err.mean()), "mse_per_step": err.tolist()}

    # many-to-one: the whole window in, only the last output read
    m2o = forecaster("direct", seed)
    rnnkit.fit(m2o, forecast_loss(m2o, base), train, None, base, quiet=True)
    with torch.no_grad():
        result["many_to_one"] = {"test_mse": float(F.mse_loss(m2o(X_test), Y_test))}

    # skip warm-up outputs: the first 3 steps, which have seen little of the window, are not scored
    warm = forecaster("recursive", seed)
    cfg = base.replace(many_to_many=True, warmup=3)
    rnnkit.fit(warm, forecast_loss(warm, cfg), train, None, cfg, quiet=True)
    with torch.no_grad():
        err = ((warm(X_test) - target_test) ** 2).mean(dim=(0, 2))
    result["skip_warmup"] = {"warmup": 3, "test_mse_scored_steps": float(err[3:].mean()),
                             "test_mse_warmup_steps": float(err[:3].mean()), "mse_per_step": err.tolist()}

    # output fed back as input, and prime-then-generate: the many-to-many model runs on its own
    # outputs from 20 starting points x0 = 300..319 (unseen in training). Primed on one value it
    # must guess the phase (sin(x) = v at two phases); primed on ten values it knows it.
    steps, origins = 20, np.arange(300, 320)
    truth = torch.as_tensor(seq_func(origins[:, None] + 1 + np.arange(steps)), dtype=torch.float32)  # (20, 20)
    primes = torch.as_tensor(seq_func(origins[:, None] - WINDOW + 1 + np.arange(WINDOW)),
                             dtype=torch.float32).unsqueeze(-1)  # (20, 10, 1), ending at sin(x0)
    for name, prime in (("output_fed_back", primes[:, -1:]), ("prime_then_generate", primes)):
        gen = m2m.generate(prime, steps)[..., 0]  # (20, steps)
        result[name] = {"prime_length": prime.shape[1], "steps": steps, "starts": len(origins),
                        "rmse": float(torch.sqrt(torch.mean((gen - truth) ** 2)))}
    result["last_value_baseline_test_mse"] = float(F.mse_loss(X_test[:, -1:], Y_test))
    return result


# --- 3. the stateful LSTM of the post -------------------------------------------------------

def stateful_lstm(seed: int, epochs: int) -> dict:
    series = np.array(rnnkit.load_builtin("sin35").target_values)  # sin(x), x = 0..35: (36, 1)
    x = torch.as_tensor(series, dtype=torch.float32)[None]  # one stream (1, 36, 1)
    y = torch.as_tensor(seq_func(np.arange(1, 37)), dtype=torch.float32)[None, :, None]  # sin(x + 1)
    torch.manual_seed(seed)
    model = rnnkit.Forecaster(1, 1, config=rnnkit.ModelConfig(cell="lstm", hidden_size=16, strategy="recursive"))
    config = rnnkit.TrainConfig(epochs=epochs, batch_size=1, lr=1e-3, optimizer="adam", stateful=True,
                                tbptt=1, shuffle=False, patience=0, restore_best=False, seed=seed)
    t0 = time.perf_counter()
    history = rnnkit.fit(model, forecast_loss(model, config), (x, y), None, config, quiet=True,
                         fused=forecast_fused_task(model, config, (x, y), None))  # the native trainer
    seconds = time.perf_counter() - t0
    generated = model.generate(x, 36)[0, :, 0].numpy()  # primed on sin(0..35): sin(36..71)
    expected = seq_func(np.arange(36, 72))
    return {"series": series[:, 0], "generated": generated, "expected": expected, "history": history,
            "rmse": float(np.sqrt(np.mean((generated - expected) ** 2))), "seconds": seconds,
            "final_train_loss": history.train_loss[-1]}


def plot(modes: dict, jordan_elman: dict, stateful: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plots.plot_series_prediction(
        np.concatenate([stateful["series"], stateful["expected"]]),
        np.concatenate([stateful["series"], stateful["generated"]]), out / "stateful_lstm.png",
        split=36, title=f"stateful LSTM(16): 36 generated steps, RMSE {stateful['rmse']:.3f}",
        labels=("sin(x), x = 0..71", "series, then generated"))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, r in jordan_elman.items():
        a1.plot(r["history"].train_loss, label=f"{name} (test MSE {r['test_mse']:.1e})")
    a1.set(yscale="log", xlabel="epoch", ylabel="train MSE", title="Jordan vs Elman, next value of sin(x)")
    a1.legend(fontsize=8)
    for name in ("many_to_many", "skip_warmup"):
        a2.plot(np.arange(WINDOW), modes[name]["mse_per_step"], "o-", ms=3, label=name.replace("_", " "))
    a2.axvspan(-0.5, 2.5, color="grey", alpha=0.15, label="warm-up (not scored)")
    a2.set(yscale="log", xlabel="step in window", ylabel="test MSE", title="error by step")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "jordan_elman_modes.png", dpi=72)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=f"runs/examples/{NAME}", help="where the figures and numbers go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="the post's 1000 epochs for the stateful LSTM")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest here)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        train, test = sine_windows(0, 200), sine_windows(200 - WINDOW, 300)
        jordan_elman = {}
        nets = {"jordan": lambda: JordanNet(16, context=16), "jordan_1": lambda: JordanNet(16, context=1),
                "elman": lambda: ElmanNet(16)}
        for name, make in nets.items():
            torch.manual_seed(args.seed)
            jordan_elman[name] = train_sequence_net(make(), train, test, args.seed, epochs=60)
            r = jordan_elman[name]
            print(f"{name:>6} network: train MSE {r['train_mse_before']:.4f} -> {r['train_mse_after']:.2e} "
                  f"(fell {r['fall']:.0f}x), test MSE {r['test_mse']:.2e}")
        modes = usage_modes(train, test, args.seed, epochs=60)
        print(f"many-to-many: test MSE {modes['many_to_many']['test_mse']:.2e}; many-to-one: "
              f"{modes['many_to_one']['test_mse']:.2e}; skip 3 warm-up outputs: scored steps "
              f"{modes['skip_warmup']['test_mse_scored_steps']:.2e} (warm-up steps "
              f"{modes['skip_warmup']['test_mse_warmup_steps']:.2e}); last-value baseline "
              f"{modes['last_value_baseline_test_mse']:.2e}")
        print(f"generation, 20 steps from 20 starts: primed on 1 value RMSE {modes['output_fed_back']['rmse']:.3f}, "
              f"primed on 10 values RMSE {modes['prime_then_generate']['rmse']:.3f}")
        epochs = 1000 if args.full else 200
        stateful = stateful_lstm(args.seed, epochs)
        print(f"stateful LSTM(16), {epochs} epochs of 36 steps (batch 1, TBPTT 1): final train loss "
              f"{stateful['final_train_loss']:.2e}; 36 free-running steps after sin(0..35): "
              f"RMSE {stateful['rmse']:.4f} vs sin(36..71)  [{stateful['seconds']:.1f} s]")
        plot(modes, jordan_elman, stateful, out)
    finally:
        torch.set_num_threads(threads)
    numbers = {
        "seed": args.seed,
        "jordan": {k: v for k, v in jordan_elman["jordan"].items() if k != "history"},
        "jordan_1": {k: v for k, v in jordan_elman["jordan_1"].items() if k != "history"},
        "elman": {k: v for k, v in jordan_elman["elman"].items() if k != "history"},
        "modes": modes,
        "stateful": {"epochs": epochs, "rmse": stateful["rmse"], "final_train_loss": stateful["final_train_loss"],
                     "seconds": stateful["seconds"], "generated": stateful["generated"].tolist()},
        "seconds": time.perf_counter() - t0,
    }
    (out / "numbers.json").write_text(json.dumps(numbers, indent=2))
    print(f"figures and numbers.json in {out}  [{numbers['seconds']:.1f} s]")
    return numbers


if __name__ == "__main__":
    main()
