"""Character language models: vocabulary, reading, bits/char against a hand computation, n-gram
baselines, stateful training that learns and reproduces, seeded sampling, suggestions, reloads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit.tasks.classify.run import load_classifier_run
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.tasks.text.config import TextConfig
from rnnkit.errors import ConfigError, DataError, RunError, ShapeError
from rnnkit.tasks.text.model import CharLM
from rnnkit.tasks.text.workflow import bits_per_char, evaluate_text, fit_char_lm, make_streams, nll_per_char, read_text
from rnnkit.tasks.text.run import load_text_run, save_text_run
from rnnkit.tasks.text.metrics import ngram_bits_per_char
from rnnkit.tasks.text.generate import generate
from rnnkit.data.vocab import CharVocab

CORPUS = "hello world, hello there. " * 80  # 2,080 characters, 10 distinct


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


@pytest.fixture(scope="module")
def hello_run():
    return train_hello()


def train_hello():
    """Trained on one thread whatever the caller's setting: float sums depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_hello()
    finally:
        torch.set_num_threads(before)


def _fit_hello():
    return fit_char_lm(TextConfig(seq_len=16, steps=240, val_frac=0.1), ModelConfig(cell="gru", hidden_size=32),
                       TrainConfig(batch_size=8, lr=0.01, clip_norm=5.0, patience=0), text=CORPUS, quiet=True)


# --- vocabulary and reading -------------------------------------------------------------------

def test_char_vocab_round_trip_and_policies():
    v = CharVocab.build("banana")
    assert v.chars == ("a", "b", "n") and v.decode(v.encode("nab")) == "nab"
    with pytest.raises(DataError, match=r"prompt contains 2 character\(s\).*'x' \(U\+0078\), 'y' \(U\+0079\)"):
        v.encode("xaby", what="prompt")
    assert CharVocab(v.chars, "skip").encode("xaby").tolist() == [0, 1]
    r = CharVocab.build("banana!", unknown="replace", min_count=2)  # '!' and 'b' are rare: they share UNK
    assert r.chars == (CharVocab.UNK, "a", "n") and r.encode("b!an").tolist() == [0, 0, 1, 2]
    assert CharVocab.from_dict(r.to_dict()).chars == r.chars
    with pytest.raises(ConfigError, match="min_count"):
        CharVocab.build("abc", unknown="error", min_count=2)


def test_read_text_builtin_and_bad_files(tmp_path):
    zen, _, sha = read_text("builtin:zen")
    assert zen.startswith("The Zen of Python, by Tim Peters") and len(zen) == 857 and len(sha) == 64
    assert len(read_text("builtin:pydocs")[0]) > 150_000
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text(" \n\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    for f, needle in (("empty.txt", "is empty"), ("blank.txt", "only whitespace"), ("latin1.txt", "not UTF-8"),
                      ("missing.txt", "does not exist")):
        with pytest.raises(DataError, match=needle):
            read_text(tmp_path / f)
    with pytest.raises(DataError, match="builtin:pydocs"):
        read_text("builtin:shakespeare")


def test_streams_cut_the_text_into_contiguous_rows():
    x, y = make_streams(np.arange(21), 3)
    assert x.tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17]]
    assert (y == x + 1).all()
    with pytest.raises(DataError, match="too few for 8 parallel streams"):
        make_streams(np.arange(10), 8)


# --- bits per character against an independent computation -------------------------------------

def _hand_model() -> CharLM:
    model = CharLM(3, ModelConfig(cell="elman", hidden_size=2), embedding_dim=0).double()
    w = {"rnn.weight_ih_l0": [[0.5, -1.0, 0.25], [1.5, 0.0, -0.5]], "rnn.weight_hh_l0": [[0.1, -0.3], [0.7, 0.2]],
         "rnn.bias_ih_l0": [0.05, -0.1], "rnn.bias_hh_l0": [0.0, 0.2],
         "head.weight": [[1.0, -2.0], [0.5, 0.5], [-1.5, 1.0]], "head.bias": [0.1, 0.0, -0.2]}
    model.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()})
    return model


def test_bits_per_char_matches_hand_computed_softmax():
    model, vocab, text = _hand_model(), CharVocab("abc"), "abcabba"
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    ids = [vocab.index[c] for c in text]
    h, nll = np.zeros(2), 0.0
    for t in range(len(ids) - 1):  # h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh); z = W h + b
        h = np.tanh(sd["rnn.weight_ih_l0"][:, ids[t]] + sd["rnn.bias_ih_l0"] + sd["rnn.weight_hh_l0"] @ h
                    + sd["rnn.bias_hh_l0"])
        z = sd["head.weight"] @ h + sd["head.bias"]
        log_p = z - math.log(sum(math.exp(v) for v in z))
        nll -= log_p[ids[t + 1]]
    expected = nll / (len(ids) - 1) / math.log(2)
    assert bits_per_char(model, vocab, text) == pytest.approx(expected, rel=1e-13)
    # the state carried across chunks: chunks of 2 give the same as one pass
    assert nll_per_char(model, np.array(ids), chunk=2) == pytest.approx(nll_per_char(model, np.array(ids)), rel=1e-13)


def test_unknown_characters_are_read_as_no_input_and_left_out_of_the_score():
    model, vocab, text = _hand_model(), CharVocab("abc"), "abXcaYYb"  # X, Y outside the vocabulary
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    h, nll, scored = np.zeros(2), 0.0, 0
    for t in range(len(text) - 1):
        x = np.eye(3)[vocab.index[text[t]]] if text[t] in vocab else np.zeros(3)  # unknown: no character
        h = np.tanh(sd["rnn.weight_ih_l0"] @ x + sd["rnn.bias_ih_l0"] + sd["rnn.weight_hh_l0"] @ h
                    + sd["rnn.bias_hh_l0"])
        if text[t + 1] in vocab:  # an unknown next character has no probability: not scored
            z = sd["head.weight"] @ h + sd["head.bias"]
            nll -= z[vocab.index[text[t + 1]]] - math.log(sum(math.exp(v) for v in z))
            scored += 1
    result = evaluate_text(model, vocab, text)
    assert scored == 4 and result["scored"] == scored and result["chars"] == len(text)
    assert result["bits_per_char"] == pytest.approx(nll / scored / math.log(2), rel=1e-13)
    assert result["unknown"]["count"] == 3 and result["unknown"]["distinct"] == ["X", "Y"]
    with pytest.raises(DataError, match="nothing to score"):
        evaluate_text(model, vocab, "aXY")
    with pytest.raises(DataError, match=r"2 character\(s\).*'X'"):
        evaluate_text(model, vocab, text, unknown="error")


def test_ngram_baseline_matches_hand_computation():
    # bigram on train "abab": after 'a' always 'b' (2 of 2), after 'b' 'a' (1 of 1); add-one, alphabet 2
    expected = -(math.log2(3 / 4) + math.log2(2 / 3)) / 2
    assert ngram_bits_per_char("abab", "aba", 2, 2) == pytest.approx(expected, rel=1e-14)
    assert ngram_bits_per_char("abab", "aba", 1, 2) == pytest.approx(-(math.log2(3 / 6) * 2) / 2)


# --- training -------------------------------------------------------------------------------

def test_learns_repetitive_corpus_and_reproduces(hello_run):
    m = hello_run.metrics
    # 240 TBPTT steps of 16 characters; the text repeats every 26 characters
    assert m["validation"]["bits_per_char"] < 0.15, m
    assert m["validation"]["bits_per_char"] < 0.5 * m["baselines"]["add-one trigram"]["bits_per_char"]
    assert hello_run.meta["steps"] == 240 and hello_run.meta["steps_per_epoch"] == 15
    again = train_hello()
    assert again.metrics["validation"]["bits_per_char"] == m["validation"]["bits_per_char"]  # same seed, same number
    assert [r["train_loss"] for r in again.history.rows] == [r["train_loss"] for r in hello_run.history.rows]


def test_sampling_is_seeded_and_primed(hello_run):
    a = hello_run.generate("hello ", 40, temperature=1.0, seed=5)
    assert a == hello_run.generate("hello ", 40, temperature=1.0, seed=5)
    assert hello_run.generate("hello wor", 3, temperature=0) == "ld,"
    torch.manual_seed(0)
    fresh, vocab = CharLM(10, ModelConfig(cell="lstm", hidden_size=8)), CharVocab("abcdefghij")
    s1, s2 = (generate(fresh, vocab, "abc", 60, seed=s) for s in (1, 2))
    assert s1 != s2 and len(s1) == 60  # an untrained model is close to uniform: seeds differ
    assert generate(fresh, vocab, "abc", 30, top_k=1, seed=3) == generate(fresh, vocab, "abc", 30, temperature=0)
    with pytest.raises(ConfigError, match="temperature"):
        generate(fresh, vocab, "abc", 5, temperature=-1)


def test_suggest_next_characters_and_completions(hello_run):
    s = hello_run.suggest("hello wor", k=3)
    assert s["next"][0][0] == "l" and s["next"][0][1] > 0.9
    assert s["completions"][0]["text"] == "ld" and s["completions"][0]["complete"]
    assert hello_run.suggest("hello th", k=2)["completions"][0]["text"] == "ere"


def test_prompt_outside_vocabulary_is_an_error_in_strict_mode(hello_run):
    with pytest.raises(DataError, match=r"prompt contains 1 character\(s\).*'Z' \(U\+005A\).*--unknown replace"):
        hello_run.generate("hello Z", 5, unknown="error")
    with pytest.raises(DataError, match="text contains"):
        hello_run.bits_per_char("HELLO", unknown="error")


def test_language_model_cannot_be_bidirectional():
    with pytest.raises(ConfigError, match="bidirectional"):
        CharLM(5, ModelConfig(bidirectional=True))


# --- run directory --------------------------------------------------------------------------

def test_saved_run_reloads_exactly(hello_run, tmp_path):
    out = save_text_run(hello_run, tmp_path / "run", plots=False)
    for name in ("config.json", "weights.safetensors", "vocab.json", "history.csv", "metrics.json", "sample.txt"):
        assert (out / name).is_file(), name
    loaded = load_text_run(out)
    assert loaded.bits_per_char(CORPUS[:300]) == hello_run.bits_per_char(CORPUS[:300])
    assert loaded.generate("he", 50, seed=9) == hello_run.generate("he", 50, seed=9)
    assert loaded.vocab.chars == hello_run.vocab.chars
    with pytest.raises(RunError, match="is a 'text' run, not a 'classify' run"):
        load_classifier_run(out)


@pytest.mark.slow
def test_example_pydocs_beats_unigram_quickly():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[3] / "examples" / "text_pydocs.py"
    spec = importlib.util.spec_from_file_location("example_text_pydocs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    m = module.main(quick=True)["metrics"]
    assert m["validation"]["bits_per_char"] < m["baselines"]["add-one unigram"]["bits_per_char"]
    assert m["baselines"]["add-one trigram"]["bits_per_char"] == pytest.approx(3.2063, abs=1e-4)


@pytest.mark.parametrize("embedding_dim", [0, 4])
def test_char_lm_step_equals_forward(embedding_dim):
    torch.manual_seed(0)
    model = CharLM(7, ModelConfig(cell="lstm", hidden_size=5, num_layers=2), embedding_dim).double().eval()
    ids = torch.randint(0, 7, (3, 6))
    logits, _ = model(ids)
    state = model.init_state(3)
    for t in range(6):
        step_logits, state = model.step(ids[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=0, atol=1e-12)
    with pytest.raises(ShapeError, match="one character id"):
        model.step(ids, state)
