"""Character language models' settings (:class:`TextConfig`), the job's starting point, and the
shared settings it does not use."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import (UNKNOWN_POLICIES, ModelConfig, Serialisable, TrainConfig, check_choice, check_fraction,
                       check_positive, refuse_forecasting_settings, refuse_setting)

__all__ = ["TextConfig", "TEXT_DEFAULTS", "UNKNOWN_AT_USE", "refuse_unsupported"]

#: What ``evaluate``, ``generate`` and ``suggest`` (and their Python functions) do with characters
#: outside a trained model's vocabulary unless told otherwise (``--unknown``/``unknown=``): map them
#: to the unknown symbol, count them and report them (:mod:`rnnkit.tasks.text.data`). ``"error"``
#: refuses them, ``"skip"`` drops them.
UNKNOWN_AT_USE = "replace"


@dataclass(frozen=True)
class TextConfig(Serialisable):
    """A character language model's data and input settings.

    ``source`` is a UTF-8 text file or ``builtin:NAME``. The last ``val_frac`` of the text is
    the validation part. Training cuts the rest into ``TrainConfig.batch_size`` contiguous streams
    and runs truncated BPTT over chunks of ``seq_len`` characters, carrying the state across
    chunks. ``steps`` is the number of optimiser steps wanted; it is rounded to whole passes over
    the text. ``embedding_dim=0`` feeds one-hot vectors.

    ``unknown``/``min_count`` shape the vocabulary (:class:`rnnkit.data.vocab.CharVocab`):
    ``"replace"`` gives it a symbol U+FFFD, trained on the characters seen fewer than ``min_count``
    times (never trained when ``min_count`` is 1); ``"skip"`` drops those characters from training;
    ``"error"`` (the default) has neither and needs ``min_count=1``. Characters outside the
    vocabulary in later texts and prompts follow the policy given there (:data:`UNKNOWN_AT_USE` by
    default), whatever this one is.
    """

    # metadata: the command line's option for the field (rnnkit.cli_parse.config_arg; see
    # rnnkit.config.ModelConfig); ``source`` is the command's positional CORPUS
    source: str = "builtin:pydocs"
    seq_len: int = field(default=64, metadata={
        "help": "truncated-BPTT length: characters per chunk", "metavar": "N"})
    steps: int = field(default=1000, metadata={
        "help": "optimiser steps, rounded to whole passes over the text", "metavar": "N"})
    val_frac: float = field(default=0.1, metadata={
        "help": "last fraction of the text held out for validation", "metavar": "F"})
    embedding_dim: int = field(default=0, metadata={
        "help": "character embedding width; 0 feeds one-hot vectors", "metavar": "E"})
    unknown: str = field(default="error", metadata={
        "help": "the vocabulary's rare characters (seen fewer than --min-count times): replace = a trained "
                "unknown symbol U+FFFD, skip = dropped from training, error = none allowed; later texts and "
                "prompts choose their own --unknown", "choices": UNKNOWN_POLICIES})
    min_count: int = field(default=1, metadata={
        "help": "characters seen fewer times count as unknown; needs --unknown replace/skip"})

    def __post_init__(self) -> None:
        check_positive("seq_len", self.seq_len)
        check_positive("steps", self.steps)
        check_fraction("val_frac", self.val_frac)
        check_positive("embedding_dim", self.embedding_dim, zero_ok=True)
        check_choice("unknown", self.unknown, UNKNOWN_POLICIES)
        check_positive("min_count", self.min_count)


#: The settings a job starts from where the caller passes none: the job's function (given None)
#: and its command line's defaults are both these, so ``rnnkit classify fit`` and
#: ``fit_classifier()`` train the same model. Where a job's default differs from the dataclass
#: field default, the reason is the job's: a character model needs a wider network, a clipped
#: gradient and no early stopping (its validation loss is checked only about 10 times per run).
TEXT_DEFAULTS = (ModelConfig(hidden_size=128), TrainConfig(lr=0.002, clip_norm=5.0, patience=0))


def refuse_unsupported(model: ModelConfig, train: TrainConfig, *, text: TextConfig | None = None) -> None:
    """Raise :class:`~rnnkit.errors.ConfigError` for the first setting of ``model``/``train`` that a
    character model would ignore or replace; ``text`` gives the truncated-BPTT length."""
    job = "text"
    refuse_forecasting_settings(job, model, train)
    seq_len = text.seq_len if text is not None else TextConfig().seq_len
    if train.steps is not None:
        refuse_setting(job, f"TrainConfig.steps={train.steps}", "a character model's budget is TextConfig.steps "
                       "(--steps), rounded to whole passes over the text")
    if train.epochs != TrainConfig().epochs:
        refuse_setting(job, f"epochs={train.epochs}", "a character model's length is TextConfig.steps (--steps), "
                       "rounded to whole passes over the text")
    if train.tbptt not in (0, seq_len):
        refuse_setting(job, f"tbptt={train.tbptt}", f"the truncated-BPTT length is TextConfig.seq_len ({seq_len})")
