"""rnnkit: recurrent neural networks for sequences (Elman, Jordan, LSTM, GRU) on PyTorch.

Layers and cells are drop-in twins of torch.nn's; the workflow (data -> windows -> training ->
forecasts -> metrics -> run directory) is :func:`fit_forecaster` and :func:`load_run`, the same
functions the ``rnnkit`` command line calls; :func:`fit_classifier` and :func:`fit_char_lm` are
the classification and character-model jobs. Models and the workflow use ``(B, T, F)`` tensors.
Submodules with more: ``rnnkit.nn`` (the math), ``rnnkit.kernels``, ``rnnkit.training``,
``rnnkit.data`` and each job's ``rnnkit.tasks.forecast|classify|text`` (its metrics, plots and
helpers); see the README's "Project layout".
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

# Public names load on first use (PEP 562), so that `import rnnkit.cli` - the command line, whose
# first job is to handle Ctrl-C - does not wait for torch and pandas before it can do anything.
# The names, their modules and `__all__` are the same as with eager imports; type checkers and
# `from rnnkit import *` see them all.
_LAZY = {
    "nn.cells": ("ElmanCell", "GRUCell", "JordanCell", "LSTMCell", "RecurrentCell"),
    "nn.init": ("keras_init_",),
    "nn.convert": ("from_torch", "summary", "to_torch"),
    "nn.layers": ("Recurrent",),
    "nn.dropin": ("GRU", "LSTM", "RNN", "Jordan"),
    "config": ("ModelConfig", "TrainConfig"),
    "errors": ("ConfigError", "DataError", "RnnkitError", "RunError", "ShapeError", "TrainingError"),
    "training.loop": ("History", "fit"),
    "data.scaler": ("Scaler",),
    "data.series": ("SeriesData",),
    "data.builtin": ("list_builtins", "load_builtin"),
    "data.sources": ("read_series",),
    "data.split": ("split_series",),
    "data.windows": ("make_windows",),
    "data.vocab": ("CharVocab",),
    "tasks": ("load_run",),
    "tasks.forecast.config": ("DataConfig", "SearchConfig"),
    "tasks.forecast.model": ("Forecaster",),
    "tasks.forecast.workflow": ("ForecastRun", "fit_forecaster"),
    "tasks.forecast.run": ("save_forecast_run", "save_run"),
    "tasks.classify.config": ("ClassifierConfig", "SequenceDataConfig"),
    "tasks.classify.data": ("SequenceData", "read_sequences"),
    "tasks.classify.model": ("SequenceClassifier",),
    "tasks.classify.workflow": ("ClassifierRun", "fit_classifier"),
    "tasks.classify.run": ("load_classifier_run", "save_classifier_run"),
    "tasks.text.config": ("TextConfig",),
    "tasks.text.model": ("CharLM",),
    "tasks.text.workflow": ("TextRun", "fit_char_lm", "read_text"),
    "tasks.text.run": ("load_text_run", "save_text_run"),
    "tasks.export.onnx_file": ("export_onnx",),
    "tasks.sweep.config": ("SweepConfig",),
    "tasks.sweep.workflow": ("sweep", "SweepResult"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

if _TYPE_CHECKING:  # pragma: no cover
    from .nn.cells import ElmanCell, GRUCell, JordanCell, LSTMCell, RecurrentCell
    from .nn.init import keras_init_
    from .nn.convert import from_torch, summary, to_torch
    from .nn.layers import Recurrent
    from .nn.dropin import GRU, LSTM, RNN, Jordan
    from .config import ModelConfig, TrainConfig
    from .errors import ConfigError, DataError, RnnkitError, RunError, ShapeError, TrainingError
    from .training.loop import History, fit
    from .data.scaler import Scaler
    from .data.series import SeriesData
    from .data.builtin import list_builtins, load_builtin
    from .data.sources import read_series
    from .data.split import split_series
    from .data.windows import make_windows
    from .data.vocab import CharVocab
    from .tasks import load_run
    from .tasks.forecast.config import DataConfig, SearchConfig
    from .tasks.forecast.model import Forecaster
    from .tasks.forecast.workflow import ForecastRun, fit_forecaster
    from .tasks.forecast.run import save_forecast_run, save_run
    from .tasks.classify.config import ClassifierConfig, SequenceDataConfig
    from .tasks.classify.data import SequenceData, read_sequences
    from .tasks.classify.model import SequenceClassifier
    from .tasks.classify.workflow import ClassifierRun, fit_classifier
    from .tasks.classify.run import load_classifier_run, save_classifier_run
    from .tasks.text.config import TextConfig
    from .tasks.text.model import CharLM
    from .tasks.text.workflow import TextRun, fit_char_lm, read_text
    from .tasks.text.run import load_text_run, save_text_run
    from .tasks.export.onnx_file import export_onnx
    from .tasks.sweep.config import SweepConfig
    from .tasks.sweep.workflow import SweepResult, sweep


from ._version import __version__

__all__ = [
    "__version__",
    # cells and layers
    "RecurrentCell", "ElmanCell", "JordanCell", "LSTMCell", "GRUCell", "keras_init_",
    "Recurrent", "RNN", "LSTM", "GRU", "Jordan", "to_torch", "from_torch", "summary",
    # models and training
    "Forecaster", "ModelConfig", "DataConfig", "SearchConfig", "TrainConfig", "fit", "History",
    # data
    "SeriesData", "read_series", "list_builtins", "load_builtin", "Scaler", "make_windows", "split_series",
    # workflow and runs
    "fit_forecaster", "ForecastRun", "load_run", "save_run", "save_forecast_run",
    # sequence classification and character models
    "SequenceClassifier", "CharLM", "SequenceDataConfig", "ClassifierConfig", "TextConfig",
    "fit_classifier", "ClassifierRun", "save_classifier_run", "load_classifier_run",
    "fit_char_lm", "TextRun", "save_text_run", "load_text_run", "read_text",
    "read_sequences", "SequenceData", "CharVocab",
    # deployment
    "export_onnx",
    # many fits at once
    "sweep", "SweepConfig", "SweepResult",
    # errors
    "RnnkitError", "DataError", "ConfigError", "ShapeError", "RunError", "TrainingError",
]


def __getattr__(name: str):
    import importlib
    import importlib.util
    module = _MODULE_OF.get(name)
    if module is None:  # a submodule such as rnnkit.nn, as eager imports made them available
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
