"""rnnkit: recurrent neural networks for sequences (Elman, Jordan, LSTM, GRU) on PyTorch.

Layers and cells are drop-in twins of torch.nn's; the workflow (data -> windows -> training ->
forecasts -> metrics -> run directory) is :func:`fit_forecaster` and :func:`load_run`, the same
functions the ``rnnkit`` command line calls; :func:`fit_classifier` and :func:`fit_char_lm` are
the classification and character-model jobs. Models and the workflow use ``(B, T, F)`` tensors.
Submodules with more: ``rnnkit.metrics``, ``rnnkit.plots``, ``rnnkit.forecast``.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

# Public names load on first use (PEP 562), so that `import rnnkit.cli` - the command line, whose
# first job is to handle Ctrl-C - does not wait for torch and pandas before it can do anything.
# The names, their modules and `__all__` are the same as with eager imports; type checkers and
# `from rnnkit import *` see them all.
_LAZY = {
    "cells": ("ElmanCell", "GRUCell", "JordanCell", "LSTMCell", "RecurrentCell", "keras_init_"),
    "classify": ("ClassifierRun", "fit_classifier", "load_classifier_run", "save_classifier_run"),
    "config": ("ClassifierConfig", "DataConfig", "ModelConfig", "SequenceDataConfig", "TextConfig", "TrainConfig"),
    "convert": ("from_torch", "summary", "to_torch"),
    "data": ("Scaler", "SeriesData", "list_builtins", "load_builtin", "make_windows", "read_series", "split_series"),
    "errors": ("ConfigError", "DataError", "RnnkitError", "RunError", "ShapeError", "TrainingError"),
    "layers": ("GRU", "LSTM", "RNN", "Jordan", "Recurrent"),
    "models": ("CharLM", "Forecaster", "SequenceClassifier"),
    "pipeline": ("ForecastRun", "fit_forecaster"),
    "runs": ("load_run", "save_forecast_run", "save_run"),
    "seqdata": ("SequenceData", "read_sequences"),
    "text": ("TextRun", "fit_char_lm", "load_text_run", "read_text", "save_text_run"),
    "train": ("History", "fit"),
    "vocab": ("CharVocab",),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

if _TYPE_CHECKING:  # pragma: no cover
    from .cells import ElmanCell, GRUCell, JordanCell, LSTMCell, RecurrentCell, keras_init_
    from .classify import ClassifierRun, fit_classifier, load_classifier_run, save_classifier_run
    from .config import ClassifierConfig, DataConfig, ModelConfig, SequenceDataConfig, TextConfig, TrainConfig
    from .convert import from_torch, summary, to_torch
    from .data import Scaler, SeriesData, list_builtins, load_builtin, make_windows, read_series, split_series
    from .errors import ConfigError, DataError, RnnkitError, RunError, ShapeError, TrainingError
    from .layers import GRU, LSTM, RNN, Jordan, Recurrent
    from .models import CharLM, Forecaster, SequenceClassifier
    from .pipeline import ForecastRun, fit_forecaster
    from .runs import load_run, save_forecast_run, save_run
    from .seqdata import SequenceData, read_sequences
    from .text import TextRun, fit_char_lm, load_text_run, read_text, save_text_run
    from .train import History, fit
    from .vocab import CharVocab


__version__ = "0.1.0"

__all__ = [
    "__version__",
    # cells and layers
    "RecurrentCell", "ElmanCell", "JordanCell", "LSTMCell", "GRUCell", "keras_init_",
    "Recurrent", "RNN", "LSTM", "GRU", "Jordan", "to_torch", "from_torch", "summary",
    # models and training
    "Forecaster", "ModelConfig", "DataConfig", "TrainConfig", "fit", "History",
    # data
    "SeriesData", "read_series", "list_builtins", "load_builtin", "Scaler", "make_windows", "split_series",
    # workflow and runs
    "fit_forecaster", "ForecastRun", "load_run", "save_run", "save_forecast_run",
    # sequence classification and character models
    "SequenceClassifier", "CharLM", "SequenceDataConfig", "ClassifierConfig", "TextConfig",
    "fit_classifier", "ClassifierRun", "save_classifier_run", "load_classifier_run",
    "fit_char_lm", "TextRun", "save_text_run", "load_text_run", "read_text",
    "read_sequences", "SequenceData", "CharVocab",
    # errors
    "RnnkitError", "DataError", "ConfigError", "ShapeError", "RunError", "TrainingError",
]


def __getattr__(name: str):
    import importlib
    import importlib.util
    module = _MODULE_OF.get(name)
    if module is None:  # a submodule such as rnnkit.metrics, as eager imports made them available
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
