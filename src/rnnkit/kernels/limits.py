"""Limits of the native kernels' C interface: every size they take is a C ``int``.

ctypes would wrap a Python int past 2^31 - 1 silently, so each size is checked first.
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["C_INT_MAX", "check_c_int"]

C_INT_MAX = 2**31 - 1


def check_c_int(what: str, value: int) -> int:
    """``value`` if it fits the native kernels' C ``int``, else :class:`ConfigError` naming ``what``."""
    if not 0 <= int(value) <= C_INT_MAX:
        raise ConfigError(f"{what} ({value}) is outside what the native kernels take (0 to 2^31 - 1); "
                          "use smaller sizes or engine='torch'")
    return int(value)
