"""``rnnkit.__all__`` is exactly the public surface."""

import inspect

import rnnkit

EXPECTED = {
    "__version__",
    "RecurrentCell", "ElmanCell", "JordanCell", "LSTMCell", "GRUCell", "keras_init_",
    "Recurrent", "RNN", "LSTM", "GRU", "Jordan", "to_torch", "from_torch", "summary",
    "Forecaster", "ModelConfig", "DataConfig", "SearchConfig", "TrainConfig", "fit", "History",
    "SeriesData", "read_series", "list_builtins", "load_builtin", "Scaler", "make_windows", "split_series",
    "fit_forecaster", "ForecastRun", "load_run", "save_run", "save_forecast_run",
    "SequenceClassifier", "CharLM", "SequenceDataConfig", "ClassifierConfig", "TextConfig",
    "fit_classifier", "ClassifierRun", "save_classifier_run", "load_classifier_run",
    "fit_char_lm", "TextRun", "save_text_run", "load_text_run", "read_text",
    "read_sequences", "SequenceData", "CharVocab",
    "export_onnx",
    "sweep", "SweepConfig", "SweepResult",
    "RnnkitError", "DataError", "ConfigError", "ShapeError", "RunError", "TrainingError",
}


def test_all_is_exact():
    assert set(rnnkit.__all__) == EXPECTED
    assert len(rnnkit.__all__) == len(set(rnnkit.__all__)), "duplicates in __all__"


def test_every_public_name_exists_and_nothing_else_leaks():
    for name in rnnkit.__all__:
        assert hasattr(rnnkit, name), name
    public = {n for n, v in vars(rnnkit).items()
              if not n.startswith("_") and not inspect.ismodule(v)}
    assert public == EXPECTED - {"__version__"}


def test_errors_share_one_base():
    for name in ("DataError", "ConfigError", "ShapeError", "RunError", "TrainingError"):
        assert issubclass(getattr(rnnkit, name), rnnkit.RnnkitError)


def test_package_is_typed():
    from importlib.resources import files
    assert files("rnnkit").joinpath("py.typed").is_file()
