"""The native layer kernels against the reference: exp/tanh accuracy, gradcheck, both fused layer
paths (whole layer native, or torch's products around the native recurrence), the matrix micro-kernel
at every instruction-set level, and the fallback without native kernels. The fused trainer is
tested in test_fused_trainer.py, the streaming step in test_streaming.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.kernels import _native
from kernel_models import F64, F32, CELLS, cell_name, states_of

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")]


@pytest.mark.parametrize("dtype, lo, hi, tol", [(F64, -700.0, 700.0, 1e-15), (F32, -85.0, 85.0, 2e-7)])
def test_exp_relative_accuracy_over_whole_range(dtype, lo, hi, tol):
    lib = _native.library()
    suf = "f64" if dtype == F64 else "f32"
    x = torch.linspace(lo, hi, 400_001, dtype=dtype)
    y = torch.empty_like(x)
    getattr(lib, f"rk_exp_{suf}")(x.data_ptr(), y.data_ptr(), x.numel())
    ref = torch.exp(x.double())
    assert ((y.double() - ref) / ref).abs().max().item() < tol


@pytest.mark.parametrize("dtype, tol", [(F64, 1e-15), (F32, 3e-7)])
def test_tanh_absolute_accuracy_and_saturation(dtype, tol):
    lib = _native.library()
    suf = "f64" if dtype == F64 else "f32"
    x = torch.cat([torch.linspace(-40, 40, 400_001, dtype=dtype), torch.tensor([-1e30, 1e30, 0.0], dtype=dtype)])
    y = torch.empty_like(x)
    getattr(lib, f"rk_tanh_{suf}")(x.data_ptr(), y.data_ptr(), x.numel())
    assert (y.double() - torch.tanh(x.double())).abs().max().item() < tol
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_gradcheck_fused_layer(kind):
    """gradcheck w.r.t. the input, the initial state and every weight, with lengths, both directions."""
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(cell_name(kind), 2, 3, num_layers=2, bidirectional=True, batch_first=True,
                             backend="fused", dtype=F64, **CELLS[kind])
    names = [n for n, _ in layer.named_parameters()]
    x = torch.randn(2, 4, 2, dtype=F64, requires_grad=True)
    h0 = tuple(s.clone().requires_grad_() for s in states_of(layer.init_state(2)))
    h0 = tuple(torch.randn_like(s).requires_grad_() for s in h0)
    ws = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())

    def f(x, *rest):
        states, weights = rest[:len(h0)], rest[len(h0):]
        hx = states[0] if len(states) == 1 else states
        out, h = torch.func.functional_call(layer, dict(zip(names, weights)), (x, hx), {"lengths": [4, 3]})
        return (out, *states_of(h))
    assert torch.autograd.gradcheck(f, (x, *h0, *ws), eps=1e-6, atol=1e-7)


def test_everything_works_without_native_kernels(tmp_path):
    code = ("import warnings, torch, rnnkit\n"
            "warnings.simplefilter('always')\n"
            "m = rnnkit.GRU(2, 3, backend='fused')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    out, h = m(torch.zeros(4, 1, 2))\n"
            "print(out.shape, len(w), str(w[0].message) if w else '')\n")
    env = {**os.environ, "RNNKIT_NO_NATIVE": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "torch.Size([4, 1, 3]) 1" in proc.stdout and "using the torch backend" in proc.stdout


@pytest.fixture(params=["whole-layer", "torch-gemm"])
def layer_path(request, monkeypatch):
    """Run a test through both fused layer paths: everything native, or native recurrence with
    torch's matrix products for the input projection and weight gradients (large layers)."""
    from rnnkit.kernels import fused
    monkeypatch.setattr(fused, "WHOLE_LAYER_BYTES", 2**62 if request.param == "whole-layer" else 0)
    return request.param


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_both_fused_layer_paths_from_zero_state(kind, layer_path):
    torch.manual_seed(5)
    layer = rnnkit.Recurrent(cell_name(kind), 3, 5, num_layers=2, batch_first=True, dtype=F64, **CELLS[kind])
    x = torch.randn(4, 6, 3, dtype=F64)
    results = []
    for backend in ("reference", "fused"):
        layer.backend = backend
        xr = x.clone().requires_grad_()
        out, h = layer(xr)  # no initial state: zeros
        grads = torch.autograd.grad(out.sum() + sum(s.sum() for s in states_of(h)), [xr, *layer.parameters()])
        results.append([out, *states_of(h), *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("dtype, atol", [(F64, 1e-10), (F32, 1e-5)])
def test_both_fused_layer_paths_match_reference(kind, dtype, atol, layer_path):
    torch.manual_seed(4)
    layer = rnnkit.Recurrent(cell_name(kind), 3, 5, num_layers=2, bidirectional=True, batch_first=True,
                             dtype=dtype, **CELLS[kind])
    x = torch.randn(4, 6, 3, dtype=dtype)
    h0 = tuple(torch.randn_like(s) for s in states_of(layer.init_state(4)))
    results = []
    for backend in ("reference", "fused"):
        layer.backend = backend
        xr = x.clone().requires_grad_()
        hr = tuple(s.clone().requires_grad_() for s in h0)
        out, h = layer(xr, hr[0] if len(hr) == 1 else hr, lengths=[6, 2, 5, 6])
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum() \
            + sum((s * s).sum() for s in states_of(h))
        grads = torch.autograd.grad(loss, [xr, *hr, *layer.parameters()])
        results.append([out, *states_of(h), *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


def _native_matmul(a: torch.Tensor, trans_a: bool, b: torch.Tensor, trans_b: bool, c: torch.Tensor) -> torch.Tensor:
    """C += op(A) @ op(B) through the kernels' register-blocked micro-kernel (a copy of c)."""
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    N = b.shape[0] if trans_b else b.shape[1]
    out = c.clone()
    scratch = torch.empty(int(_native.function("rk_panel_size", a.dtype)(K, N)), dtype=a.dtype)
    _native.function("rk_matmul", a.dtype)(a.data_ptr(), int(trans_a), b.data_ptr(), int(trans_b), out.data_ptr(),
                                            M, K, N, scratch.data_ptr())
    return out


MATMUL_SHAPES = [(M, K, N) for M in (1, 2, 5, 7, 8, 9, 16, 17, 23) for K, N in ((1, 1), (3, 17), (16, 16), (13, 33), (40, 70))]


@pytest.mark.parametrize("dtype, atol", [(F64, 1e-12), (F32, 1e-4)])
def test_matrix_micro_kernel_equals_torch_on_every_edge(dtype, atol):
    """Every row remainder of the register block (M mod 8, 6 and 3), partial panels (N mod 16
    and 8), short and odd K, and both transposed-operand forms the kernels use."""
    g = torch.Generator().manual_seed(0)
    for M, K, N in MATMUL_SHAPES:
        for trans_a in (False, True):
            for trans_b in (False, True):
                a = torch.randn((K, M) if trans_a else (M, K), generator=g, dtype=dtype)
                b = torch.randn((N, K) if trans_b else (K, N), generator=g, dtype=dtype)
                c = torch.randn(M, N, generator=g, dtype=dtype)
                want = c + (a.t() if trans_a else a) @ (b.t() if trans_b else b)
                got = _native_matmul(a, trans_a, b, trans_b, c)
                torch.testing.assert_close(got, want, atol=atol, rtol=0, msg=f"{M}x{K}x{N} {trans_a} {trans_b}")


ISA_CHECK = """
import torch, rnnkit
from rnnkit.kernels import _native, fused
import test_kernels as tk
print('bits', _native.vector_bits())
tk.test_matrix_micro_kernel_equals_torch_on_every_edge(torch.float64, 1e-12)
for cell in ('lstm', 'gru', 'elman'):
    for limit in (2**62, 0):  # the whole-layer kernels and the torch-gemm path
        fused.WHOLE_LAYER_BYTES = limit
        torch.manual_seed(1)
        layer = rnnkit.Recurrent(cell, 3, 17, batch_first=True, dtype=torch.float64)
        x = torch.randn(9, 4, 3, dtype=torch.float64)
        res = []
        for backend in ('reference', 'fused'):
            layer.backend = backend
            xr = x.clone().requires_grad_()
            out, h = layer(xr)
            res.append([out, *torch.autograd.grad(out.sum(), [xr, *layer.parameters()])])
        for a, b in zip(*res):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
print('ok')
"""


@pytest.mark.parametrize("isa, bits", [("generic", 128), ("avx2", 256)])
def test_every_instruction_set_level_matches_the_reference(tmp_path, isa, bits, monkeypatch):
    """The default build is what the rest of this file tests; the lower levels (other CPUs, or
    RNNKIT_NATIVE_ISA) compile different micro-kernels, so build each and check them too."""
    monkeypatch.delenv("RNNKIT_NATIVE_ISA", raising=False)  # what the CPU has, not the cap this suite runs under
    if isa == "avx2" and "-mavx2" not in _native._cpu_flags():
        pytest.skip("this CPU has no AVX2+FMA")
    env = {**os.environ, "RNNKIT_NATIVE_ISA": isa, "RNNKIT_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), str(Path(__file__).parent)])}
    proc = subprocess.run([sys.executable, "-c", ISA_CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"bits {bits}" in proc.stdout and proc.stdout.rstrip().endswith("ok")


def test_an_unknown_instruction_set_level_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE_ISA", "sse9")
    with pytest.raises(_native.NativeUnavailable, match="generic, avx2, avx512"):
        _native._cpu_flags()
