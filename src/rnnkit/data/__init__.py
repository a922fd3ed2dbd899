"""Data in: sources (files and ``builtin:NAME``), series validation, splits in time, the Scaler,
windows, character vocabularies, and the shipped data files (``shipped/``). Imports nothing of
rnnkit above it except :mod:`rnnkit.errors`."""
