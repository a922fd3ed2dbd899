"""Time-series classification on two UCR/UEA archive sets that ship with rnnkit, against 1-NN.

- ItalyPowerDemand (univariate, 24 steps, 2 classes, 67 train / 1029 test), compared with the
  archive's published 1-NN error rates (UCR archive 2018, DataSummary.csv: Euclidean 0.0447,
  DTW with learned window 0.0447, DTW with full window 0.0496).
- JapaneseVowels (12 dimensions, 7-29 steps, 9 classes, 270 train / 370 test), compared with
  1-NN DTW_D (full window) measured here.

The 1-NN baselines are computed in this script too, so the published numbers are checked on the
shipped files: 1-NN Euclidean on ItalyPowerDemand must give 46 errors in 1029 (0.0447).

    PYTHONPATH=src python examples/classify_ucr.py            # about 1-2 CPU minutes
    PYTHONPATH=src python examples/classify_ucr.py --quick    # a smoke run (the slow test)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnnkit.tasks.classify.workflow import fit_classifier
from rnnkit.tasks.classify.config import ClassifierConfig, SequenceDataConfig
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.tasks.classify.data import read_sequences

# UCR archive 2018, DataSummary.csv, row "ItalyPowerDemand": error rates of 1-NN classifiers
PUBLISHED_ERRORS = {"ItalyPowerDemand": {"1-NN Euclidean": 0.0447, "1-NN DTW, learned window (w=0)": 0.0447,
                                         "1-NN DTW, full window": 0.0496}}

SETUPS = {  # settings chosen once on the validation split of the training file, never on the test file
    "ItalyPowerDemand": dict(model=ModelConfig(cell="gru", hidden_size=32), head=ClassifierConfig(pool="last"),
                             train=TrainConfig(epochs=150, batch_size=16, lr=0.003, patience=40)),
    "JapaneseVowels": dict(model=ModelConfig(cell="lstm", hidden_size=64, bidirectional=True),
                           head=ClassifierConfig(pool="mean"),
                           train=TrainConfig(epochs=100, batch_size=16, lr=0.003, patience=25)),
}


def padded(data) -> tuple[np.ndarray, np.ndarray]:
    L = data.lengths
    X = np.zeros((len(data), L.max(), data.n_features))
    for i, s in enumerate(data.sequences):
        X[i, :len(s)] = s
    return X, L


def one_nn(train, test, metric: str) -> np.ndarray:
    """Predicted labels of 1-NN with squared Euclidean distance or full-window DTW (DTW_D for
    several dimensions: the cost of a cell is the squared Euclidean distance between the steps)."""
    A, la = padded(train)
    B, lb = padded(test)
    if metric == "euclidean":
        d = ((B[:, None] - A[None]) ** 2).sum((2, 3))  # equal lengths: (N_test, N_train)
    else:
        n, m = B.shape[1], A.shape[1]
        D = np.full((len(B), len(A), n + 1, m + 1), np.inf)
        D[:, :, 0, 0] = 0.0
        for i in range(n):
            cost = ((B[:, None, i, None, :] - A[None, :, :, :]) ** 2).sum(-1)  # (N_test, N_train, m)
            for j in range(m):
                D[:, :, i + 1, j + 1] = cost[:, :, j] + np.minimum(np.minimum(D[:, :, i, j + 1], D[:, :, i + 1, j]),
                                                                   D[:, :, i, j])
        d = D[np.arange(len(B))[:, None], np.arange(len(A))[None], lb[:, None], la[None]]
    return np.asarray(train.labels)[d.argmin(1)]


def run_dataset(name: str, quick: bool, seeds: int) -> dict:
    train = read_sequences(f"builtin:{name}_TRAIN")
    test = read_sequences(f"builtin:{name}_TEST")
    y = np.asarray(test.labels)
    result = {"baselines": {}, "rnn": []}
    for metric in (("euclidean", "dtw") if train.lengths.min() == train.lengths.max() == test.lengths.max()
                   else ("dtw",)):
        result["baselines"][f"1-NN {metric} (measured)"] = float((one_nn(train, test, metric) != y).mean())
    setup = SETUPS[name]
    for seed in range(seeds):
        tc = setup["train"].replace(seed=seed, epochs=5 if quick else setup["train"].epochs)
        t0 = time.perf_counter()
        run = fit_classifier(SequenceDataConfig(val_frac=0.2), setup["model"], setup["head"], tc,
                             data=train, test=test, quiet=True)
        result["rnn"].append({"seed": seed, "test_error": 1 - run.metrics["test"]["accuracy"],
                              "balanced_accuracy": run.metrics["test"]["balanced_accuracy"],
                              "epochs": len(run.history.rows), "seconds": time.perf_counter() - t0})
    return result


def main(quick: bool = False, seeds: int = 5, datasets=("ItalyPowerDemand", "JapaneseVowels")) -> dict:
    torch.set_num_threads(1)  # small models: one thread is faster and keeps the numbers reproducible
    results = {}
    for name in datasets:
        r = results[name] = run_dataset(name, quick, seeds)
        mc = SETUPS[name]["model"]
        errs = [x["test_error"] for x in r["rnn"]]
        print(f"\n{name}: test error rates (lower is better)")
        for label, err in PUBLISHED_ERRORS.get(name, {}).items():
            print(f"  {label:<44} {err:.4f}  (published, UCR archive 2018)")
        for label, err in r["baselines"].items():
            print(f"  {label:<44} {err:.4f}")
        print(f"  rnnkit {mc.cell}{' bidirectional' if mc.bidirectional else ''} ({mc.hidden_size}), "
              f"{len(errs)} seed(s){'':<10} {np.mean(errs):.4f}  (min {min(errs):.4f}, max {max(errs):.4f}; "
              f"{np.mean([x['seconds'] for x in r['rnn']]):.1f} s per fit)")
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 epochs, 1 seed, ItalyPowerDemand only")
    p.add_argument("--seeds", type=int, default=5)
    a = p.parse_args()
    main(quick=a.quick, seeds=1 if a.quick else a.seeds,
         datasets=("ItalyPowerDemand",) if a.quick else ("ItalyPowerDemand", "JapaneseVowels"))
