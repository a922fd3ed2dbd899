"""Characters outside a character model's vocabulary in evaluate, generate --prime and suggest:
mapped to the unknown symbol by default, counted and reported; ``unknown="error"`` (--unknown error)
refuses them. (Bits per character with unknown characters against NumPy: test_text.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.cli import main
from rnnkit.config import ModelConfig, TrainConfig
from rnnkit.data.vocab import CharVocab
from rnnkit.errors import DataError, RnnkitWarning, ShapeError
from rnnkit.tasks.text.config import TextConfig
from rnnkit.tasks.text.data import encode_text
from rnnkit.tasks.text.generate import generate, suggest
from rnnkit.tasks.text.model import CharLM
from rnnkit.tasks.text.run import load_text_run, save_text_run
from rnnkit.tasks.text.workflow import fit_char_lm

CORPUS = "hello world, hello there. " * 60  # 1,560 characters, 10 distinct
#: a rare 'Z' (once) and 'q' (once) near the end: in the validation part
RARE = CORPUS + "hello Zorld, hello qhere. " + "hello world, hello there. " * 4


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Tiny models: one intra-op thread is faster on a loaded 2-core machine (see conftest)."""


def _fit(text: str, **text_settings):
    return fit_char_lm(TextConfig(seq_len=16, steps=120, val_frac=0.1, **text_settings),
                       ModelConfig(cell="gru", hidden_size=16), TrainConfig(batch_size=8, lr=0.01, clip_norm=5.0,
                                                                            patience=0), text=text, quiet=True)


@pytest.fixture(scope="module")
def run():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(CORPUS)
    finally:
        torch.set_num_threads(before)


# --- the vocabulary ---------------------------------------------------------------------------

def test_vocab_maps_to_no_id_without_its_own_symbol_and_to_it_with_one():
    plain = CharVocab("abc")  # trained with the default policy: no U+FFFD
    assert plain.unknown_id == CharVocab.NO_ID == -1
    assert plain.encode("aéb", unknown="replace").tolist() == [0, -1, 1]
    assert plain.encode("aéb", unknown="skip").tolist() == [0, 1]
    assert plain.count_unknown("éaøéb") == (3, ["é", "ø"])
    assert plain.decode([0, -1, 2]) == "a\ufffdc"
    with pytest.raises(DataError, match=r"2 character\(s\).*'é' \(U\+00E9\), 'ø' \(U\+00F8\).*--unknown replace"):
        plain.encode("éaø", unknown="error")
    own = CharVocab.build("banana!", unknown="replace", min_count=2)  # U+FFFD at id 0, trained on 'b' and '!'
    assert own.unknown_id == 0 and own.encode("aéb", unknown="replace").tolist() == [1, 0, 0]


def test_encode_text_reports_what_it_did():
    plain = CharVocab("abc")
    ids, r = encode_text(plain, "aéøéb")
    assert ids.tolist() == [0, -1, -1, -1, 1]
    assert (r.count, r.distinct, r.policy, r.symbol, r.in_score) == (3, ("é", "ø"), "replace", None, False)
    assert r.describe("text", scoring=True) == ("3 characters of the text outside the vocabulary (2 distinct: "
                                                "'é' (U+00E9), 'ø' (U+00F8)) were mapped to the unknown symbol "
                                                "(read as no character, not scored)")
    assert encode_text(plain, "aé", "prompt")[1].describe("prompt") == (
        "1 character of the prompt outside the vocabulary (1 distinct: 'é' (U+00E9)) was mapped to the unknown "
        "symbol (read as no character)")
    assert encode_text(plain, "aé", unknown="skip")[1].describe() == (
        "1 character of the text outside the vocabulary (1 distinct: 'é' (U+00E9)) was dropped")
    own = CharVocab.build("banana!", unknown="replace", min_count=2)
    r = encode_text(own, "aé")[1]
    assert r.symbol == "U+FFFD" and r.in_score
    assert r.to_dict("text", True)["message"].endswith("mapped to the vocabulary's unknown symbol U+FFFD "
                                                       "(read and scored as it)")
    none = encode_text(plain, "abc")[1].to_dict()
    assert none["count"] == 0 and none["message"] is None and not none["in_score"]


# --- the model reads id -1 as no character ------------------------------------------------------

@pytest.mark.parametrize("embedding_dim", [0, 3])
def test_char_lm_reads_an_unknown_id_as_a_zero_input(embedding_dim):
    torch.manual_seed(0)
    model = CharLM(5, ModelConfig(cell="lstm", hidden_size=4, num_layers=2), embedding_dim).double().eval()
    ids = torch.tensor([[0, -1, 3, 4, -1, 1], [-1, -1, 2, 0, 1, 4]])
    known = (ids >= 0)[..., None]
    inputs = (model.embedding(ids.clamp(min=0)) if embedding_dim else
              torch.nn.functional.one_hot(ids.clamp(min=0), 5).double()) * known  # zero where unknown
    out, _ = model.rnn(inputs)
    logits, _ = model(ids)
    assert torch.equal(logits, model.head(out))
    state, steps = None, []
    for t in range(ids.shape[1]):  # the streaming step reads it the same way
        y, state = model.step(ids[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), logits, rtol=0, atol=1e-12)
    with pytest.raises(ShapeError, match="id -2"):
        model(torch.tensor([[0, -2]]))


# --- bits per character with unknown characters (against NumPy: tests/tasks/text/test_text.py) ------

def test_evaluate_reproduces_the_fit_validation_score_and_skip_drops(run):
    val = CORPUS[-run.meta["val_chars"]:]
    assert run.evaluate(val)["bits_per_char"] == run.metrics["validation"]["bits_per_char"]  # same code, same ids
    dropped = run.evaluate(val[:100] + "ÆØ" + val[100:], unknown="skip")
    assert dropped["bits_per_char"] == run.evaluate(val)["bits_per_char"] and dropped["unknown"]["count"] == 2
    mapped = run.evaluate(val[:100] + "Æ" + val[100:])
    assert mapped["scored"] == len(val) - 1 and mapped["unknown"]["in_score"] is False
    with pytest.warns(RnnkitWarning, match=r"1 character of the text outside the vocabulary.*'Æ'"):
        assert run.bits_per_char(val[:100] + "Æ" + val[100:]) == mapped["bits_per_char"]


def test_a_vocabulary_with_a_trained_symbol_scores_unknowns_as_it_like_fit_did():
    rare = _fit(RARE, unknown="replace", min_count=2)
    assert rare.vocab.chars[0] == CharVocab.UNK and "Z" not in rare.vocab and "q" not in rare.vocab
    val = RARE[-rare.meta["val_chars"]:]
    assert "Z" in val and "q" in val
    result = rare.evaluate(val)  # the default maps to U+FFFD, as training's validation did
    assert result["bits_per_char"] == rare.metrics["validation"]["bits_per_char"]
    assert result["scored"] == len(val) - 1 and result["unknown"]["symbol"] == "U+FFFD"
    assert result["unknown"]["in_score"] and result["unknown"]["count"] == 2


# --- prompts ----------------------------------------------------------------------------------------

def test_generate_maps_unknown_prompt_characters_and_warns(run):
    with pytest.warns(RnnkitWarning, match=r"1 character of the prompt outside the vocabulary \(1 distinct: "
                                           r"'Z' \(U\+005A\)\) was mapped to the unknown symbol"):
        z = run.generate("hello Zor", 30, seed=4)
    with pytest.warns(RnnkitWarning, match="'Q'"):
        q = run.generate("hello Qor", 30, seed=4)
    assert z == q and len(z) == 30  # every unknown character is the same symbol
    with pytest.warns(RnnkitWarning, match="dropped"):
        assert run.generate("hello wZor", 30, seed=4, unknown="skip") == run.generate("hello wor", 30, seed=4)
    with pytest.raises(DataError, match=r"prompt contains 1 character\(s\).*'Z'"):
        run.generate("hello Zor", 5, unknown="error")
    with pytest.warns(RnnkitWarning):  # a prompt of unknown characters only still primes the model
        assert len(generate(run.model, run.vocab, "ÆØ", 5, seed=0)) == 5
    with pytest.raises(DataError, match="prompt is empty"):
        generate(run.model, run.vocab, "ÆØ", 5, unknown="skip")


def test_suggest_reports_unknown_prompt_characters(run):
    s = run.suggest("hello Wor", k=2)
    assert s["unknown"]["count"] == 1 and s["unknown"]["distinct"] == ["W"] and "'W'" in s["unknown"]["message"]
    assert s["completions"] and all(c["text"] for c in s["completions"])
    assert run.suggest("hello wor", k=2)["unknown"]["message"] is None
    x = suggest(run.model, run.vocab, "hello Xor", 2)  # another unknown character: the same symbol
    assert (x["next"], x["completions"], x["unknown"]["distinct"]) == (s["next"], s["completions"], ["X"])
    with pytest.raises(DataError, match="'W'"):
        run.suggest("hello Wor", unknown="error")


# --- the command line, on a saved run ---------------------------------------------------------------

def test_cli_evaluate_generate_suggest_with_unknown_characters(run, tmp_path, capsys):
    out = save_text_run(run, tmp_path / "run", plots=False)
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("hello wörld, hello thøre. " * 3, encoding="utf-8")
    expected = load_text_run(out).evaluate(held_out.read_text(encoding="utf-8"))
    capsys.readouterr()

    assert main(["text", "evaluate", "--run", str(out), "--data", str(held_out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{held_out}: {expected['bits_per_char']:.4f} bits per character over {expected['scored']} "
                     f"scored characters",
                     "6 characters of the text outside the vocabulary (2 distinct: 'ö' (U+00F6), 'ø' (U+00F8)) were "
                     "mapped to the unknown symbol (read as no character, not scored)"]
    assert main(["text", "evaluate", "--run", str(out), "--data", str(held_out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scored"] == 77 - 6 and data["chars"] == 78 and data["unknown"]["distinct"] == ["ö", "ø"]
    assert data["bits_per_char"] == expected["bits_per_char"]

    assert main(["text", "generate", "--run", str(out), "--prime", "hello wö", "--length", "12"]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("hello wö") and len(printed.out) == len("hello wö") + 12 + 1
    assert printed.err == ("rnnkit: warning: 1 character of the prompt outside the vocabulary (1 distinct: "
                           "'ö' (U+00F6)) was mapped to the unknown symbol (read as no character)\n")

    assert main(["text", "suggest", "--run", str(out), "--prime", "hellö wor"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("1 character of the prompt outside the vocabulary") and printed[1].startswith("next")

    for args in (["evaluate", "--data", str(held_out)], ["generate", "--prime", "hello wö"],
                 ["suggest", "--prime", "hellö"]):
        assert main(["text", args[0], "--run", str(out), *args[1:], "--unknown", "error"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and "'ö' (U+00F6)" in err, err
