"""The layers under functorch transforms (vmap, jacrev, jacfwd, grad, jacobian(vectorize=True))
and double backward (Hessian-vector products, gradgradcheck), which run the fused kernels'
recomputing backward.

As under tracing (test_tracing.py's docstring says more): ``auto`` falls back with a one-time
warning, an explicit ``fused`` is refused, and every check compares with the eager layer on the
same weights (float64 to 1e-10, float32 to 1e-5); the layers and helpers are in tracing_cases.py."""

from __future__ import annotations

import warnings

import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.kernels import _native
from rnnkit.kernels import fused as fused_kernels
from tracing_cases import needs_native, F64, F32, KINDS, make, twin, states, assert_same

pytestmark = [pytest.mark.usefixtures("single_thread")]


# --- functorch transforms ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_vmap_equals_a_loop_over_the_batch(kind, dtype):
    layer = make(kind, dtype=dtype)
    xs = torch.randn(3, 5, 2, 3, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, h = torch.func.vmap(layer)(xs)
    for i, x in enumerate(xs):
        want_out, want_h = layer(x)
        assert_same((out[i], tuple(s[i] for s in states(h))), (want_out, states(want_h)), dtype)


@pytest.mark.parametrize("kind", list(KINDS))
def test_jacobians_equal_the_eager_jacobian(kind):
    """jacobian(vectorize=True) runs the fused forward eagerly and then its backward on batched
    gradients (the recomputing path); jacrev/jacfwd/grad run the whole layer under functorch
    (the reference loop). Each equals the plain row-by-row jacobian through the native BPTT."""
    layer = make(kind)
    x = torch.randn(4, 2, 3, dtype=F64)

    def f(v):
        return layer(v)[0]

    want = torch.autograd.functional.jacobian(f, x)  # row by row: the eager backward
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(torch.autograd.functional.jacobian(f, x, vectorize=True), want)
        assert_same(torch.func.jacrev(f)(x), want)
        assert_same(torch.func.jacfwd(f)(x), want)
        g = torch.func.grad(lambda v: f(v).pow(2).sum())(x)
    x_ = x.clone().requires_grad_()
    f(x_).pow(2).sum().backward()
    assert_same(g, x_.grad)


@needs_native
def test_jacobian_vectorized_through_the_split_kernels(monkeypatch):
    """The same for layers too big for the whole-layer kernels (_FusedSequence)."""
    monkeypatch.setattr(fused_kernels, "WHOLE_LAYER_BYTES", 0)
    layer = make("lstm", "fused")
    x = torch.randn(4, 2, 3, dtype=F64)
    f = lambda v: layer(v)[0]  # noqa: E731
    assert_same(torch.autograd.functional.jacobian(f, x, vectorize=True), torch.autograd.functional.jacobian(f, x))


@needs_native
@pytest.mark.parametrize("transform", ["vmap", "grad", "jacrev", "jacfwd"])
def test_explicit_fused_is_refused_under_functorch(transform):
    layer = make("gru", "fused")
    x = torch.randn(2, 5, 2, 3, dtype=F64)
    fn = {"vmap": lambda: torch.func.vmap(lambda v: layer(v)[0])(x),
          "grad": lambda: torch.func.grad(lambda v: layer(v)[0].sum())(x[0]),
          "jacrev": lambda: torch.func.jacrev(lambda v: layer(v)[0])(x[0]),
          "jacfwd": lambda: torch.func.jacfwd(lambda v: layer(v)[0])(x[0])}[transform]
    with pytest.raises(ConfigError, match="backend='fused' cannot run under a torch.func transform"):
        fn()


# --- double backward -------------------------------------------------------------------------------
@needs_native
def test_hvp_through_the_fused_kernels_is_the_reference_hvp():
    """Second derivatives used to be exactly zero, silently, through the native backward."""
    layer = make("gru", "fused")
    ref = twin(layer, "reference")
    x, v = torch.randn(5, 2, 3, dtype=F64), torch.randn(5, 2, 3, dtype=F64)
    _, got = torch.autograd.functional.hvp(lambda t: layer(t)[0].pow(2).sum(), x, v)
    _, want = torch.autograd.functional.hvp(lambda t: ref(t)[0].pow(2).sum(), x, v)
    assert got.norm() > 0.1  # far from the zero the old backward gave
    assert_same(got, want)


CONFIGS = {"1layer": {"num_layers": 1}, "bidir_lengths": {"num_layers": 1, "bidirectional": True},
           "2layer_bidir_lengths": {"num_layers": 2, "bidirectional": True}}


#: two stacked bidirectional layers take 2-12 s per case (a numerical Jacobian of the gradient
#: over every weight): long, so marked slow; the fast cases cover each piece on its own
GRADGRAD_CONFIGS = ["1layer", "bidir_lengths", pytest.param("2layer_bidir_lengths", marks=pytest.mark.slow)]


def _gradgrad_case(kind, backend, config, monkeypatch):
    if backend == "torch" and kind == "jordan":
        pytest.skip("torch has no Jordan layer")
    if backend.startswith("fused") and not _native.available():
        pytest.skip("native kernels unavailable")
    if backend == "fused_split":  # layers too big for the whole-layer kernels: _FusedSequence
        monkeypatch.setattr(fused_kernels, "WHOLE_LAYER_BYTES", 0)
    cls, opts = KINDS[kind]
    opts = {**opts, **CONFIGS[config]}
    torch.manual_seed(1)
    layer = cls(2, 2, batch_first=True, backend=backend.split("_")[0], dtype=F64, **opts)
    names = [n for n, _ in layer.named_parameters()]
    D = 2 if layer.bidirectional else 1
    x = torch.randn(2, 3, 2, dtype=F64, requires_grad=True)
    h0 = tuple(torch.randn(layer.num_layers * D, 2, s, dtype=F64, requires_grad=True) for s in layer.state_sizes)
    ws = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())
    lengths = torch.tensor([3, 2]) if "lengths" in config else None

    def f(x, *rest):
        hs, params = rest[:len(h0)], rest[len(h0):]
        out, h = torch.func.functional_call(layer, dict(zip(names, params)), (x, hs[0] if len(hs) == 1 else hs),
                                            {"lengths": lengths})
        return (out, *states(h))
    return f, (x, *h0, *ws)


@pytest.mark.parametrize("config", GRADGRAD_CONFIGS)
@pytest.mark.parametrize("backend", ["reference", "torch", "fused", "fused_split"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_gradgradcheck(kind, backend, config, monkeypatch):
    f, inputs = _gradgrad_case(kind, backend, config, monkeypatch)
    assert torch.autograd.gradgradcheck(f, inputs, eps=1e-6, atol=1e-6)
