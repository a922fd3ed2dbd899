"""The layers under torch's program transforms: jit.trace, torch.compile, torch.export, functorch
(vmap, jacrev, jacfwd, grad, jacobian(vectorize=True)) and double backward.

The native kernels run outside torch's operations, so none of these can see them. ``auto`` falls
back to torch's kernels (the reference loop for Jordan and under functorch) with a one-time
warning, an explicit ``fused`` is refused with a ConfigError, and the fused autograd Functions'
backward recomputes in torch operations when autograd records it (create_graph) or hands it
batched gradients. Every check compares with the eager layer on the same weights: between two
code paths, float64 agrees to about 1e-15 per operation, so 1e-10 leaves ample room for the
longer chains of a sequence and still catches any wrong step (errors there are O(1e-2)).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.errors import ConfigError
from rnnkit.kernels import _native, dispatch
from rnnkit.kernels import fused as fused_kernels

pytestmark = [pytest.mark.usefixtures("single_thread")]
needs_native = pytest.mark.skipif(not _native.available(), reason="native kernels unavailable")
F64, F32 = torch.float64, torch.float32
TOL = {F64: 1e-10, F32: 1e-5}  # see the module docstring; float32: ~1e-7 per operation
KINDS = {  # name -> (layer class, constructor options)
    "rnn_tanh": (rnnkit.RNN, {}), "rnn_relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, {}), "gru": (rnnkit.GRU, {}), "jordan": (rnnkit.Jordan, {}),
}
TWINNED = ["rnn_tanh", "lstm", "gru"]  # torch.nn has these, so auto falls back to torch's kernels


def make(kind, backend="auto", dtype=F64, seed=0, **kw):
    torch.manual_seed(seed)
    cls, opts = KINDS[kind]
    return cls(3, 4, backend=backend, dtype=dtype, **opts, **kw)


def twin(layer, backend):
    """The same layer and weights on another backend (the eager reference for a comparison)."""
    other = type(layer)(layer.input_size, layer.hidden_size, layer.num_layers, **_options(layer), backend=backend,
                        dtype=layer.weights_of(0)[0].dtype)
    other.load_state_dict(layer.state_dict())
    return other


def _options(layer):
    opts = {"bidirectional": layer.bidirectional, "batch_first": layer.batch_first}
    if isinstance(layer, rnnkit.RNN):
        opts["nonlinearity"] = layer.nonlinearity
    return opts


def states(h):
    return h if isinstance(h, tuple) else (h,)


def assert_same(got, want, dtype=F64):
    got, want = (got, want) if isinstance(got, (tuple, list)) else ((got,), (want,))
    for a, b in zip(got, want):
        for x, y in zip(states(a), states(b)):
            torch.testing.assert_close(x, y, atol=TOL[dtype], rtol=0)


@pytest.fixture
def fresh_warnings(monkeypatch):
    """The one-time fallback warnings as in a fresh process."""
    monkeypatch.setattr(dispatch, "_WARNED", set())


@pytest.fixture
def fresh_dynamo():
    """Each compile test starts from dynamo's empty cache (it keeps compiled frames per code
    object, and too many recompiles of ``Recurrent.forward`` would end in eager fallbacks)."""
    import torch._dynamo
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# --- jit.trace -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("kind", TWINNED + ["rnn_relu"])
def test_jit_trace_follows_the_input_length_and_batch(kind, backend):
    """Traced once at T=5, B=2, the trace equals the eager layer on longer, shorter and wider
    inputs: under tracing ``auto`` runs torch's kernels, whose trace is one aten op over the
    whole sequence. Also after a save/load round trip (what tracing is for)."""
    layer = make(kind, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback notice and torch's TracerWarnings
        traced = torch.jit.trace(layer, torch.randn(5, 2, 3, dtype=F64))
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    for T, B in [(9, 2), (2, 2), (5, 3), (1, 1)]:
        x = torch.randn(T, B, 3, dtype=F64)
        assert_same(traced(x), layer(x))
        assert_same(loaded(x), layer(x))


@needs_native
def test_jit_trace_auto_warns_once_with_the_reason(fresh_warnings):
    layer = make("gru")
    x = torch.randn(5, 2, 3, dtype=F64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.trace(layer, x)
        torch.jit.trace(layer, x)
    ours = [w for w in caught if "rnnkit" in str(w.message)]
    assert len(ours) == 1 and "torch.jit.trace" in str(ours[0].message) and "torch backend" in str(ours[0].message)


@pytest.mark.parametrize("kind, backend", [("gru", "reference"), ("lstm", "reference"), ("jordan", "auto"),
                                           ("jordan", "reference")])
def test_jit_trace_refuses_the_reference_loop(kind, backend):
    """The reference loop is one Python step per time step: a trace would replay the example's
    number of steps for every input (silently wrong for any other length), so it is refused."""
    layer = make(kind, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match="torch.jit.trace cannot record .* reference loop"):
            torch.jit.trace(layer, torch.randn(5, 2, 3, dtype=F64))


@needs_native
@pytest.mark.parametrize("kind", ["gru", "jordan"])
def test_explicit_fused_is_refused_under_jit_trace(kind):
    layer = make(kind, "fused")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match="backend='fused' cannot run under torch.jit.trace"):
            torch.jit.trace(layer, torch.randn(5, 2, 3, dtype=F64))


@needs_native
def test_fused_kernels_size_their_buffers_from_the_tensors_they_get():
    """The heap corruption under jit.trace: the whole-layer Function took its buffer sizes as an
    argument, which a trace freezes as a constant, so replaying it on a longer input overran
    them. Traced directly (bypassing the dispatch that now keeps tracing away from it), the
    kernel call must follow every input's size."""
    layer = make("gru", "fused")
    cell, w = layer.cells[0], [p.detach() for p in layer.weights_of(0)]  # constants of the trace

    def run(x):
        return fused_kernels.run_layer(cell, w, x, None, None, lead=True)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(run, torch.randn(2, 3, 3, dtype=F64), check_trace=False)
    for B, T in [(2, 40), (7, 3), (1, 1)]:
        x = torch.randn(B, T, 3, dtype=F64)
        assert_same(traced(x), run(x))


# --- torch.compile and torch.export ----------------------------------------------------------------
#: every cell through dynamo alone; through AOTAutograd (the joint forward/backward graph) for
#: one twinned cell and Jordan, the rest marked slow (2-4 s each)
COMPILE_CASES = [(kind, "eager") for kind in KINDS] + [("gru", "aot_eager"), ("jordan", "aot_eager")] + [
    pytest.param(kind, "aot_eager", marks=pytest.mark.slow) for kind in ("rnn_tanh", "rnn_relu", "lstm")]


@pytest.mark.parametrize("kind, compiler", COMPILE_CASES)
def test_compile_fullgraph_equals_eager(kind, compiler, fresh_dynamo):
    layer = make(kind)
    compiled = torch.compile(layer, backend=compiler, fullgraph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for T in (5, 8):
            x = torch.randn(T, 2, 3, dtype=F64, requires_grad=True)
            got = compiled(x)
            assert_same(got, layer(x))
    # gradients through the compiled graph equal the eager (native) ones
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    g_compiled = torch.autograd.grad(compiled(x)[0].pow(2).sum(), [x, *layer.parameters()])
    g_eager = torch.autograd.grad(layer(x)[0].pow(2).sum(), [x, *layer.parameters()])
    assert_same(g_compiled, g_eager)


@needs_native
def test_compile_auto_warns_once_with_the_reason(fresh_warnings, fresh_dynamo):
    layer = make("gru")
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled(torch.randn(5, 2, 3, dtype=F64))
        compiled(torch.randn(5, 2, 3, dtype=F64))
    ours = [w for w in caught if "rnnkit" in str(w.message)]
    assert len(ours) == 1 and "torch.compile" in str(ours[0].message)


@needs_native
def test_explicit_fused_is_refused_under_compile_fullgraph(fresh_dynamo):
    """dynamo reports the ConfigError raised while it traces (its own exception type, our message)."""
    compiled = torch.compile(make("gru", "fused"), backend="eager", fullgraph=True)
    with pytest.raises(Exception, match="backend='fused' cannot run under torch.compile"):
        compiled(torch.randn(5, 2, 3, dtype=F64))


@pytest.mark.parametrize("kind", list(KINDS))
def test_export_then_run_equals_eager(kind):
    layer = make(kind)
    x = torch.randn(5, 2, 3, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(layer, (x,))
    assert_same(program.module()(x), layer(x))


@needs_native
def test_explicit_fused_is_refused_under_export():
    with pytest.raises(ConfigError, match="backend='fused' cannot run under torch.compile/torch.export"):
        torch.export.export(make("lstm", "fused"), (torch.randn(5, 2, 3, dtype=F64),))


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


# --- streaming steps under the same transforms --------------------------------------------------
class _Stepper(torch.nn.Module):
    """One streaming step as a module: ``step`` from zeros, or ``step_`` on a copy of ``state``."""

    def __init__(self, layer, inplace):
        super().__init__()
        self.layer, self.inplace = layer, inplace

    def forward(self, x_t, state):
        if self.inplace:
            state = state.clone()
            return self.layer.step_(x_t, state), state
        return self.layer.step(x_t, state)


@pytest.mark.parametrize("inplace", [False, True], ids=["step", "step_"])
def test_streaming_steps_under_trace_vmap_and_compile(inplace, fresh_dynamo):
    """The native streaming step is skipped under every transform (the trace of a native step
    would record nothing, vmap has no memory to point at); the general path gives the same."""
    layer = make("gru").requires_grad_(False)
    stepper = _Stepper(layer, inplace)
    x, h = torch.randn(2, 3, dtype=F64), torch.randn(1, 2, 4, dtype=F64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = stepper(x, h)
        assert fused_kernels.stream_plan(layer) is not None or not _native.available()
        traced = torch.jit.trace(stepper, (x, h))
        other = torch.randn(4, 3, dtype=F64), torch.randn(1, 4, 4, dtype=F64)
        assert_same(traced(*other), stepper(*other))
        xs, hs = torch.randn(3, 2, 3, dtype=F64), torch.randn(3, 1, 2, 4, dtype=F64)
        got = torch.func.vmap(stepper)(xs, hs)
        for i in range(3):
            assert_same(tuple(t[i] for t in got), stepper(xs[i], hs[i]))
        assert_same(torch.compile(stepper, backend="eager", fullgraph=True)(x, h), want)


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


# --- no state outlives a failed or fake call -----------------------------------------------------
@needs_native
def test_scratch_never_keeps_a_fake_buffer():
    from torch._subclasses.fake_tensor import FakeTensorMode
    fused_kernels._SCRATCH.__dict__.clear()
    with FakeTensorMode():
        fake = fused_kernels._scratch(64, F64)
    assert type(fake) is not torch.Tensor
    assert F64 not in fused_kernels._SCRATCH.__dict__
    buf = fused_kernels._scratch(64, F64)
    assert type(buf) is torch.Tensor and buf.data_ptr() != 0


FRESH_PROCESS = r"""
import warnings, torch, rnnkit
from torch._subclasses.fake_tensor import FakeTensorMode
from rnnkit.errors import ConfigError
from rnnkit.kernels import fused
warnings.simplefilter("ignore")
F64, F32 = torch.float64, torch.float32
torch.manual_seed(0)
# the first calls of the process fail or run on fake tensors
for dtype in (F32, F64):
    m = rnnkit.GRU(3, 4, backend="fused", dtype=dtype)
    try:
        torch.export.export(m, (torch.randn(5, 2, 3, dtype=dtype),))
        raise SystemExit("export of backend='fused' did not fail")
    except ConfigError:
        pass
    try:
        torch.compile(m, backend="eager", fullgraph=True)(torch.randn(5, 2, 3, dtype=dtype))
        raise SystemExit("compile of backend='fused' did not fail")
    except Exception as e:
        assert "backend='fused' cannot run" in str(e), e
    with FakeTensorMode() as mode:  # auto falls back; a direct kernel call fails
        x = mode.from_tensor(torch.randn(5, 2, 3, dtype=dtype))
        out, _ = rnnkit.GRU(3, 4, dtype=dtype)(x)
        assert out.shape == (5, 2, 4)
        a = rnnkit.GRU(3, 4, dtype=dtype)
        try:
            fused.run_layer(a.cells[0], a.weights_of(0), x, None, None, lead=True)
            raise SystemExit("a native call on fake tensors did not fail")
        except RuntimeError:
            pass
        a.requires_grad_(False)
        with torch.no_grad():
            a.step(mode.from_tensor(torch.randn(2, 3, dtype=dtype)))
        assert fused.stream_plan(a) is None
# then every eager fused call of each dtype works and matches the reference
for dtype, tol in ((F32, 1e-5), (F64, 1e-10)):
    for cls in (rnnkit.GRU, rnnkit.LSTM, rnnkit.RNN, rnnkit.Jordan):
        m = cls(3, 4, backend="fused", dtype=dtype)
        ref = cls(3, 4, backend="reference", dtype=dtype)
        ref.load_state_dict(m.state_dict())
        x = torch.randn(7, 3, 3, dtype=dtype, requires_grad=True)
        out, _ = m(x)
        out.sum().backward()
        g, x.grad = x.grad, None
        want, _ = ref(x)
        want.sum().backward()
        assert (out - want).abs().max() < tol and (g - x.grad).abs().max() < tol, cls
        with torch.no_grad():
            y, _ = m.step(x[0].detach())
            assert (y - want[0]).abs().max() < tol
        assert fused.stream_plan(m) is not None
for buf in fused._SCRATCH.__dict__.values():
    assert type(buf) is torch.Tensor
print("ok")
"""


@needs_native
def test_failed_and_fake_first_calls_leave_nothing_behind(tmp_path):
    """In a fresh process, failed export/compile calls and fake-tensor calls come first; every
    later eager fused call of either dtype (new modules included) must work and be right."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check reads /proc/self/maps")
def test_sanitized_build_without_its_runtime_is_refused_not_a_crash(tmp_path):
    """RNNKIT_NATIVE_SANITIZE=1 without the preloaded ASan runtime (``make test-asan`` sets it):
    loading the library would end the process, so the kernels are unavailable with the fix."""
    code = ("import warnings, torch, rnnkit\n"
            "from rnnkit.kernels import _native\n"
            "warnings.simplefilter('ignore')\n"
            "print(_native.available())\n"
            "print(rnnkit.GRU(2, 3)(torch.zeros(4, 1, 2))[0].shape)\n"
            "_native.available() or print(_native._failed)\n")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(RNNKIT_NATIVE_SANITIZE="1", RNNKIT_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "False" and lines[1] == "torch.Size([4, 1, 3])"
    assert "LD_PRELOAD" in lines[2] and not (tmp_path / "cache").exists()
