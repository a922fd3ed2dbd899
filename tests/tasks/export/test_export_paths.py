"""Exporting a recursive normal head, which forecasts by sampled paths: the graph reads the paths'
standard normal draws as its input ``noise (B, S, H, C)`` (an ensemble's: every member's,
``(B, members, S, H, C)``). With the draws rnnkit's own forecast
makes (:func:`~rnnkit.tasks.forecast.paths.normal_draws`), the graph's levels are rnnkit's to
1e-5; with other draws, they are the empirical quantiles of paths computed here step by step in
float64 from the network's own one-step outputs. The heads whose draws cannot be an input stay
refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import ConfigError
from rnnkit.tasks.forecast.distribution import params
from rnnkit.tasks.forecast.paths import normal_draws, sample_levels

from export_cases import contexts, make_run, props, rel_diff, session

pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install 'rnnkit[deploy]')")

TOL = 1e-5
SAMPLED = dict(strategy="recursive", distribution="normal", samples=16, quantiles=(0.1, 0.5, 0.9))


def test_given_draws_are_the_draws_rnnkit_makes():
    run = make_run(torch.float32, cell="gru", **SAMPLED)
    x = torch.randn(5, 24, 1)
    noise = normal_draws(run.model, 5, 6)
    assert noise.shape == (5, 16, 6, 1)
    assert torch.equal(sample_levels(run.model, x, 6), sample_levels(run.model, x, 6, noise=noise))
    with pytest.raises(ValueError, match="noise must be"):
        sample_levels(run.model, x, 6, noise=noise[:, :8])


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("normalise", ["window", "none"])
def test_a_recursive_normal_head_round_trips_with_its_draws_as_an_input(tmp_path, cell, normalise):
    run = make_run(torch.float32, cell=cell, normalise=normalise, **SAMPLED)
    path = rnnkit.export_onnx(run, tmp_path / "m.onnx")
    X = contexts(run)[:7]
    s = session(path)
    assert [i.name for i in s.get_inputs()] == ["context", "noise"]
    noise = normal_draws(run.model, len(X), 6).double().numpy()
    got = s.run(["forecast"], {"context": X, "noise": noise})[0]
    assert got.shape == (7, 6, 1, 3) and (np.diff(got, axis=-1) >= 0).all()
    assert rel_diff(got, run.predict_contexts(X, 6, all_levels=True)) < TOL
    meta = props(path)
    assert (meta["samples"], meta["sample_seed"]) == ("16", str(run.model.sample_seed))
    entry = json.loads(meta["inputs"])[-1]
    assert entry["name"] == "noise" and entry["shape"] == ["batch", 16, 6, 1]


def test_with_other_draws_the_graph_gives_those_paths_quantiles(tmp_path):
    """A reference made here: paths stepped through the network's own one-step head in float64 from
    the same draws (the head's one-step mean and scale, :func:`~rnnkit.tasks.forecast.distribution.params`),
    then the ceil(qS)-th smallest of each step's draws, mapped to the data's units."""
    run = make_run(torch.float64, cell="lstm", normalise="none", **SAMPLED)
    path = rnnkit.export_onnx(run, tmp_path / "m.onnx")
    X = contexts(run)[:3]
    noise = np.random.default_rng(5).standard_normal((3, 16, 6, 1))
    got = session(path).run(["forecast"], {"context": X, "noise": noise})[0]
    model, scaler = run.model.eval(), run.scaler
    raw = X if run.transform is None else run.transform.forward(X)  # the target transform, then the scaler
    scaled = torch.tensor(scaler.transform(raw.reshape(-1, 1)).reshape(X.shape))
    paths = np.empty((3, 16, 6))
    with torch.no_grad():
        for b in range(3):
            for s in range(16):
                out, state = model.rnn(scaled[b:b + 1])
                h = out[:, -1]
                for k in range(6):
                    mean, scale = (p.reshape(()) for p in params(model.head(h), 1, 1, "normal"))
                    y = mean + scale * noise[b, s, k, 0]
                    paths[b, s, k] = float(y)
                    out, state = model.rnn(y.reshape(1, 1, 1), state)
                    h = out[:, -1]
    ranks = [int(np.ceil(q * 16 - 1e-9)) - 1 for q in (0.1, 0.5, 0.9)]
    ref = np.sort(paths, axis=1)[:, ranks].transpose(0, 2, 1)  # (B, H, Q)
    ref = scaler.inverse_transform(ref.reshape(-1, 1)).reshape(3, 6, 3)
    if run.transform is not None:
        ref = run.transform.inverse(ref)
    assert rel_diff(got[:, :, 0], ref) < 1e-9


@pytest.mark.parametrize("ensemble, lookbacks", [(3, ()), (2, (12, 24))], ids=["seeds", "lookbacks"])
def test_an_ensemble_of_recursive_normal_heads_reads_every_members_draws(tmp_path, ensemble, lookbacks):
    # each member draws from its own generator (its own sample_seed): the graph reads them all,
    # noise (B, members, S, H, C), member k's on axis 1 at k, and takes each level's median as rnnkit does
    run = make_run(torch.float32, cell="gru", ensemble=ensemble, lookbacks=lookbacks, **SAMPLED)
    members = run.model.members
    noise = normal_draws(run.model, 5, 6)
    assert noise.shape == (5, len(members), 16, 6, 1)
    for k, m in enumerate(members):
        assert torch.equal(noise[:, k], normal_draws(m, 5, 6))
    assert len({int(m.sample_seed) for m in members}) == len(members)  # the members' streams differ
    path = rnnkit.export_onnx(run, tmp_path / "m.onnx")
    X = contexts(run, length=24)[:7]
    got = session(path).run(["forecast"], {"context": X,
                                           "noise": normal_draws(run.model, len(X), 6).double().numpy()})[0]
    want = run.predict_contexts(X, 6, all_levels=True)
    assert got.shape == (7, 6, 1, 3) and rel_diff(got, want) < TOL
    meta = props(path)
    assert meta["sample_seed"] == ",".join(str(int(m.sample_seed)) for m in members)
    entry = json.loads(meta["inputs"])[-1]
    assert entry["name"] == "noise" and entry["shape"] == ["batch", len(members), 16, 6, 1]
    # other draws give other levels (the input is read, not ignored)
    other = np.random.default_rng(2).standard_normal((7, len(members), 16, 6, 1))
    assert rel_diff(session(path).run(["forecast"], {"context": X, "noise": other})[0], want) > 1e-3


@pytest.mark.parametrize("settings, needle", [
    (dict(SAMPLED, distribution="student_t"), "student_t head's draws depend"),
])
def test_heads_whose_draws_cannot_be_an_input_are_refused(tmp_path, settings, needle):
    run = make_run(torch.float32, cell="gru", **settings)
    with pytest.raises(ConfigError, match=needle):
        rnnkit.export_onnx(run, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_sampled_head_has_no_step_graph(tmp_path):
    run = make_run(torch.float32, cell="gru", **SAMPLED)
    with pytest.raises(ConfigError, match="no streaming step graph"):
        rnnkit.export_onnx(run, tmp_path / "s.onnx", step=True)
