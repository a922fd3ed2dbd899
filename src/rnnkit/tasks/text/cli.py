"""``rnnkit text fit|generate|evaluate|suggest``: character language models' command line.

:func:`register` adds the command to ``rnnkit``'s subparsers; :data:`COMMANDS` maps its name to the
handler. The handlers call the same functions as the Python API (:mod:`rnnkit.tasks.text`), nothing
more; ``rnnkit.cli.main`` reports their errors (one line, exit status 2). The job's modules are
imported when a command runs, so that ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import argparse
import json

from ...cli_parse import (config_arg, config_values, loss_callbacks, model_args, out_args, refuse_existing, run_arg,
                          seed_arg, train_args)
from ...config import UNKNOWN_POLICIES, ModelConfig, TrainConfig
from .config import TEXT_DEFAULTS, UNKNOWN_AT_USE, TextConfig

__all__ = ["register", "cmd_text", "COMMANDS"]

# the text options' defaults are TextConfig's own (TEXT_DEFAULTS holds the model and training)
_X = TextConfig()


def register(sub) -> None:
    """Add ``rnnkit text`` (with its subcommands fit, generate, evaluate, suggest) to ``rnnkit``'s subparsers."""
    txt = sub.add_parser("text", help="character language models: fit, generate, evaluate, suggest",
                         description="Train a character-level language model on a text and generate with it.")
    ts = txt.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = ts.add_parser("fit", help="train a character model and write a run directory",
                      description="Train on CORPUS (a UTF-8 text file, or builtin:pydocs / builtin:zen) with "
                                  "stateful truncated BPTT; report validation bits per character next to n-gram "
                                  "baselines.")
    p.add_argument("corpus", metavar="CORPUS", help="UTF-8 text file, or builtin:pydocs or builtin:zen")
    g = p.add_argument_group("data")
    for name in ("val_frac", "unknown", "min_count"):
        config_arg(g, _X, name)
    m, t = TEXT_DEFAULTS
    g = model_args(p, m)
    config_arg(g, _X, "embedding_dim")
    g = p.add_argument_group("training")
    config_arg(g, _X, "seq_len")
    config_arg(g, _X, "steps")
    config_arg(g, t, "batch_size", help="parallel streams the text is cut into")
    train_args(g, t, "validation checks (about 10 per run)")
    out_args(p)
    p = ts.add_parser("generate", help="sample text from a trained model")
    run_arg(p, "text")
    p.add_argument("--prime", default="", metavar="TEXT", help="text to start from (default: the corpus' first character)")
    p.add_argument("--length", type=int, default=200, help="characters to generate (default: 200)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature; lower is more conservative, 0 = most likely (default: 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely characters; 0 = all (default: 0)")
    seed_arg(p, 0, "random seed; the same seed gives the same text")
    _unknown_arg(p, "the prompt")
    p = ts.add_parser("evaluate", help="bits per character of a text")
    run_arg(p, "text")
    p.add_argument("--data", required=True, metavar="FILE.txt", help="UTF-8 text to score")
    _unknown_arg(p, "the text", " (read as no character and not scored, unless the model has a trained U+FFFD)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = ts.add_parser("suggest", help="most likely next characters and word completions after a prompt")
    run_arg(p, "text")
    p.add_argument("--prime", required=True, metavar="TEXT", help="the text typed so far")
    p.add_argument("--k", type=int, default=5, help="suggestions of each kind, and the beam width (default: 5)")
    p.add_argument("--max-chars", type=int, default=20, help="longest completion searched (default: 20)")
    _unknown_arg(p, "the prompt")
    p.add_argument("--json", action="store_true", help="print the suggestions as JSON")


def _unknown_arg(p, where: str, mapped: str = "") -> None:
    p.add_argument("--unknown", choices=UNKNOWN_POLICIES, default=UNKNOWN_AT_USE,
                   help=f"characters of {where} outside the model's vocabulary: replace = map them to the unknown "
                        f"symbol{mapped}, counted and reported; skip = drop them; error = refuse them (default: "
                        f"{UNKNOWN_AT_USE})")


def _text_fit(a: argparse.Namespace) -> int:
    from .workflow import fit_char_lm
    from .run import save_text_run
    xc = TextConfig(source=a.corpus, **config_values(a, TextConfig))
    mc = ModelConfig(**config_values(a, ModelConfig))
    tc = TrainConfig(**config_values(a, TrainConfig))
    refuse_existing(a, xc.source)
    run = fit_char_lm(xc, mc, tc, quiet=a.quiet, callbacks=loss_callbacks(a, 20))
    out = save_text_run(run, a.out, force=a.force)
    m = run.meta
    print(f"trained {mc.cell} ({mc.num_layers}x{mc.hidden_size}) on {m['train_chars']} characters "
          f"({len(run.vocab)} distinct) in {m['streams']} streams for {m['steps']} steps ({len(run.history.rows)} "
          f"passes of {m['steps_per_epoch']} steps of {xc.seq_len} characters)")
    rows = [("model", "bits/char")]
    for part in ("train", "validation"):
        if part in run.metrics:
            rows.append((f"rnnkit {mc.cell} ({part}, {run.metrics[part]['chars']} chars)",
                         f"{run.metrics[part]['bits_per_char']:.4f}"))
    for name, b in run.metrics.get("baselines", {}).items():
        rows.append((f"{name} (validation)", f"{b['bits_per_char']:.4f}"))
    w = max(len(r[0]) for r in rows)
    print("\n".join(f"{r[0].ljust(w)}  {r[1]:>9}" for r in rows))
    print(f"sample (seed 0): {(out / 'sample.txt').read_text(encoding='utf-8')[:160]!r}")
    print(f"run directory: {out}")
    return 0


def _text_other(a: argparse.Namespace) -> int:
    from .run import load_text_run
    from .workflow import read_text
    run = load_text_run(a.run)
    if a.action == "generate":
        import sys
        prime = a.prime or run.meta["first_char"]
        chunks = run.generate_iter(prime, a.length, a.temperature, a.top_k, a.seed,  # checks the settings first
                                   unknown=a.unknown)  # and warns (one line on stderr) of unknown characters
        out = sys.stdout
        out.write(prime)  # each piece as soon as it is made; a closed pipe (| head) ends it quietly in main()
        for piece in chunks:
            out.write(piece)
            out.flush()
        out.write("\n")
        out.flush()  # here, not at exit, so that a closed pipe is still reported quietly by main()
        return 0
    if a.action == "evaluate":
        text, name, _ = read_text(a.data)
        result = run.evaluate(text, a.unknown)
        if a.json:
            print(json.dumps({"data": name, **result}, ensure_ascii=False))
        else:
            print(f"{name}: {result['bits_per_char']:.4f} bits per character over {result['scored']} scored "
                  f"characters")
            if result["unknown"]["message"]:
                print(result["unknown"]["message"])
        return 0
    result = run.suggest(a.prime, a.k, a.max_chars, unknown=a.unknown)
    if a.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    if result["unknown"]["message"]:
        print(result["unknown"]["message"])
    print("next character  probability")
    for c, p in result["next"]:
        print(f"{c!r:<14}  {p:11.4f}")
    print("completion      probability")
    for s in result["completions"]:
        print(f"{s['text'] + ('' if s['complete'] else '...')!r:<14}  {s['prob']:11.4f}")
    return 0


def cmd_text(a: argparse.Namespace) -> int:
    return _text_fit(a) if a.action == "fit" else _text_other(a)


COMMANDS = {"text": cmd_text}
