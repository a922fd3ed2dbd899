"""The native kernels' cell table (csrc/cells.h) against the cells' NativeSpecs: the same codes,
gate blocks and traits on both sides, so a cell added in C and in Python is run as declared."""

from __future__ import annotations

import pytest

from rnnkit.kernels import _native
from rnnkit.nn.cells import cell_specs

pytestmark = pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")
NATIVE = [s for s in cell_specs() if s.native is not None]


@pytest.mark.parametrize("spec", NATIVE, ids=lambda s: s.name)
def test_each_native_cell_is_its_line_of_the_c_table(spec):
    assert _native.cell_info(spec.native.code) == (spec.gate_blocks, spec.native.traits)


def test_every_line_of_the_c_table_is_a_registered_cell():
    codes = [code for code in range(256) if _native.cell_info(code) is not None]
    assert codes and sorted(codes) == sorted(s.native.code for s in NATIVE)
    assert _native.cell_info(-1) is None


def test_the_traits_read_as_the_c_bits():
    by_name = {s.name: s.native for s in NATIVE}
    assert by_name["lstm"].traits == _native.TRAITS["cell_state"]
    assert by_name["gru"].traits == _native.TRAITS["hidden_apart"]
    assert by_name["jordan"].traits == _native.TRAITS["output_layer"]
    assert by_name["elman"].traits == 0
