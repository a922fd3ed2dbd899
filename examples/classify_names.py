"""Which language does a surname come from? A character-level Elman RNN classifier.

The seed tutorial's PyTorch model (``nn.RNN(input_size, hidden_size)`` read one character at a
time, a linear layer on the last output; the PyTorch "classifying names with a character-level
RNN" tutorial) on the names data that ships with rnnkit: ``builtin:surnames``, 3,122 surnames in
11 languages taken from Faker (the tutorial's own names files are not on a package registry;
see src/rnnkit/corpora/SOURCES.md). As in the tutorial: an Elman cell, 128 hidden units, the
last output; rnnkit adds a learned character embedding, class weights for the imbalanced
languages (49 to 400 names) and a held-out test split.

    PYTHONPATH=src python examples/classify_names.py            # about a CPU minute
    PYTHONPATH=src python examples/classify_names.py --quick    # a smoke run (the slow test)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from rnnkit.tasks.classify.workflow import fit_classifier
from rnnkit.tasks.classify.config import ClassifierConfig, SequenceDataConfig
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.tasks.classify.metrics import format_confusion
from rnnkit.tasks.classify.data import SequenceData, read_sequences, stratified_split


def main(quick: bool = False, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    names = read_sequences("builtin:surnames")
    train_idx, test_idx = stratified_split(names.labels, 0.2, seed=1)  # 20 % of each language for testing
    train, test = names.subset(train_idx), names.subset(test_idx)
    run = fit_classifier(SequenceDataConfig(val_frac=0.15, unknown="replace", min_count=2),
                         ModelConfig(cell="elman", hidden_size=128),
                         ClassifierConfig(pool="last", embedding_dim=32, class_weights="balanced"),
                         TrainConfig(epochs=3 if quick else 80, batch_size=32, lr=0.001, clip_norm=1.0,
                                     patience=15, seed=seed),
                         data=train, test=test, quiet=True)
    m = run.metrics["test"]
    chance = max(np.bincount(run.encode_labels(test))) / len(test)
    print(f"{len(train)} training names ({run.meta['n_val']} of them for validation), {len(test)} test names, "
          f"{len(run.classes)} languages; {len(run.history.rows)} epochs")
    print(f"test accuracy {m['accuracy']:.3f} (majority class {chance:.3f}), balanced accuracy "
          f"{m['balanced_accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}")
    print(format_confusion(m["confusion_matrix"], [c[:4] for c in run.classes]))
    queries = ("Dovesky", "Jackson", "Satoshi", "Schmidt", "Rossi", "Nguyen")
    probs = run.predict_proba(SequenceData(queries, None, queries, "<queries>", "0"))
    for q, p in zip(queries, probs):
        top = np.argsort(-p)[:3]
        print(f"{q:>8}: " + ", ".join(f"{run.classes[k]} {p[k]:.2f}" for k in top))
    return {"test": m, "epochs": len(run.history.rows)}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 epochs")
    main(quick=p.parse_args().quick)
