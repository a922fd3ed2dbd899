"""``rnnkit classify fit|predict|evaluate``: sequence classification's command line.

:func:`register` adds the command to ``rnnkit``'s subparsers; :data:`COMMANDS` maps its name to the
handler. The handlers call the same functions as the Python API (:mod:`rnnkit.tasks.classify`),
nothing more; ``rnnkit.cli.main`` reports their errors (one line, exit status 2). The job's modules
are imported when a command runs, so that ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import argparse
import json

from ...cli_parse import (config_arg, config_values, loss_callbacks, model_args, out_args, refuse_existing, run_arg,
                          train_args)
from ...config import ModelConfig, TrainConfig
from .config import CLASSIFY_DEFAULTS, ClassifierConfig, SequenceDataConfig

__all__ = ["register", "cmd_classify", "COMMANDS"]

# the data options' defaults are SequenceDataConfig's own (CLASSIFY_DEFAULTS holds the model, head and training)
_SD = SequenceDataConfig()


def register(sub) -> None:
    """Add ``rnnkit classify`` (with its subcommands fit, predict, evaluate) to ``rnnkit``'s subparsers."""
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
    for name in ("test_source", "label_col", "id_col", "text_col", "znorm", "scaler", "val_frac", "unknown",
                 "min_count"):
        config_arg(g, _SD, name)
    m, h, t = CLASSIFY_DEFAULTS
    g = model_args(p, m)
    config_arg(g, m, "bidirectional", help="read each sequence in both directions")
    for name in ("pool", "frame", "embedding_dim", "class_weights", "ensemble"):
        config_arg(g, h, name)
    g = p.add_argument_group("training")
    config_arg(g, t, "epochs")
    config_arg(g, t, "steps")
    config_arg(g, t, "batch_size", help="sequences per batch")
    train_args(g, t, "epochs")
    out_args(p)
    p = cs.add_parser("predict", help="predicted label and class probabilities for each sequence")
    run_arg(p, "classify")
    p.add_argument("--data", required=True, metavar="FILE", help="sequences to classify (labels optional)")
    p.add_argument("--out", metavar="FILE.csv", help="write the predictions here (default: print them)")
    p = cs.add_parser("evaluate", help="accuracy, balanced accuracy, macro F1, per-class report, confusion matrix")
    run_arg(p, "classify")
    p.add_argument("--data", required=True, metavar="FILE", help="labelled sequences to score")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _scores_table(metrics: dict) -> str:
    from ...report import format_table
    rows = {f"{part} ({m['n']})": m for part, m in metrics.items() if isinstance(m, dict) and "accuracy" in m}
    return format_table(rows, ["accuracy", "balanced_accuracy", "macro_f1"]).replace("model", "data ", 1)


def _per_class_table(report: dict) -> str:
    rows = [("class", "precision", "recall", "f1", "support")]
    rows += [(c, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["support"]))
             for c, r in report["per_class"].items()]
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join([r[0].ljust(w[0])] + [x.rjust(wi) for x, wi in zip(r[1:], w[1:])]) for r in rows)


def _classify_fit(a: argparse.Namespace) -> int:
    from .workflow import fit_classifier
    from .run import save_classifier_run
    from .metrics import format_confusion
    dc = SequenceDataConfig(source=a.train, **config_values(a, SequenceDataConfig))
    mc = ModelConfig(**config_values(a, ModelConfig))
    hc = ClassifierConfig(**config_values(a, ClassifierConfig))
    tc = TrainConfig(**config_values(a, TrainConfig))
    refuse_existing(a, dc.source, dc.test_source)
    run = fit_classifier(dc, mc, hc, tc, quiet=a.quiet, callbacks=loss_callbacks(a, tc.epochs))
    out = save_classifier_run(run, a.out, force=a.force)
    h, m = run.history, run.meta
    hc = run.head_config  # with the frame it chose
    print(f"trained {mc.cell} ({mc.num_layers}x{mc.hidden_size}{', bidirectional' if mc.bidirectional else ''}, "
          f"pool {hc.pool}{f', frames of {hc.frame} steps' if hc.frame > 1 else ''}) on {m['n_train']} {m['input']} ({m['n_val']} held out for validation), "
          f"{len(run.classes)} classes, " + (_training_summary(h) if hc.ensemble == 1 else _ensemble_summary(run)))
    print(_scores_table(run.metrics))
    part = "test" if "test" in run.metrics else "validation" if "validation" in run.metrics else "train"
    print(f"confusion matrix ({part}):\n" + format_confusion(run.metrics[part]["confusion_matrix"], run.classes))
    print(f"run directory: {out}")
    return 0


def _training_summary(h) -> str:
    return (f"{len(h.rows)} epochs" + (f", best epoch {h.best_epoch}" if h.best_epoch else "")
            + (" (stopped early)" if h.stopped_early else ""))


def _ensemble_summary(run) -> str:
    """``an ensemble of 5 (seeds 0..4, ...), best epochs ..., validation accuracy ...``."""
    m, seed = run.meta, run.train_config.seed
    accs = m["member_val_accuracy"]
    return (f"an ensemble of {m['ensemble']} (seeds {seed}..{seed + m['ensemble'] - 1}, predicting the mean of their "
            f"probabilities), best epochs {' '.join(map(str, m['member_best_epochs']))}"
            + ("" if accs is None else ", validation accuracies " + " ".join(f"{v:.3f}" for v in accs)))


def _classify_predict(a: argparse.Namespace) -> int:
    from .run import load_classifier_run
    run = load_classifier_run(a.run)
    frame = run.predictions_frame(run.load_data(a.data, require_labels=False))
    if a.out:
        from ...training.atomic import write_file_atomic
        write_file_atomic(a.out, lambda p: frame.to_csv(p, index=False))
        print(f"wrote {len(frame)} predictions to {a.out}")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _classify_evaluate(a: argparse.Namespace) -> int:
    from .run import load_classifier_run
    from .metrics import format_confusion
    run = load_classifier_run(a.run)
    report = run.evaluate(run.load_data(a.data))
    if a.json:
        from ...training.runs import json_safe
        print(json.dumps(json_safe(report), indent=2))
        return 0
    print(_scores_table({"data": report}))
    print(_per_class_table(report))
    print("confusion matrix:\n" + format_confusion(report["confusion_matrix"], run.classes))
    return 0


def cmd_classify(a: argparse.Namespace) -> int:
    return {"fit": _classify_fit, "predict": _classify_predict, "evaluate": _classify_evaluate}[a.action](a)


COMMANDS = {"classify": cmd_classify}
