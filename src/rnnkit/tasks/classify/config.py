"""Sequence classification's settings: the labelled sequences (:class:`SequenceDataConfig`), the
head (:class:`ClassifierConfig`), the job's starting point, and the shared settings it does not use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...config import (UNKNOWN_POLICIES, ModelConfig, Serialisable, TrainConfig, check_choice, check_fraction,
                       check_positive, refuse_forecasting_settings, refuse_setting)

__all__ = ["SequenceDataConfig", "ClassifierConfig", "CLASSIFY_DEFAULTS", "refuse_unsupported"]


@dataclass(frozen=True)
class SequenceDataConfig(Serialisable):
    """How a file of labelled sequences becomes padded tensors for classification.

    ``source`` (and ``test_source``) is a ``.ts``/``.tsv``/``.csv``/``.npz`` file or
    ``builtin:NAME`` (see :func:`rnnkit.tasks.classify.data.read_sequences` for the formats and the meaning of
    ``label_col``, ``id_col`` and ``text_col``). ``znorm`` z-normalises every series on its own
    (the UCR convention); ``scaler`` is then fitted on the training steps only. ``val_frac`` of
    the training file, stratified by class with ``seed`` of the TrainConfig, is held out for
    validation. ``unknown`` and ``min_count`` apply to strings (see :class:`rnnkit.data.vocab.CharVocab`).
    """

    source: str = "builtin:ItalyPowerDemand_TRAIN"
    test_source: Optional[str] = None
    label_col: Optional[str] = None
    id_col: Optional[str] = None
    text_col: Optional[str] = None
    znorm: bool = False
    scaler: str = "standard"
    val_frac: float = 0.2
    unknown: str = "replace"
    min_count: int = 1

    def __post_init__(self) -> None:
        check_choice("scaler", self.scaler, ("standard", "minmax", "none"))
        check_fraction("val_frac", self.val_frac)
        check_choice("unknown", self.unknown, UNKNOWN_POLICIES)
        check_positive("min_count", self.min_count)


@dataclass(frozen=True)
class ClassifierConfig(Serialisable):
    """The classifier's head: how outputs over time are pooled, and the loss weighting.

    ``pool``: ``"last"`` (the output at each sequence's last step; for a bidirectional encoder
    the backward direction's output at step 0), ``"mean"`` (over the valid steps) or
    ``"attention"`` (additive attention over the valid steps). ``embedding_dim``: width of the
    character embedding for string inputs. ``class_weights="balanced"`` weighs each class by
    ``n / (K * n_class)`` in the cross-entropy, for imbalanced data.
    """

    pool: str = "last"
    embedding_dim: int = 16
    class_weights: str = "none"

    def __post_init__(self) -> None:
        check_choice("pool", self.pool, ("last", "mean", "attention"))
        check_positive("embedding_dim", self.embedding_dim)
        check_choice("class_weights", self.class_weights, ("none", "balanced"))


#: The settings a job starts from where the caller passes none: the job's function (given None)
#: and its command line's defaults are both these, so ``rnnkit classify fit`` and
#: ``fit_classifier()`` train the same model. Where a job's default differs from the dataclass
#: field default, the reason is the job's: classification on short series does best with a GRU
#: and a larger step; a character model needs a wider network, a clipped gradient and no early
#: stopping (its validation loss is checked only about 10 times per run).
CLASSIFY_DEFAULTS = (ModelConfig(cell="gru"), ClassifierConfig(), TrainConfig(lr=0.003))


def refuse_unsupported(model: ModelConfig, train: TrainConfig) -> None:
    """Raise :class:`~rnnkit.errors.ConfigError` for the first setting of ``model``/``train`` that
    classification would ignore or replace."""
    job = "classification"
    refuse_forecasting_settings(job, model, train)
    if train.stateful or train.tbptt:
        refuse_setting(job, "stateful/tbptt", "every sequence is classified from a zero state; they are forecasting "
                       "and text settings")
