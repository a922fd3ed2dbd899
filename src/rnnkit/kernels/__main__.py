"""``python -m rnnkit.kernels``: build the native kernels now and say where they are."""

import sys

from ._native import NativeUnavailable, build, vector_bits


def main() -> int:
    try:
        path = build()
    except NativeUnavailable as e:
        print(f"rnnkit: native kernels unavailable: {e}; the torch backend will be used", file=sys.stderr)
        return 1
    print(f"rnnkit: native kernels ready at {path} ({vector_bits()}-bit vectors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
