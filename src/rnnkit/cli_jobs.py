"""``rnnkit classify ...`` and ``rnnkit text ...``: the command lines of the two sequence jobs.

:func:`add_job_parsers` registers both on ``rnnkit``'s subparsers; :data:`JOB_COMMANDS` maps
their names to handlers, for ``rnnkit.cli``'s ``COMMANDS``. The handlers call the same functions
as the Python API (:mod:`rnnkit.classify`, :mod:`rnnkit.text`), nothing more; ``rnnkit.cli.main``
reports their errors (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import json

from .cli_parse import seed_arg
from .config import (
    CELL_NAMES,
    CLASSIFY_DEFAULTS,
    OPTIMIZERS,
    TEXT_DEFAULTS,
    ModelConfig,
    SequenceDataConfig,
    TextConfig,
    TrainConfig,
)

__all__ = ["add_job_parsers", "cmd_classify", "cmd_text", "JOB_COMMANDS"]


def _run_arg(p: argparse.ArgumentParser, job: str) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help=f"run directory from `rnnkit {job} fit`")


def _model_args(p: argparse.ArgumentParser, m: ModelConfig, text: bool) -> None:
    """The model options, with the job's defaults ``m`` (:data:`rnnkit.config.CLASSIFY_DEFAULTS`, ...)."""
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=CELL_NAMES, default=m.cell, help=f"recurrent cell (default: {m.cell})")
    g.add_argument("--hidden", type=int, default=m.hidden_size, metavar="N",
                   help=f"hidden units per layer (default: {m.hidden_size})")
    g.add_argument("--layers", type=int, default=m.num_layers, metavar="N",
                   help=f"stacked layers (default: {m.num_layers})")
    g.add_argument("--dropout", type=float, default=m.dropout,
                   help=f"dropout between stacked layers (default: {m.dropout:g})")
    g.add_argument("--init", choices=["torch", "keras"], default=m.init,
                   help=f"weight initialisation (default: {m.init})")
    g.add_argument("--peephole", action="store_true",
                   help="LSTM with peephole connections (the gates see the cell state; slower: no fused kernels)")
    if text:
        e = TextConfig().embedding_dim
        g.add_argument("--embedding-dim", type=int, default=e, metavar="E",
                       help=f"character embedding width; 0 feeds one-hot vectors (default: {e})")
        return
    h = CLASSIFY_DEFAULTS[1]
    g.add_argument("--bidirectional", action="store_true", help="read each sequence in both directions")
    g.add_argument("--pool", choices=["last", "mean", "attention"], default=h.pool,
                   help="how the outputs over time become one vector: last step, mean, or additive attention "
                        f"(default: {h.pool})")
    g.add_argument("--embedding-dim", type=int, default=h.embedding_dim, metavar="E",
                   help=f"character embedding width, for string data (default: {h.embedding_dim})")
    g.add_argument("--class-weights", choices=["none", "balanced"], default=h.class_weights,
                   help=f"balanced: weigh each class by n / (K * n_class) in the loss (default: {h.class_weights})")


def _train_args(p: argparse.ArgumentParser, t: TrainConfig, text: bool) -> None:
    """The training options, with the job's defaults ``t``."""
    g = p.add_argument_group("training")
    if text:
        x = TextConfig()
        g.add_argument("--seq-len", type=int, default=x.seq_len, metavar="N",
                       help=f"truncated-BPTT length: characters per chunk (default: {x.seq_len})")
        g.add_argument("--steps", type=int, default=x.steps, metavar="N",
                       help=f"optimiser steps, rounded to whole passes over the text (default: {x.steps})")
        g.add_argument("--batch-size", type=int, default=t.batch_size,
                       help=f"parallel streams the text is cut into (default: {t.batch_size})")
    else:
        g.add_argument("--epochs", type=int, default=t.epochs, help=f"maximum epochs (default: {t.epochs})")
        g.add_argument("--batch-size", type=int, default=t.batch_size,
                       help=f"sequences per batch (default: {t.batch_size})")
    g.add_argument("--lr", type=float, default=t.lr, help=f"learning rate, at most 10 (default: {t.lr:g})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=t.optimizer, help=f"optimiser (default: {t.optimizer})")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay,
                   help=f"L2 weight decay, in [0, 1] (default: {t.weight_decay:g})")
    g.add_argument("--clip-norm", type=float, default=t.clip_norm,
                   help=f"clip the gradient norm to this value (default: {t.clip_norm or 'off'})")
    g.add_argument("--patience", type=int, default=t.patience,
                   help=f"early stopping: {'validation checks (about 10 per run)' if text else 'epochs'} without a "
                        f"better validation loss before stopping; 0 = never; the best weights are kept "
                        f"(default: {t.patience})")
    seed_arg(g, t.seed)


def _out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--verbose", action="store_true", help="print the losses every few epochs")


def _vocab_args(g, defaults, unknown_help: str, min_count_help: str) -> None:
    """--unknown and --min-count: the character vocabulary's policy for unseen characters."""
    g.add_argument("--unknown", choices=["error", "skip", "replace"], default=defaults.unknown,
                   help=f"{unknown_help} (default: {defaults.unknown})")
    g.add_argument("--min-count", type=int, default=defaults.min_count,
                   help=f"{min_count_help} (default: {defaults.min_count})")


def add_job_parsers(sub) -> None:
    """Add ``classify`` and ``text`` (each with its own subcommands) to ``rnnkit``'s subparsers."""
    c = sub.add_parser("classify", help="sequence classification: fit, predict, evaluate",
                       description="Classify whole sequences (time series, multivariate, variable length, or "
                                   "strings) with a recurrent network.")
    cs = c.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = cs.add_parser("fit", help="train a classifier and write a run directory",
                      description="Train on TRAIN (a .ts, UCR .tsv, .csv or .npz file, or builtin:NAME) and "
                                  "write a run directory with the weights, classes, history, scores and plots.")
    p.add_argument("train", metavar="TRAIN", help="training data: .ts/.tsv/.csv/.npz, or builtin:ItalyPowerDemand_TRAIN, "
                                                 "builtin:JapaneseVowels_TRAIN, builtin:surnames")
    g = p.add_argument_group("data")
    g.add_argument("--test", metavar="TEST", help="labelled test data, scored after training (default: none)")
    g.add_argument("--label-col", metavar="COL", help="CSV: the label column (default: 'label')")
    g.add_argument("--id-col", metavar="COL", help="CSV long format: the column naming each row's series")
    g.add_argument("--text-col", metavar="COL", help="CSV of strings: the text column (default: 'text' if present)")
    g.add_argument("--znorm", action="store_true", help="z-normalise every series on its own (the UCR convention)")
    sd = SequenceDataConfig()
    g.add_argument("--scaler", choices=["standard", "minmax", "none"], default=sd.scaler,
                   help=f"per-feature scaling fitted on the training steps only (default: {sd.scaler})")
    g.add_argument("--val-frac", type=float, default=sd.val_frac, metavar="F",
                   help=f"fraction of TRAIN held out for validation, stratified by class (default: {sd.val_frac})")
    _vocab_args(g, sd, "strings: characters outside the vocabulary",
                "strings: characters seen fewer times in training count as unknown")
    _model_args(p, CLASSIFY_DEFAULTS[0], text=False)
    _train_args(p, CLASSIFY_DEFAULTS[2], text=False)
    _out_args(p)
    p = cs.add_parser("predict", help="predicted label and class probabilities for each sequence")
    _run_arg(p, "classify")
    p.add_argument("--data", required=True, metavar="FILE", help="sequences to classify (labels optional)")
    p.add_argument("--out", metavar="FILE.csv", help="write the predictions here (default: print them)")
    p = cs.add_parser("evaluate", help="accuracy, balanced accuracy, macro F1, per-class report, confusion matrix")
    _run_arg(p, "classify")
    p.add_argument("--data", required=True, metavar="FILE", help="labelled sequences to score")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    t = sub.add_parser("text", help="character language models: fit, generate, evaluate, suggest",
                       description="Train a character-level language model on a text and generate with it.")
    ts = t.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = ts.add_parser("fit", help="train a character model and write a run directory",
                      description="Train on CORPUS (a UTF-8 text file, or builtin:pydocs / builtin:zen) with "
                                  "stateful truncated BPTT; report validation bits per character next to n-gram "
                                  "baselines.")
    p.add_argument("corpus", metavar="CORPUS", help="UTF-8 text file, or builtin:pydocs or builtin:zen")
    g = p.add_argument_group("data")
    xd = TextConfig()
    g.add_argument("--val-frac", type=float, default=xd.val_frac, metavar="F",
                   help=f"last fraction of the text held out for validation (default: {xd.val_frac})")
    _vocab_args(g, xd, "characters outside the vocabulary in later prompts and texts",
                "characters seen fewer times count as unknown; needs --unknown replace/skip")
    _model_args(p, TEXT_DEFAULTS[0], text=True)
    _train_args(p, TEXT_DEFAULTS[1], text=True)
    _out_args(p)
    p = ts.add_parser("generate", help="sample text from a trained model")
    _run_arg(p, "text")
    p.add_argument("--prime", default="", metavar="TEXT", help="text to start from (default: the corpus' first character)")
    p.add_argument("--length", type=int, default=200, help="characters to generate (default: 200)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature; lower is more conservative, 0 = most likely (default: 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely characters; 0 = all (default: 0)")
    seed_arg(p, 0, "random seed; the same seed gives the same text")
    p = ts.add_parser("evaluate", help="bits per character of a text")
    _run_arg(p, "text")
    p.add_argument("--data", required=True, metavar="FILE.txt", help="UTF-8 text to score")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = ts.add_parser("suggest", help="most likely next characters and word completions after a prompt")
    _run_arg(p, "text")
    p.add_argument("--prime", required=True, metavar="TEXT", help="the text typed so far")
    p.add_argument("--k", type=int, default=5, help="suggestions of each kind, and the beam width (default: 5)")
    p.add_argument("--max-chars", type=int, default=20, help="longest completion searched (default: 20)")
    p.add_argument("--json", action="store_true", help="print the suggestions as JSON")


def _refuse_existing(a: argparse.Namespace, *sources: str | None) -> None:
    from .rundir import check_out
    check_out(a.out, a.force, protect=sources)  # refuse before spending minutes on training


def _callbacks(a: argparse.Namespace, epochs: int) -> list:
    from .pipeline import _loss_printer
    return [_loss_printer(epochs)] if a.verbose else []


def _scores_table(metrics: dict) -> str:
    from .metrics import format_table
    rows = {f"{part} ({m['n']})": m for part, m in metrics.items() if isinstance(m, dict) and "accuracy" in m}
    return format_table(rows, ["accuracy", "balanced_accuracy", "macro_f1"]).replace("model", "data ", 1)


def _per_class_table(report: dict) -> str:
    rows = [("class", "precision", "recall", "f1", "support")]
    rows += [(c, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["support"]))
             for c, r in report["per_class"].items()]
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join([r[0].ljust(w[0])] + [x.rjust(wi) for x, wi in zip(r[1:], w[1:])]) for r in rows)


def _classify_fit(a: argparse.Namespace) -> int:
    from .classify import fit_classifier, save_classifier_run
    from .config import ClassifierConfig, ModelConfig, SequenceDataConfig, TrainConfig
    from .metrics import format_confusion
    dc = SequenceDataConfig(source=a.train, test_source=a.test, label_col=a.label_col, id_col=a.id_col,
                            text_col=a.text_col, znorm=a.znorm, scaler=a.scaler, val_frac=a.val_frac,
                            unknown=a.unknown, min_count=a.min_count)
    mc = ModelConfig(cell=a.cell, hidden_size=a.hidden, num_layers=a.layers, dropout=a.dropout,
                     bidirectional=a.bidirectional, init=a.init, peephole=a.peephole)
    hc = ClassifierConfig(pool=a.pool, embedding_dim=a.embedding_dim, class_weights=a.class_weights)
    tc = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer,
                     weight_decay=a.weight_decay, clip_norm=a.clip_norm, patience=a.patience, seed=a.seed)
    _refuse_existing(a, a.train, a.test)
    run = fit_classifier(dc, mc, hc, tc, quiet=a.quiet, callbacks=_callbacks(a, tc.epochs))
    out = save_classifier_run(run, a.out, force=a.force)
    h, m = run.history, run.meta
    print(f"trained {mc.cell} ({mc.num_layers}x{mc.hidden_size}{', bidirectional' if mc.bidirectional else ''}, "
          f"pool {hc.pool}) on {m['n_train']} {m['input']} ({m['n_val']} held out for validation), "
          f"{len(run.classes)} classes, {len(h.rows)} epochs" + (f", best epoch {h.best_epoch}" if h.best_epoch else "")
          + (" (stopped early)" if h.stopped_early else ""))
    print(_scores_table(run.metrics))
    part = "test" if "test" in run.metrics else "validation" if "validation" in run.metrics else "train"
    print(f"confusion matrix ({part}):\n" + format_confusion(run.metrics[part]["confusion_matrix"], run.classes))
    print(f"run directory: {out}")
    return 0


def _classify_predict(a: argparse.Namespace) -> int:
    from .classify import load_classifier_run
    run = load_classifier_run(a.run)
    frame = run.predictions_frame(run.load_data(a.data, require_labels=False))
    if a.out:
        from .rundir import write_file_atomic
        write_file_atomic(a.out, lambda p: frame.to_csv(p, index=False))
        print(f"wrote {len(frame)} predictions to {a.out}")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _classify_evaluate(a: argparse.Namespace) -> int:
    from .classify import load_classifier_run
    from .metrics import format_confusion
    run = load_classifier_run(a.run)
    report = run.evaluate(run.load_data(a.data))
    if a.json:
        from .runs import _json_safe
        print(json.dumps(_json_safe(report), indent=2))
        return 0
    print(_scores_table({"data": report}))
    print(_per_class_table(report))
    print("confusion matrix:\n" + format_confusion(report["confusion_matrix"], run.classes))
    return 0


def _text_fit(a: argparse.Namespace) -> int:
    from .config import ModelConfig, TextConfig, TrainConfig
    from .text import fit_char_lm, save_text_run
    xc = TextConfig(source=a.corpus, seq_len=a.seq_len, steps=a.steps, val_frac=a.val_frac,
                    embedding_dim=a.embedding_dim, unknown=a.unknown, min_count=a.min_count)
    mc = ModelConfig(cell=a.cell, hidden_size=a.hidden, num_layers=a.layers, dropout=a.dropout, init=a.init,
                     peephole=a.peephole)
    tc = TrainConfig(batch_size=a.batch_size, lr=a.lr, optimizer=a.optimizer, weight_decay=a.weight_decay,
                     clip_norm=a.clip_norm, patience=a.patience, seed=a.seed)
    _refuse_existing(a, a.corpus)
    run = fit_char_lm(xc, mc, tc, quiet=a.quiet, callbacks=_callbacks(a, 20))
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
    from .text import load_text_run, read_text
    run = load_text_run(a.run)
    if a.action == "generate":
        import sys
        prime = a.prime or run.meta["first_char"]
        chunks = run.generate_iter(prime, a.length, a.temperature, a.top_k, a.seed)  # checks the settings first
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
        bpc = run.bits_per_char(text)
        if a.json:
            print(json.dumps({"data": name, "chars": len(text), "bits_per_char": bpc}))
        else:
            print(f"{name}: {bpc:.4f} bits per character over {len(text) - 1} scored characters")
        return 0
    result = run.suggest(a.prime, a.k, a.max_chars)
    if a.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print("next character  probability")
    for c, p in result["next"]:
        print(f"{c!r:<14}  {p:11.4f}")
    print("completion      probability")
    for s in result["completions"]:
        print(f"{s['text'] + ('' if s['complete'] else '...')!r:<14}  {s['prob']:11.4f}")
    return 0


def cmd_classify(a: argparse.Namespace) -> int:
    return {"fit": _classify_fit, "predict": _classify_predict, "evaluate": _classify_evaluate}[a.action](a)


def cmd_text(a: argparse.Namespace) -> int:
    return _text_fit(a) if a.action == "fit" else _text_other(a)


JOB_COMMANDS = {"classify": cmd_classify, "text": cmd_text}
