"""Gated cells, depth and dropout: gradients, behaviour, and every command with every cell."""
import json

import numpy as np
import pytest

from charrnn import checkpoint, network
from charrnn.config import ModelConfig, TrainConfig
from charrnn.gradcheck import check_gradients
from charrnn.limits import Limits
from charrnn.checkpoint import new_checkpoint
from charrnn.trainer import train_checkpoint as train
from charrnn.vocab import Vocab

from conftest import CORPORA, one_line_error

CELLS = ["rnn", "lstm", "gru", "mgru"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_every_parameter_gradient_of_every_cell(cell, layers):
    cfg = ModelConfig(vocab_size=6, hidden=5, cell=cell, layers=layers)
    errors = check_gradients(cfg, seq_len=6, batch=3)
    assert set(errors) == set(network.param_shapes(cfg))
    assert max(errors.values()) < 1e-5, errors


def test_the_scaled_gru_with_unit_scales_computes_the_gru():
    """mgru's scale offsets start at 0: its loss, state and shared gradients are then the GRU's, and the
    scales still get a gradient (so training moves them away from 1)."""
    gcfg = ModelConfig(vocab_size=6, hidden=5, cell="gru", layers=2, dtype="float64")
    mcfg = ModelConfig(vocab_size=6, hidden=5, cell="mgru", layers=2, dtype="float64")
    rng = np.random.default_rng(3)
    gru = {k: v + rng.normal(0, 0.2, v.shape) for k, v in network.init_params(gcfg, rng).items()}
    mgru = network.init_params(mcfg, rng)
    assert not any(mgru[f"W_ax.{k}"][:, 15:].any() or mgru[f"b_a.{k}"][15:].any() for k in range(2))  # scales 1
    for k in range(2):  # the GRU's weights, the scales left at 1
        mgru[f"W_ax.{k}"][:, :15], mgru[f"b_a.{k}"][:15] = gru[f"W_ax.{k}"], gru[f"b_a.{k}"]
        mgru[f"W_aa.{k}"] = gru[f"W_aa.{k}"]
    mgru["W_ya"], mgru["b_y"] = gru["W_ya"], gru["b_y"]
    x, y = rng.integers(0, 6, (7, 3)), rng.integers(0, 6, (7, 3))
    s0 = np.tanh(rng.normal(size=network.state_shape(gcfg, 3)))
    gl, gg, gs = network.loss_and_grads(gru, gcfg, x, y, s0)
    ml, mg, ms = network.loss_and_grads(mgru, mcfg, x, y, s0)
    assert ml == pytest.approx(gl, rel=1e-13)
    np.testing.assert_allclose(ms, gs, rtol=1e-12)
    for k in range(2):
        np.testing.assert_allclose(mg[f"W_ax.{k}"][:, :15], gg[f"W_ax.{k}"], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(mg[f"W_aa.{k}"], gg[f"W_aa.{k}"], rtol=1e-10, atol=1e-15)
        assert np.abs(mg[f"W_ax.{k}"][:, 15:]).max() > 1e-4
    mgru["W_ax.0"][:, 15:] += 0.3  # other scales: another model
    assert abs(network.loss_and_grads(mgru, mcfg, x, y, s0)[0] - gl) > 1e-4


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_with_dropout_masks(cell):
    errors = check_gradients(ModelConfig(vocab_size=5, hidden=4, cell=cell, layers=2), seq_len=5, dropout=0.4)
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_with_the_recurrent_weights_dropped_too(cell):
    drop = network.Dropout(outputs=0.3, weights=0.4)
    errors = check_gradients(ModelConfig(vocab_size=5, hidden=4, cell=cell, layers=2), seq_len=5, dropout=drop)
    assert max(errors.values()) < 1e-5, errors


def test_weight_drop_trains_through_a_masked_recurrent_matrix():
    """An entry of W_aa dropped for the chunk gets exactly no gradient; about the dropped share of them is."""
    cfg = ModelConfig(vocab_size=6, hidden=16, cell="gru", layers=2, dtype="float64")
    rng = np.random.default_rng(0)
    params = network.init_params(cfg, rng)
    x, s = rng.integers(0, 6, (8, 4)), np.zeros(network.state_shape(cfg, 4))
    plain, g_plain, _ = network.loss_and_grads(params, cfg, x, x, s)
    dropped, g, _ = network.loss_and_grads(params, cfg, x, x, s, network.Dropout(weights=0.5), np.random.default_rng(1))
    assert dropped != plain
    for k in ("W_aa.0", "W_aa.1"):
        assert (g_plain[k] == 0).mean() == 0
        assert 0.4 < (g[k] == 0).mean() < 0.6, k
    assert (g["W_ax.1"] == 0).mean() == 0  # the input side is not masked
    nll, _ = network.chunk_nll(params, cfg, x, x, s)  # evaluation uses the whole matrix
    assert nll.mean() == pytest.approx(plain)


def test_parameter_shapes_follow_the_gates():
    for cell, g in [("rnn", 1), ("lstm", 4), ("gru", 3)]:
        shapes = network.param_shapes(ModelConfig(vocab_size=9, hidden=6, cell=cell, layers=2))
        assert shapes["W_ax.0"] == (9, 6 * g) and shapes["W_ax.1"] == (6, 6 * g) and shapes["W_aa.1"] == (6, 6 * g)
    assert network.state_shape(ModelConfig(vocab_size=9, hidden=6, cell="lstm", layers=3), 4) == (3, 4, 12)


def test_lstm_forget_gate_bias_starts_at_one():
    params = network.init_params(ModelConfig(vocab_size=5, hidden=4, cell="lstm", layers=2), np.random.default_rng(0))
    for k in (0, 1):
        b = params[f"b_a.{k}"]
        assert (b[4:8] == 1).all() and (b[:4] == 0).all() and (b[8:] == 0).all()


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_step_by_step_equals_the_chunk_for_every_cell(cell, skip):
    cfg = ModelConfig(vocab_size=5, hidden=4, cell=cell, layers=2, dtype="float64", skip=skip)
    rng = np.random.default_rng(0)
    params = network.init_params(cfg, rng)
    x = rng.integers(0, 5, (7, 2))
    s = np.zeros(network.state_shape(cfg, 2))
    logits, s_chunk = network.chunk_logits(params, cfg, x, s)
    for t in range(7):
        out, s = network.step(params, cfg, x[t], s)
        np.testing.assert_allclose(out, logits[t], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s, s_chunk, rtol=1e-10, atol=1e-12)


def test_dropout_is_for_training_only():
    cfg = ModelConfig(vocab_size=5, hidden=8, layers=2, dtype="float64")
    rng = np.random.default_rng(0)
    params = network.init_params(cfg, rng)
    x = rng.integers(0, 5, (6, 3))
    s = np.zeros(network.state_shape(cfg, 3))
    plain, _, _ = network.loss_and_grads(params, cfg, x, x, s)
    dropped, _, _ = network.loss_and_grads(params, cfg, x, x, s, 0.5, np.random.default_rng(1))
    assert plain != dropped
    nll, _ = network.chunk_nll(params, cfg, x, x, s)  # evaluation takes no dropout at all
    assert nll.mean() == pytest.approx(plain)


@pytest.mark.parametrize("cell", ["lstm", "gru", "mgru"])
def test_gated_cells_learn_home(cell, tmp_path):
    text = (CORPORA / "home.txt").read_text()
    vocab = Vocab.from_text(text)
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=16, cell=cell), TrainConfig(lr=0.02))
    train(ck, vocab.encode(text), str(tmp_path / "m.npz"), Limits(steps=150))
    from charrnn.score import next_char_probs

    p = next_char_probs(ck.params, ck.model_config, vocab.encode("HOM"))
    assert p[1, vocab.chars.index("M")] > 0.9 and p[2, vocab.chars.index("E")] > 0.9


@pytest.mark.parametrize("cell", ["lstm", "gru", "mgru"])
def test_resume_is_bit_exact_for_gated_cells_with_both_dropouts(cell, tmp_path):
    text = (CORPORA / "pantry.txt").read_text()[:6000]
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)

    def fresh():
        return new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=8, cell=cell, layers=2),
                              TrainConfig(batch=4, seq_len=12, dropout=0.2, weight_drop=0.25, eval_every=5))

    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    train(fresh(), ids, a, Limits(steps=16))
    train(fresh(), ids, b, Limits(steps=9))
    train(checkpoint.load(b), ids, b, Limits(steps=16))
    ca, cb = checkpoint.load(a), checkpoint.load(b)
    for k in ca.params:
        assert ca.params[k].tobytes() == cb.params[k].tobytes(), k
    for k in ca.opt_state:
        assert ca.opt_state[k].tobytes() == cb.opt_state[k].tobytes(), k


@pytest.mark.parametrize("cell", CELLS)
def test_every_command_works_with_every_cell_and_depth(cli, tmp_path, cell):
    out = tmp_path / f"{cell}.npz"
    home = str(CORPORA / "home.txt")
    r = cli("train", home, "--cell", cell, "--layers", 2, "--hidden", 8, "--dropout", 0.1, "--steps", 6, "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    assert cli("train", home, "--steps", 8, "-o", out, "--resume", "-q").exit_code == 0
    info = json.loads(cli("info", out, "--json").stdout)
    assert info["config"]["cell"] == cell and info["config"]["layers"] == 2 and info["steps"] == 8
    s = cli("sample", "-m", out, "-n", 15, "--seed", 1)
    assert s.exit_code == 0 and len(s.stdout) == 15
    p = cli("probs", "-m", out, "HOM", "--json")
    assert len(p.stdout.splitlines()) == 3
    e = json.loads(cli("eval", "-m", out, home, "--json").stdout)
    assert e["chars"] == 999
    g = json.loads(cli("gradients", "-m", out, home, "--span", 6, "--samples", 4, "--json").stdout)
    assert len(g["norm"]) == 7 and all(n >= 0 for n in g["norm"])


def test_gradcheck_command_passes_and_fails_on_the_tolerance(cli):
    ok = cli("gradcheck", "--cell", "gru", "--layers", 2, "--hidden", 4)
    assert ok.exit_code == 0 and "passed" in ok.stdout and "W_aa.1" in ok.stdout
    bad = cli("gradcheck", "--tolerance", "1e-30", "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["passed"] is False


def test_gradcheck_and_gradients_take_a_model_whose_every_layer_feeds_the_output(cli, tmp_path):
    ok = cli("gradcheck", "--cell", "mgru", "--layers", 2, "--skip", "--hidden", 4, "--dropout", 0.2, "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["passed"] is True
    out, text = tmp_path / "s.npz", str(CORPORA / "pantry.txt")
    assert cli("train", text, "--layers", 2, "--skip", "--hidden", 16, "--steps", 2, "-o", out, "-q").exit_code == 0
    g = cli("gradients", "-m", out, text, "--span", 6, "--samples", 4, "--json")  # the top layer's, through time
    assert g.exit_code == 0 and len(json.loads(g.stdout)["norm"]) == 7


def test_gradients_vanish_in_an_untrained_vanilla_rnn(cli, tmp_path):
    out = tmp_path / "v.npz"
    cli("train", str(CORPORA / "pantry.txt"), "--cell", "rnn", "--hidden", 16, "--steps", 1, "-o", out, "-q")
    g = json.loads(cli("gradients", "-m", out, str(CORPORA / "pantry.txt"), "--span", 30, "--json").stdout)["norm"]
    assert g[30] < g[0] * 1e-3


def test_unknown_cell_is_a_usage_error(cli, tmp_path):
    r = cli("train", str(CORPORA / "home.txt"), "--cell", "transformer", "-o", tmp_path / "x.npz")
    assert r.exit_code == 2 and "unknown cell" in one_line_error(r.stderr)
