"""rnnkit's version, in one place (the package, run files and ``rnnkit --version`` read it)."""

__version__ = "0.1.0"
