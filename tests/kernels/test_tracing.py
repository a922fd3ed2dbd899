"""The layers under torch's tracing and compiling: jit.trace, torch.compile, torch.export, the
streaming step under them, and what the native layer keeps between calls under fake modes and
failed exports (functorch and double backward: test_functorch.py).

The native kernels run outside torch's operations, so none of these can see them. ``auto`` falls
back to torch's kernels (the reference loop for Jordan and under functorch) with a one-time
warning, an explicit ``fused`` is refused with a ConfigError, and the fused autograd Functions'
backward recomputes in torch operations when autograd records it (create_graph) or hands it
batched gradients. Every check compares with the eager layer on the same weights: between two
code paths, float64 agrees to about 1e-15 per operation, so 1e-10 leaves ample room for the
longer chains of a sequence and still catches any wrong step (errors there are O(1e-2)); the
layers and helpers are in tracing_cases.py."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.kernels import _native
from rnnkit.kernels import fused as fused_kernels
from rnnkit.kernels import stream as stream_kernels
from tracing_cases import needs_native, F64, KINDS, TWINNED, make, assert_same

pytestmark = [pytest.mark.usefixtures("single_thread")]


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
        assert stream_kernels.stream_plan(layer) is not None or not _native.available()
        traced = torch.jit.trace(stepper, (x, h))
        other = torch.randn(4, 3, dtype=F64), torch.randn(1, 4, 4, dtype=F64)
        assert_same(traced(*other), stepper(*other))
        xs, hs = torch.randn(3, 2, 3, dtype=F64), torch.randn(3, 1, 2, 4, dtype=F64)
        got = torch.func.vmap(stepper)(xs, hs)
        for i in range(3):
            assert_same(tuple(t[i] for t in got), stepper(xs[i], hs[i]))
        assert_same(torch.compile(stepper, backend="eager", fullgraph=True)(x, h), want)


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
from rnnkit.kernels import fused, stream
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
        assert stream.stream_plan(a) is None
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
        assert stream.stream_plan(m) is not None
for buf in fused._SCRATCH.__dict__.values():
    assert type(buf) is torch.Tensor
print("ok")
"""


@needs_native
def test_failed_and_fake_first_calls_leave_nothing_behind(tmp_path):
    """In a fresh process, failed export/compile calls and fake-tensor calls come first; every
    later eager fused call of either dtype (new modules included) must work and be right."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
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
               PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "False" and lines[1] == "torch.Size([4, 1, 3])"
    assert "LD_PRELOAD" in lines[2] and not (tmp_path / "cache").exists()
