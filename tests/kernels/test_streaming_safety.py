"""Streaming under threads, copying after streaming, and text generated as a stream (issue 12).

- Threads streaming their own states through one layer (or one Forecaster/CharLM) get exactly
  what the same streams give one after another: each thread has its own native stream plan.
- A layer or model that has streamed deep-copies, pickles and ``torch.save``s; the copy streams
  and runs forward with the original's numbers, independently of it, and no native handle (plan,
  pointer array, scratch buffer, ctypes function) travels in the pickle.
- ``generate_iter`` yields the text in chunks whose concatenation is the one-shot text, and
  ``rnnkit text generate`` writes each chunk as it is made and stops quietly on a closed pipe.

Equalities here are exact where the same code runs twice (a thread vs the main thread, a copy vs
its original: the same kernels on bit-identical weights); the one comparison between two code
paths (streaming vs ``forward``) uses a tolerance from float32's rounding, explained there.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.tasks.text import generate as textgen
from rnnkit.cli import main
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.tasks.text.config import TextConfig
from rnnkit.errors import ConfigError, DataError, RnnkitWarning
from rnnkit.kernels import _native
from rnnkit.kernels import stream as stream_kernels
from rnnkit.tasks.text.model import CharLM
from rnnkit.tasks.forecast.model import Forecaster
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.text.workflow import fit_char_lm
from rnnkit.tasks.text.run import save_text_run
from rnnkit.data.vocab import CharVocab

pytestmark = pytest.mark.usefixtures("single_thread")

NATIVE = _native.available()  # without a C compiler the general path runs; the results must agree all the same
KINDS = ("lstm", "gru", "elman", "jordan")
N_THREADS, STEPS, B = 4, 200, 2
SRC = str(Path(__file__).parents[2] / "src")


def _states(state) -> tuple[torch.Tensor, ...]:
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


def _clone(state):
    return state.clone() if isinstance(state, torch.Tensor) else tuple(s.clone() for s in state)


def _in_threads(fn, n: int = N_THREADS) -> list:
    """``[fn(0), ..., fn(n - 1)]``, each call in its own thread, all released at once and switched
    between as often as the interpreter allows (the native calls release the GIL besides), so that
    shared per-step state, if there were any, would be overwritten mid-step."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(e)
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    if errors:
        raise errors[0]
    return results


# --- 1. one layer, several threads ----------------------------------------------------------------

def _stream(layer, xs: torch.Tensor, inplace: bool):
    """Outputs ``(T, B, O)`` and final state of one stream through ``layer``, and the calling
    thread's stream plan afterwards (None on the general path)."""
    ys = []
    with torch.no_grad():
        state = layer.init_state(B)
        for x in xs:
            if inplace:
                ys.append(layer.step_(x, state).clone())  # step_'s output is a view into the state
            else:
                y, state = layer.step(x, state)
                ys.append(y)
    return torch.stack(ys), _clone(state), stream_kernels.stream_plan(layer)


@pytest.mark.parametrize("mode", ["step_", "step", "mixed"])
@pytest.mark.parametrize("kind", KINDS)
def test_threads_streaming_their_own_states_through_one_layer_get_the_sequential_results(kind, mode):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(kind, 3, 8, num_layers=2).eval()
    xs = [torch.randn(STEPS, B, 3) for _ in range(N_THREADS)]
    inplace = [mode == "step_" or (mode == "mixed" and i % 2 == 0) for i in range(N_THREADS)]
    sequential = [_stream(layer, xs[i], inplace[i]) for i in range(N_THREADS)]
    threaded = _in_threads(lambda i: _stream(layer, xs[i], inplace[i]))
    for (y_seq, s_seq, _), (y_thr, s_thr, _) in zip(sequential, threaded):
        assert torch.equal(y_thr, y_seq)  # the same kernels on the same packed weights: bit for bit
        assert all(torch.equal(a, b) for a, b in zip(_states(s_thr), _states(s_seq)))
    # and the sequential streams are right: forward over the whole sequence is another code path
    # (whole-sequence kernels), equal up to float32 rounding accumulated over 200 steps of 8 units
    full, _ = layer(xs[0])
    torch.testing.assert_close(sequential[0][0], full, atol=1e-5, rtol=1e-5)
    if NATIVE:  # the native step ran in every thread, each with a plan of its own
        plans = [p for _, _, p in threaded]
        assert all(p is not None for p in plans) and len({id(p) for p in plans}) == N_THREADS


def test_threaded_forecaster_and_char_lm_steps_get_the_sequential_results():
    torch.manual_seed(1)
    fc = Forecaster(2, 1, horizon=3, config=ModelConfig(cell="gru", hidden_size=8)).eval()
    lm = CharLM(7, ModelConfig(cell="lstm", hidden_size=8, num_layers=2)).eval()
    xs = [torch.randn(STEPS, B, 2) for _ in range(N_THREADS)]
    ids = [torch.randint(0, 7, (STEPS, B)) for _ in range(N_THREADS)]

    def run(i: int):
        f_state = l_state = None
        f_out, l_out = [], []
        for t in range(STEPS):
            y, f_state = fc.step(xs[i][t], f_state)
            logits, l_state = lm.step(ids[i][t], l_state)
            f_out.append(y)
            l_out.append(logits)
        return torch.stack(f_out), torch.stack(l_out)
    sequential = [run(i) for i in range(N_THREADS)]
    for (f_seq, l_seq), (f_thr, l_thr) in zip(sequential, _in_threads(run)):
        assert torch.equal(f_thr, f_seq) and torch.equal(l_thr, l_seq)


def test_flatten_parameters_drops_every_threads_plan():
    layer = rnnkit.GRU(2, 4).eval()
    with torch.no_grad():
        layer.step(torch.zeros(1, 2))
        _in_threads(lambda i: layer.step(torch.zeros(1, 2)), n=2)
    if NATIVE:
        assert stream_kernels.stream_plan(layer) is not None
    layer.flatten_parameters()
    assert stream_kernels.PLANS_KEY not in layer.__dict__ and stream_kernels.stream_plan(layer) is None


# --- 2. copying what has streamed -------------------------------------------------------------------

def _deepcopy(m):
    return copy.deepcopy(m)


def _pickle(m):
    return pickle.loads(pickle.dumps(m))


def _torch_save(m):
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


COPIERS = {"deepcopy": _deepcopy, "pickle": _pickle, "torch.save": _torch_save}


@pytest.mark.parametrize("how", [*COPIERS, "state_dict"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_streamed_layer_copies_and_the_copy_streams_like_the_original(kind, how):
    torch.manual_seed(2)
    layer = rnnkit.Recurrent(kind, 3, 8, num_layers=2).eval()
    other = rnnkit.Recurrent(kind, 3, 8, num_layers=2).eval()  # other weights, until the state_dict arrives
    xs = torch.randn(12, B, 3)
    with torch.no_grad():
        state = layer.init_state(B)
        for x in xs[:6]:
            layer.step_(x, state)  # the in-place stream's plan ...
        layer.step(xs[6], state)  # ... and the functional one's pooled states
        if NATIVE:
            assert stream_kernels.stream_plan(layer) is not None
        if how == "state_dict":
            buf = io.BytesIO()
            torch.save(layer.state_dict(), buf)
            buf.seek(0)
            other.load_state_dict(torch.load(buf, weights_only=True))
            twin = other
        else:
            twin = COPIERS[how](layer)
        assert stream_kernels.PLANS_KEY not in twin.__dict__
        assert list(twin.state_dict()) == list(layer.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(twin.state_dict().values(), layer.state_dict().values()))
        s_orig, s_twin = _clone(state), _clone(state)
        for x in xs[6:]:  # both carry on from the same state: the same numbers, the original still works
            assert torch.equal(twin.step_(x, s_twin), layer.step_(x, s_orig))
            y_o, _ = layer.step(x, s_orig)
            y_t, _ = twin.step(x, s_twin)
            assert torch.equal(y_t, y_o)
        assert torch.equal(twin(xs)[0], layer(xs)[0])
        if NATIVE:
            assert stream_kernels.stream_plan(twin) is not None
            assert stream_kernels.stream_plan(twin) is not stream_kernels.stream_plan(layer)
        # independent: the copy's new weights change the copy's stream only
        before = layer.step(xs[0], None)[0]
        next(twin.parameters()).add_(0.5)
        assert not torch.equal(twin.step(xs[0], None)[0], before)
        assert torch.equal(layer.step(xs[0], None)[0], before)


def _pickled_globals(obj) -> set[str]:
    """The modules of every class and function a pickle of ``obj`` refers to (read back by an
    unpickler that records what it looks up)."""
    found: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)
    Recorder(io.BytesIO(pickle.dumps(obj))).load()
    return found


def test_no_native_handle_travels_in_a_pickle():
    """The plan (ctypes arrays, pointer table), the per-thread scratch buffer of the whole-layer
    kernels and the cached ctypes functions stay in this process: a pickle of a layer that has
    streamed and run the fused kernels forward and backward names none of their modules, and a
    torch.save holds exactly the parameters' storages."""
    layer = rnnkit.LSTM(3, 8, num_layers=2, backend="fused" if NATIVE else "auto")
    layer(torch.randn(4, 2, 3))[0].sum().backward()  # the scratch buffer is in use ...
    with torch.no_grad():
        layer.eval().step_(torch.randn(2, 3), layer.init_state(2))  # ... and a plan
    mods = _pickled_globals(layer)
    assert not {m for m in mods if m.startswith(("ctypes", "_ctypes", "_thread", "threading", "rnnkit.kernels"))}, mods
    assert "rnnkit.nn.dropin" in mods  # the check reads real module names (rnnkit.LSTM lives there)
    buf = io.BytesIO()
    torch.save(layer, buf)
    with zipfile.ZipFile(buf) as z:
        storages = [n for n in z.namelist() if "/data/" in n and not n.endswith(".pkl")]
    assert len(storages) == len(list(layer.parameters()))


def _streamed_models():
    torch.manual_seed(3)
    fc = Forecaster(2, 1, horizon=2, config=ModelConfig(cell="lstm", hidden_size=6)).eval()
    lm = CharLM(5, ModelConfig(cell="gru", hidden_size=6), embedding_dim=3).eval()
    clf = SequenceClassifier(2, 3, ModelConfig(cell="elman", hidden_size=6)).eval()
    with torch.no_grad():
        fc.step(torch.randn(B, 2))
        lm.step(torch.tensor([1, 2]))
        clf.rnn.step_(torch.randn(B, 2), clf.rnn.init_state(B))  # a classifier streams through its layer
    x, ids = torch.randn(B, 7, 2), torch.randint(0, 5, (B, 7))
    return [
        (fc, lambda m: (m(x), m.step(x[:, 0])[0])),
        (lm, lambda m: (m(ids)[0], m.step(ids[:, 0])[0])),
        (clf, lambda m: (m(x), m.rnn.step(x[:, 0])[0])),
    ]


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_streamed_models_copy_with_their_numbers(how):
    for model, outputs in _streamed_models():
        twin = COPIERS[how](model)
        with torch.no_grad():
            for a, b in zip(outputs(twin), outputs(model)):
                assert torch.equal(a, b), type(model).__name__


# --- 3. text generated as a stream ----------------------------------------------------------------

def _one_shot(model: CharLM, vocab: CharVocab, prime: str, length: int, temperature: float, top_k: int,
              seed: int) -> str:
    """The generation loop as it was before streaming (one string at the end), kept here as the
    reference the streamed text must reproduce character for character."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    with torch.no_grad():
        logits, state = model(torch.as_tensor(vocab.encode(prime))[None])
        last, out = logits[0, -1], []
        for _ in range(length):
            i = textgen.pick_next(last, temperature, top_k, gen)
            out.append(i)
            logits, state = model(torch.tensor([[i]]), state)
            last = logits[0, -1]
    return vocab.decode(out)


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(4)
    vocab = CharVocab.build("hello world, hello there.")
    return CharLM(len(vocab), ModelConfig(cell="gru", hidden_size=12)), vocab


@pytest.mark.parametrize("temperature, top_k, seed", [(1.0, 0, 0), (0.7, 3, 5), (0.0, 0, 1)])
def test_streamed_text_joins_to_the_one_shot_text(tiny_lm, temperature, top_k, seed):
    model, vocab = tiny_lm
    expected = _one_shot(model, vocab, "hel", 300, temperature, top_k, seed)
    assert len(expected) == 300
    assert textgen.generate(model, vocab, "hel", 300, temperature, top_k, seed) == expected
    for chunk in (1, 7, 100, 256, 300, 1000):
        pieces = list(textgen.generate_iter(model, vocab, "hel", 300, temperature, top_k, seed, chunk=chunk))
        assert "".join(pieces) == expected, chunk
        assert [len(p) for p in pieces[:-1]] == [chunk] * (len(pieces) - 1) and 0 < len(pieces[-1]) <= chunk
    assert list(textgen.generate_iter(model, vocab, "hel", 0)) == []


def test_generate_iter_is_lazy_and_checks_its_settings_when_called(tiny_lm):
    model, vocab = tiny_lm
    calls = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        it = textgen.generate_iter(model, vocab, "he", 10_000_000, chunk=50)
        assert len(calls) == 1  # primed on the prompt, nothing sampled yet
        assert len(next(it)) == 50 and len(calls) <= 1 + 50  # one piece made, not ten million characters
        it.close()
    finally:
        hook.remove()
    for kwargs, error, needle in (({"length": -1}, ConfigError, "length"), ({"length": 2.5}, ConfigError, "length"),
                                  ({"chunk": 0}, ConfigError, "chunk"), ({"temperature": -1.0}, ConfigError,
                                                                         "temperature")):
        with pytest.raises(error, match=needle):
            textgen.generate_iter(model, vocab, "he", **kwargs)  # raised at the call, before any next()
    with pytest.raises(DataError, match="prompt"):  # strict mode refuses the prompt at the call
        textgen.generate_iter(model, vocab, "xyz", 10, unknown="error")
    with pytest.warns(RnnkitWarning, match="3 characters of the prompt"):  # the default reports it at the call
        textgen.generate_iter(model, vocab, "xyz", 10)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    run = fit_char_lm(TextConfig(seq_len=8, steps=20, val_frac=0.1), ModelConfig(cell="gru", hidden_size=8),
                      TrainConfig(batch_size=4, patience=0), text="the cat sat on the mat. " * 40, quiet=True,
                      baselines=False)
    return run, save_text_run(run, tmp_path_factory.mktemp("text") / "run", plots=False)


def test_cli_writes_each_chunk_as_it_is_made(text_run, monkeypatch, capsys):
    run, path = text_run
    real = textgen.generate_iter
    seen: list[str] = []  # what stdout had received when each later chunk was asked for

    def spy(*args, **kwargs):
        pieces = real(*args, **kwargs)

        def gen():
            for k, piece in enumerate(pieces):
                if k > 0:
                    seen.append(capsys.readouterr().out)
                yield piece
        return gen()
    monkeypatch.setattr(textgen, "generate_iter", spy)
    assert main(["text", "generate", "--run", str(path), "--prime", "the ", "--length", "1000",
                            "--seed", "7"]) == 0
    rest = capsys.readouterr().out
    monkeypatch.undo()
    expected = run.generate("the ", 1000, seed=7)
    chunk = textgen.CHUNK_CHARS
    assert len(seen) == -(-1000 // chunk) - 1  # asked for every chunk after the first
    assert seen[0] == "the " + expected[:chunk]  # the first chunk was out before the second was made
    assert "".join(seen) + rest == "the " + expected + "\n"


def test_cli_stops_quietly_when_the_reader_goes_away(text_run, tmp_path):
    """``rnnkit text generate --length 10000000 | head``: the first chunks arrive, and once the
    reader has closed the pipe the next write ends the command with status 141, no traceback and
    no error message."""
    _, path = text_run
    env = {**os.environ, "PYTHONPATH": SRC}
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "rnnkit.cli", "text", "generate", "--run", str(path),
                                 "--length", "10000000"], stdout=subprocess.PIPE, stderr=err, env=env)
        try:
            head = proc.stdout.read(600)  # more than two chunks: generation is under way
            proc.stdout.close()
            rc = proc.wait(timeout=300)  # a safety net only: the next write after the close ends it
        finally:
            proc.kill()
    message = (tmp_path / "stderr").read_text(errors="replace")  # (without a C compiler: the one-line fallback warning)
    assert len(head) == 600 and rc == 141, message
    assert not any(word in message for word in ("Traceback", "Error", "Exception")), message
