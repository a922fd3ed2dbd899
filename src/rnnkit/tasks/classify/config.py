"""Sequence classification's settings: the labelled sequences (:class:`SequenceDataConfig`), the
head (:class:`ClassifierConfig`), the job's starting point, and the shared settings it does not use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...config import (MAX_ENSEMBLE, UNKNOWN_POLICIES, ModelConfig, Serialisable, TrainConfig, check_choice,
                       check_ensemble, check_fraction, check_positive, refuse_forecasting_settings, refuse_setting)

__all__ = ["SequenceDataConfig", "ClassifierConfig", "CLASSIFY_DEFAULTS", "MAX_FRAMES", "frame_for",
           "refuse_unsupported", "SCALERS", "POOLS", "CLASS_WEIGHTS"]

#: the choices of SequenceDataConfig.scaler, ClassifierConfig.pool and ClassifierConfig.class_weights
SCALERS = ("standard", "minmax", "none")
POOLS = ("last", "mean", "attention")
CLASS_WEIGHTS = ("none", "balanced")

#: ``ClassifierConfig.frame=None`` groups a series' steps into frames so that the longest
#: training series is at most this many frames long (see :func:`frame_for`)
MAX_FRAMES = 40


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

    # metadata: the command line's option for the field (rnnkit.cli_parse.config_arg; see
    # rnnkit.config.ModelConfig); ``source`` is the command's positional TRAIN
    source: str = "builtin:ItalyPowerDemand_TRAIN"
    test_source: Optional[str] = field(default=None, metadata={
        "help": "labelled test data, scored after training", "flag": "test", "metavar": "TEST"})
    label_col: Optional[str] = field(default=None, metadata={
        "help": "CSV: the label column", "metavar": "COL", "off": "'label'"})
    id_col: Optional[str] = field(default=None, metadata={
        "help": "CSV long format: the column naming each row's series", "metavar": "COL",
        "off": "none, one row per series"})
    text_col: Optional[str] = field(default=None, metadata={
        "help": "CSV of strings: the text column", "metavar": "COL", "off": "'text' if present"})
    znorm: bool = field(default=False, metadata={
        "help": "z-normalise every series on its own (the UCR convention)"})
    scaler: str = field(default="standard", metadata={
        "help": "per-feature scaling fitted on the training steps only", "choices": SCALERS})
    val_frac: float = field(default=0.2, metadata={
        "help": "fraction of TRAIN held out for validation, stratified by class", "metavar": "F"})
    unknown: str = field(default="replace", metadata={
        "help": "strings: characters outside the vocabulary", "choices": UNKNOWN_POLICIES})
    min_count: int = field(default=1, metadata={
        "help": "strings: characters seen fewer times in training count as unknown"})

    def __post_init__(self) -> None:
        check_choice("scaler", self.scaler, SCALERS)
        check_fraction("val_frac", self.val_frac)
        check_choice("unknown", self.unknown, UNKNOWN_POLICIES)
        check_positive("min_count", self.min_count)


@dataclass(frozen=True)
class ClassifierConfig(Serialisable):
    """The classifier's input framing, how outputs over time are pooled, the loss weighting, and how
    many classifiers vote.

    ``frame``: the network reads each numeric series in frames of ``frame`` consecutive steps,
    one frame (``frame`` x features values) per recurrent step, the last frame of each series
    zero-filled past its end; so a series of ``T`` steps takes ``ceil(T / frame)`` recurrent
    steps. ``None`` (the default) chooses it from the longest training series (:func:`frame_for`:
    at most :data:`MAX_FRAMES` frames; series that short are read step by step); ``1`` reads every
    series step by step. A recurrent network trained by backpropagation through time learns
    dependencies over tens of steps far more reliably than over hundreds, and each recurrent step
    costs the same whatever its width, so frames make long series both learnable and fast.
    The run stores the frame it used. Strings are always read character by character.

    ``pool``: ``"last"`` (the output at each sequence's last step; for a bidirectional encoder
    the backward direction's output at step 0), ``"mean"`` (over the valid steps) or
    ``"attention"`` (additive attention over the valid steps). ``embedding_dim``: width of the
    character embedding for string inputs. ``class_weights="balanced"`` weighs each class by
    ``n / (K * n_class)`` in the cross-entropy, for imbalanced data.

    ``ensemble``: the number of classifiers of this design, trained from the seeds ``seed``,
    ``seed + 1``, ... on the same training/validation split (side by side, on every core), whose
    class probabilities are averaged (the soft vote). The mean of probability vectors is one
    itself (it sums to 1) and keeps each member's confidence; a per-class median would not sum to
    1, and a vote of labels throws the confidence away and ties often among a few members.
    """

    # metadata: the command line's option for the field (rnnkit.cli_parse.config_arg)
    pool: str = field(default="last", metadata={
        "help": "how the outputs over time become one vector: last step, mean, or additive attention",
        "choices": POOLS})
    embedding_dim: int = field(default=16, metadata={
        "help": "character embedding width, for string data", "metavar": "E"})
    class_weights: str = field(default="none", metadata={
        "help": "balanced: weigh each class by n / (K * n_class) in the loss", "choices": CLASS_WEIGHTS})
    frame: Optional[int] = field(default=None, metadata={
        "help": "read each series K steps at a time, one frame of K steps per recurrent step (1: step by step)",
        "metavar": "K",
        "off": f"the fewest steps that cut the longest training series into at most {MAX_FRAMES} frames"})
    ensemble: int = field(default=1, metadata={
        "help": "train N classifiers from the seeds SEED..SEED+N-1 side by side and predict the mean of their "
                f"class probabilities (at most {MAX_ENSEMBLE})", "metavar": "N"})

    def __post_init__(self) -> None:
        check_ensemble(self.ensemble)
        if self.frame is not None:
            check_positive("frame", self.frame)
        check_choice("pool", self.pool, POOLS)
        check_positive("embedding_dim", self.embedding_dim)
        check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)


#: The settings a job starts from where the caller passes none: the job's function (given None)
#: and its command line's defaults are both these, so ``rnnkit classify fit`` and
#: ``fit_classifier()`` train the same model. Where a job's default differs from the dataclass
#: field default, the reason is the job's. Classification: chosen by measurement on five UCR/UEA
#: sets (ItalyPowerDemand, JapaneseVowels, Trace, Coffee, PigCVP; 5-10 seeds each, see
#: docs/classification_and_text.md): a GRU (LSTMs stalled more often), last-step pooling (mean
#: and attention pooling lost accuracy on four of the five sets), frames of at most
#: MAX_FRAMES steps (ClassifierConfig's default), and a budget of 2000 optimiser steps at a
#: learning rate of 0.01 with the gradient norm clipped to 1: an epoch of a 50-series set is 2
#: steps, so a budget in epochs left such sets untrained, and 1000 steps still left some seeds
#: stuck on a plateau. No early stopping (validation sets of a few series stop on noise); the
#: weights of the best validation loss are kept. The epoch cap equals the budget: every epoch
#: takes at least one step, so the cap never cuts the budget short. An ensemble of 5 (the soft
#: vote of seeds seed..seed+4, ClassifierConfig.ensemble; the field's own default, 1, is what a
#: ClassifierConfig built by hand gets): on seeds 0-9 it kept ItalyPowerDemand at or above 1-NN
#: DTW on every seed (a single classifier: 8 of 10) and Trace at 1.000 on 8 of 10 (single: 6 of
#: 10), for 5 times the CPU time; 10 members did the same on Trace for twice that.
CLASSIFY_DEFAULTS = (ModelConfig(cell="gru"), ClassifierConfig(ensemble=5),
                     TrainConfig(steps=2000, epochs=2000, lr=0.01, clip_norm=1.0, patience=0))


def frame_for(frame: Optional[int], longest: int) -> int:
    """The steps per frame: ``frame`` when given, else the fewest that cut a series of ``longest``
    steps into at most :data:`MAX_FRAMES` frames (1 for series up to that long)."""
    if frame is not None:
        return frame
    return max(1, -(-longest // MAX_FRAMES))


def refuse_unsupported(model: ModelConfig, train: TrainConfig) -> None:
    """Raise :class:`~rnnkit.errors.ConfigError` for the first setting of ``model``/``train`` that
    classification would ignore or replace."""
    job = "classification"
    refuse_forecasting_settings(job, model, train)
    if train.stateful or train.tbptt:
        refuse_setting(job, "stateful/tbptt", "every sequence is classified from a zero state; they are forecasting "
                       "and text settings")
