"""The refit (``DataConfig.refit``): after early stopping chose each member's epoch count on the
validation rows, train the member again on the training *and* validation rows for that many
epochs, so that the forecaster has seen the rows just before the forecast origin.

What changes and what does not, so that data still flows one way (DESIGN.md):

- the rows: the windows whose targets end by the last validation row (``Prepared.windows(0,
  val_end, stride)``: the training windows, the validation windows and those straddling the
  boundary), never a test row;
- the same transform, scaler and per-window normalisation, fitted on the training rows only
  (nothing is fitted again on the validation rows but the network's weights), the same seed and
  so the same initial weights (:func:`~rnnkit.tasks.forecast.fitting.new_member`), the same
  settings, and the same engine as the first training (the fused trainer where it ran);
- the epochs: the one whose weights the first training kept (its best epoch with ``restore_best``,
  else its last), run in full with the learning-rate schedule the first training planned, without
  early stopping (no rows are left to stop on) (:func:`rnnkit.training.loop.fit`'s ``epochs``);
- what is not refitted: a member that fell back to the naive forecast (the decision made on the
  validation rows stands: it keeps forecasting the naive forecast exactly), every member of a
  run without validation rows (nothing chose an epoch count) or with stateful training, and every
  member of a quantile or distribution head (``ModelConfig.quantiles``). Their levels are the
  spread of the errors the head saw, and a refit of the chosen epoch count with no rows left to
  check it on fits them to in-sample errors: on `make quality`'s 14 series over 4 rolling origins
  (seeds 0-2, 580 points; benchmarks/quality/coverage.py) the quantile head's 80 % and 95 %
  intervals covered 0.793 and 0.904 with the refit and 0.806 and 0.916 without, 0.669 and 0.799
  against 0.779 and 0.864 at the last origin (seed 0), and the 0.5 level's geometric-mean MASE was
  0.731 with it and 0.723 without.

The cost is one more training of each refitted member for its best epoch count, on a few more
windows (validation is about 10 % of the rows): less than the first training, which also ran the
epochs of its patience after the best one and checked validation each epoch. On ``make
quality``'s 14 series the refits' epochs x windows came to 0.49 of the first trainings' (0.34-0.88
where a member was refitted), and the fits took 1.23x the CPU time in all. The run records the first training's
history (the curve early stopping read) and, in meta's ``refit_epochs``, the epochs each member
was refitted for (0: not refitted).
"""

from __future__ import annotations

from typing import Callable, Sequence

from ...config import ModelConfig, TrainConfig
from ...training.loop import History, fit, planned_epochs, steps_per_epoch
from ...training.members import threads_are_deterministic, train_side_by_side
from .fitting import Prepared, new_member
from .losses import forecast_fused_task, forecast_loss
from .model import Forecaster

__all__ = ["refit_epochs", "refit_config", "refit_members"]


def refit_epochs(prep: Prepared, history: History, train_config: TrainConfig, fell_back: bool,
                 levels: bool = False) -> int:
    """The epochs a member trained on ``prep`` is refitted for: the epoch whose weights its first
    training kept, or 0 where it is not refitted (see the module docstring; ``levels``: the member
    has a quantile or distribution head)."""
    if prep.data_config.refit == "none" or prep.val is None or prep.windows is None or fell_back or not history.rows \
            or levels:
        return 0
    if train_config.restore_best and history.best_epoch:
        return history.best_epoch
    return len(history.rows)


def refit_config(train_config: TrainConfig, prep: Prepared, history: History) -> TrainConfig:
    """The settings of a member's refit: its own (seed included), planning the epochs its first
    training planned (so a schedule is sized alike; :func:`refit_members` stops at the chosen one),
    without a step budget (each refit epoch is a whole pass), on the engine the first training ran."""
    planned = planned_epochs(train_config, steps_per_epoch(prep.train, train_config))
    return train_config.replace(epochs=planned, steps=None, engine="fused" if history.engine == "fused" else "torch")


def refit_members(preps: Sequence[Prepared], models: Sequence[Forecaster], histories: Sequence[History],
                  fallback: Sequence[bool], model_config: ModelConfig, train_config: TrainConfig, *,
                  quiet: bool = True,
                  say: Callable[[str], None] = lambda s: None) -> tuple[list[Forecaster], list[int], list[History]]:
    """Refit each member ``k`` (seed ``train_config.seed + k``, trained on ``preps[k]``) where
    :func:`refit_epochs` says so, side by side on every core as they were first trained.

    Returns ``(models, epochs, histories)``: the refitted model in place of each refitted member
    (the others unchanged), the epochs each was refitted for (0: not refitted), and the refits'
    histories (their training losses; no validation loss: no rows are left to check)."""
    levels = bool(model_config.quantiles)  # a distribution head fills them in too
    epochs = [refit_epochs(p, h, train_config, naive, levels) for p, h, naive in zip(preps, histories, fallback)]
    todo = [k for k, e in enumerate(epochs) if e]
    if not todo:
        return list(models), epochs, []
    say(f"refit: {len(todo)} member(s) on the training and validation rows, for {[epochs[k] for k in todo]} epochs")

    # the initial weights of the first training, built one after another: each seeds torch's global
    # generator, which the threads below share
    fresh = {k: new_member(preps[k], model_config, train_config.seed + k) for k in todo}

    def one(i: int, halt) -> tuple[Forecaster, History]:
        k = todo[i]
        p, model = preps[k], fresh[k]
        config = refit_config(train_config.replace(seed=train_config.seed + k), p, histories[k])
        rows = p.windows(0, p.split.val_end, p.data_config.stride)
        history = fit(model, forecast_loss(model, config), rows, None, config, quiet=quiet or len(todo) > 1,
                      callbacks=[halt], fused=forecast_fused_task(model, config, rows, None), epochs=epochs[k])
        return model, history
    done = train_side_by_side(one, len(todo), parallel=threads_are_deterministic(model_config))
    out = list(models)
    for k, (model, _) in zip(todo, done):
        out[k] = model
    return out, epochs, [h for _, h in done]
