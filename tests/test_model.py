import tracemalloc

import numpy as np
import pytest

from charrnn import network, optim
from charrnn.config import ModelConfig, TrainConfig
from charrnn.gradcheck import check_gradients


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mgru"])
def test_every_gradient_matches_central_differences_when_every_layer_feeds_the_output(cell):
    cfg = ModelConfig(vocab_size=6, hidden=5, layers=3, cell=cell, skip=True)
    assert network.param_shapes(cfg)["W_ya"] == (15, 6)
    errors = check_gradients(cfg, seq_len=6, batch=3, dropout=network.Dropout(0.2, 0.2))
    assert set(errors) == set(network.param_shapes(cfg)) and max(errors.values()) < 1e-6, errors


def test_with_skip_the_lower_layers_reach_the_loss_directly():
    """With skip, the first layer's share of W_ya moves the loss, and without it there is no such share."""
    cfg = ModelConfig(vocab_size=5, hidden=4, layers=2, skip=True, dtype="float64")
    rng = np.random.default_rng(0)
    params = network.init_params(cfg, rng)
    x = rng.integers(0, 5, (6, 2))
    s = network.zero_state(cfg, 2)
    base, _ = network.chunk_nll(params, cfg, x, x, s)
    params["W_ya"][:4] = 0  # the first layer's rows
    moved, _ = network.chunk_nll(params, cfg, x, x, s)
    assert not np.allclose(base, moved)
    assert network.param_shapes(ModelConfig(vocab_size=5, hidden=4, layers=2))["W_ya"] == (4, 5)


@pytest.mark.parametrize("layers", [1, 2])
def test_every_gradient_matches_central_differences(layers):
    errors = check_gradients(ModelConfig(vocab_size=6, hidden=7, layers=layers), seq_len=6, batch=3)
    assert set(errors) == set(network.param_shapes(ModelConfig(vocab_size=6, hidden=7, layers=layers)))
    assert max(errors.values()) < 1e-5, errors


def test_gradcheck_notices_a_wrong_gradient(monkeypatch):
    """The check itself must be able to fail: break the output-bias gradient."""
    real = network.loss_and_grads

    def broken(*a, **k):
        loss, grads, s = real(*a, **k)
        grads["b_y"] = grads["b_y"] * 1.01
        return loss, grads, s

    monkeypatch.setattr(network, "loss_and_grads", broken)
    errors = check_gradients(ModelConfig(vocab_size=4, hidden=3), seq_len=3, batch=2)
    assert errors["b_y"] > 1e-3 and errors["W_ya"] < 1e-5


def _setup(T=8, B=3, H=5, V=4, seed=0):
    cfg = ModelConfig(vocab_size=V, hidden=H, dtype="float64")
    rng = np.random.default_rng(seed)
    params = network.init_params(cfg, rng)
    x = rng.integers(0, V, (T, B))
    y = rng.integers(0, V, (T, B))
    return cfg, params, x, y


def test_carried_state_makes_chunks_equal_one_long_forward():
    cfg, params, x, y = _setup(T=10)
    s0 = np.zeros(network.state_shape(cfg, 3))
    whole, s_whole = network.chunk_nll(params, cfg, x, y, s0)
    first, s1 = network.chunk_nll(params, cfg, x[:4], y[:4], s0)
    second, s2 = network.chunk_nll(params, cfg, x[4:], y[4:], s1)
    np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-12)
    np.testing.assert_allclose(s2, s_whole, rtol=1e-12)
    loss, _, s_last = network.loss_and_grads(params, cfg, x[:4], y[:4], s0)
    np.testing.assert_allclose(s_last, s1)
    assert loss == pytest.approx(first.mean())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mgru"])
def test_the_forward_only_loss_draws_the_dropout_masks_the_training_pass_draws(cell):
    """What gradcheck differentiates numerically: chunk_nll with a Generator in the same state gives
    loss_and_grads' loss, and with other masks another one."""
    cfg = ModelConfig(vocab_size=5, hidden=4, cell=cell, layers=2, dtype="float64")
    params = network.init_params(cfg, np.random.default_rng(0))
    x, y = np.random.default_rng(1).integers(0, 5, (2, 6, 3))
    s0 = np.zeros(network.state_shape(cfg, 3))
    drop = network.Dropout(0.4, 0.3)
    loss, _, s_last = network.loss_and_grads(params, cfg, x, y, s0, drop, np.random.default_rng(7))
    nll, s = network.chunk_nll(params, cfg, x, y, s0, drop, np.random.default_rng(7))
    assert nll.mean() == pytest.approx(loss, rel=1e-13) and np.array_equal(s, s_last)
    other, _ = network.chunk_nll(params, cfg, x, y, s0, drop, np.random.default_rng(8))
    plain, _ = network.chunk_nll(params, cfg, x, y, s0)
    assert abs(other.mean() - loss) > 1e-6 and abs(plain.mean() - loss) > 1e-6


def test_the_carried_in_state_is_left_untouched():
    """Truncated BPTT: the caller owns h0 and gets a new h_last, so chunks cannot leak into each other."""
    cfg, params, x, y = _setup()
    s0 = np.full(network.state_shape(cfg, 3), 0.3)
    before = s0.copy()
    _, _, s_last = network.loss_and_grads(params, cfg, x, y, s0)
    np.testing.assert_array_equal(s0, before)
    assert not np.shares_memory(s_last, s0)
    assert not np.allclose(s_last, s0)


def test_step_matches_the_chunk_forward():
    cfg, params, x, _ = _setup(T=6, B=2)
    s = np.zeros(network.state_shape(cfg, 2))
    logits, _ = network.chunk_logits(params, cfg, x, s)
    for t in range(6):
        step_logits, s = network.step(params, cfg, x[t], s)
        np.testing.assert_allclose(step_logits, logits[t], rtol=1e-10)


def test_parameters_are_float32_by_default_and_named():
    params = network.init_params(ModelConfig(vocab_size=5, hidden=4, cell="rnn"), np.random.default_rng(0))
    assert set(params) == {"W_ax.0", "W_aa.0", "b_a.0", "W_ya", "b_y"}
    assert all(p.dtype == np.float32 for p in params.values())
    assert params["W_ax.0"].shape == (5, 4) and params["W_ya"].shape == (4, 5)


def test_float32_training_step_keeps_float32():
    cfg = ModelConfig(vocab_size=4, hidden=5)
    params = network.init_params(cfg, np.random.default_rng(0))
    x = np.zeros((3, 2), np.uint8)
    _, grads, s = network.loss_and_grads(params, cfg, x, x, np.zeros(network.state_shape(cfg, 2), np.float32))
    assert all(g.dtype == np.float32 for g in grads.values()) and s.dtype == np.float32


def test_clip_by_global_norm_rescales_to_the_limit():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = optim.clip_grads(grads, "norm", 1.0)
    assert norm == pytest.approx(5.0)
    assert optim.global_norm(grads) == pytest.approx(1.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])


def test_clip_below_the_limit_and_zero_limit_change_nothing():
    grads = {"a": np.array([3.0, 4.0])}
    optim.clip_grads(grads, "norm", 10.0)
    optim.clip_grads(grads, "norm", 0.0)
    np.testing.assert_array_equal(grads["a"], [3.0, 4.0])


def test_clip_by_value_clips_each_element():
    grads = {"a": np.array([-7.0, 0.5, 9.0])}
    optim.clip_grads(grads, "value", 1.0)
    np.testing.assert_array_equal(grads["a"], [-1.0, 0.5, 1.0])


@pytest.mark.parametrize("name", ["adam", "adagrad", "sgd"])
def test_optimizers_keep_state_per_parameter_and_descend(name):
    """Each optimizer minimises a quadratic, keeping one state array per slot and key."""
    params = {"w": np.array([2.0, -3.0]), "b": np.array([1.5])}
    state = optim.init_state(params, name)
    assert set(state) == {"t"} | {f"{s}/{k}" for s in optim.SLOTS[name] for k in params}
    cfg = TrainConfig(optimizer=name)
    lr = {"adam": 0.1, "adagrad": 0.5, "sgd": 0.05}[name]
    for _ in range(300):
        optim.update(params, {k: 2 * v for k, v in params.items()}, state, cfg, lr)
    assert int(state["t"]) == 300
    assert all(np.abs(v).max() < 0.05 for v in params.values()), params


def test_adam_updates_a_float32_model_in_float32_with_one_scratch_array():
    """A float32 step allocates one float32 array the size of the parameter, not float64 temporaries.

    (A bias correction held as a NumPy float64 scalar turns the step into a
    float64 array twice the parameter's size: 4x in all, measured here.)
    """
    rng = np.random.default_rng(0)
    params = {"W_aa.0": rng.uniform(-0.05, 0.05, size=(512, 1536)).astype(np.float32)}
    grads = {"W_aa.0": rng.normal(size=(512, 1536)).astype(np.float32)}
    state, cfg = optim.init_state(params, "adam"), TrainConfig()
    before = params["W_aa.0"].copy()
    tracemalloc.start()
    try:
        optim.update(params, grads, state, cfg, 1e-3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert params["W_aa.0"].dtype == np.float32
    assert peak < 1.25 * before.nbytes, peak
    g = grads["W_aa.0"].astype(np.float64)  # Adam's first step, by hand in float64
    m, v = (1 - cfg.beta1) * g, (1 - cfg.beta2) * g * g
    step = 1e-3 * np.sqrt(1 - cfg.beta2) / (1 - cfg.beta1) * m / (np.sqrt(v) + cfg.eps)
    np.testing.assert_allclose(before - params["W_aa.0"], step, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("name", ["adam", "adagrad", "sgd"])
def test_the_lookup_table_steps_lookup_lr_times_further(name):
    """W_ax.0 moves lookup_lr times as far as it would at lr; every other parameter moves as at lr."""
    start = {optim.LOOKUP: np.array([[0.5, -0.25]]), "W_aa.0": np.array([[0.5, -0.25]])}
    grads = {k: np.array([[0.3, -0.7]]) for k in start}
    moved = {}
    for mult in (1.0, 7.0):
        params = {k: v.copy() for k, v in start.items()}
        cfg = TrainConfig(optimizer=name, lookup_lr=mult)
        optim.update(params, grads, optim.init_state(params, name), cfg, 0.01)
        moved[mult] = {k: params[k] - start[k] for k in start}
    np.testing.assert_allclose(moved[7.0][optim.LOOKUP], 7 * moved[1.0][optim.LOOKUP], rtol=1e-12)
    np.testing.assert_array_equal(moved[7.0]["W_aa.0"], moved[1.0]["W_aa.0"])
    assert np.all(moved[1.0][optim.LOOKUP] != 0)


@pytest.mark.parametrize("V", [5, 300])
def test_scatter_rows_sums_rows_by_id(V):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, 500)
    rows = rng.normal(size=(500, 7))
    expected = np.zeros((V, 7))
    np.add.at(expected, ids, rows)
    np.testing.assert_allclose(network.scatter_rows(ids, rows, V), expected, rtol=1e-12, atol=1e-12)


def test_gradients_are_right_for_a_large_vocabulary():
    errors = check_gradients(ModelConfig(vocab_size=300, hidden=3), seq_len=4, batch=2)
    assert max(errors.values()) < 1e-5, errors
