"""Errors rnnkit raises for problems a user can fix.

Every message says what was wrong and what to do about it. The command line prints
``RnnkitError`` messages on one line to stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

__all__ = ["RnnkitError", "DataError", "ConfigError", "ConfigTypeError", "ShapeError", "RunError", "TrainingError",
           "RnnkitWarning"]


class RnnkitError(Exception):
    """Base class of every error caused by input a user can correct."""


class DataError(RnnkitError, ValueError):
    """A data file or array is missing, unreadable, malformed, or too short."""


class ConfigError(RnnkitError, ValueError):
    """A setting is out of range or settings contradict each other."""


class ShapeError(RnnkitError, ValueError):
    """A tensor has the wrong shape or dtype for the module it is passed to."""


class RunError(RnnkitError):
    """A run directory is missing, incomplete, from an incompatible version, or already exists."""


class TrainingError(RnnkitError):
    """Training failed in a way the user must act on (for example the loss became NaN)."""


class ConfigTypeError(ConfigError, TypeError):
    """A setting has the wrong type (``batch_first="False"``, ``hidden_size=4.0``): a
    :class:`ConfigError` that is also the ``TypeError`` torch.nn raises for the same argument."""


class RnnkitWarning(UserWarning):
    """Something rnnkit worked around that a user should know of (for example a damaged report
    file of a run, ignored). The command line prints it as one ``rnnkit: warning: ...`` line."""
