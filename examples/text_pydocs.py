"""A character-level LSTM language model on Python's own docstrings, against n-gram baselines.

min-char-rnn (the seed tutorial) trains a vanilla RNN one character at a time with truncated
backpropagation through time, carrying the hidden state from chunk to chunk. This is the same
job with rnnkit: ``builtin:pydocs`` (201 KB of standard-library docstrings), the last 10 % held
out, 32 parallel streams, chunks of 64 characters, the state carried across chunks; then
validation bits per character next to add-one smoothed unigram/bigram/trigram models on the same
split, a sample, and autosuggest completions.

    PYTHONPATH=src python examples/text_pydocs.py            # a few CPU minutes
    PYTHONPATH=src python examples/text_pydocs.py --quick    # a smoke run (the slow test)
"""

from __future__ import annotations

import argparse
import time

import torch

from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.tasks.text.config import TextConfig
from rnnkit.tasks.text.workflow import fit_char_lm

SETUP = dict(text=TextConfig(source="builtin:pydocs", seq_len=64, steps=2000, val_frac=0.1),
             model=ModelConfig(cell="lstm", hidden_size=128),
             train=TrainConfig(batch_size=32, lr=0.005, clip_norm=5.0, patience=0, seed=0))


def main(quick: bool = False) -> dict:
    torch.set_num_threads(2)
    xc, mc, tc = SETUP["text"], SETUP["model"], SETUP["train"]
    if quick:
        xc, mc = xc.replace(steps=100), mc.replace(hidden_size=64)
    t0, c0 = time.perf_counter(), time.process_time()
    run = fit_char_lm(xc, mc, tc, quiet=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    m = run.metrics
    print(f"{mc.cell} ({mc.hidden_size}) trained for {run.meta['steps']} steps of {xc.seq_len} characters x "
          f"{tc.batch_size} streams in {seconds:.0f} s ({cpu:.0f} CPU seconds); vocabulary {len(run.vocab)} characters")
    print(f"validation ({m['validation']['chars']} characters), bits per character:")
    print(f"  rnnkit {mc.cell:<22} {m['validation']['bits_per_char']:.3f}   (training text: "
          f"{m['train']['bits_per_char']:.3f})")
    for name, b in m["baselines"].items():
        print(f"  {name:<29} {b['bits_per_char']:.3f}")
    print("sample (prime 'def ', temperature 0.8, seed 0):")
    print("def " + run.generate("def ", 240, temperature=0.8, seed=0))
    for prime in ("Return the ", "If the argument is a str"):
        s = run.suggest(prime, k=3)
        print(f"suggest after {prime!r}: next " + ", ".join(f"{c!r} {p:.2f}" for c, p in s["next"])
              + "; completions " + ", ".join(f"{c['text']!r} {c['prob']:.2f}" for c in s["completions"]))
    return {"metrics": m, "seconds": seconds, "cpu_seconds": cpu, "steps": run.meta["steps"]}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 steps of a 64-unit LSTM")
    main(quick=p.parse_args().quick)
