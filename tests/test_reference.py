"""The fast batched model computes exactly what the textbook equations in charrnn/reference.py say, for every cell."""
import numpy as np
import pytest

from charrnn import network, reference
from charrnn.config import ModelConfig


def _reference(cell, W, x, y, s0, H):
    """(loss, grads, last state (S,)) of the textbook equations for one sequence."""
    if cell == "rnn":
        return reference.loss_and_grads(W, x, y, s0)
    if cell == "lstm":
        loss, grads, (h, c) = reference.lstm_loss_and_grads(W, x, y, s0[:H], s0[H:])
        return loss, grads, np.concatenate([h, c])
    return reference.gru_loss_and_grads(W, x, y, s0)  # the scaled GRU's W holds its scales


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mgru"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_matches_the_reference_loss_and_gradients(cell, seed):
    V, H, T = 7, 6, 9
    cfg = ModelConfig(vocab_size=V, hidden=H, cell=cell, dtype="float64")
    rng = np.random.default_rng(seed)
    params = network.init_params(cfg, rng)
    for p in params.values():
        p += rng.normal(0.0, 0.2, p.shape)  # non-zero biases
    x = rng.integers(0, V, T)
    y = rng.integers(0, V, T)
    s0 = np.tanh(rng.normal(0.0, 0.5, network.state_shape(cfg, 1)[2]))  # h (and c) carried in
    loss, grads, state = network.loss_and_grads(params, cfg, x[:, None], y[:, None], s0[None, None, :])
    ref_loss, ref_grads, ref_state = _reference(cell, reference.from_params(params, cell), list(x), list(y), s0, H)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(state[0, 0], ref_state, rtol=1e-12)
    fast = reference.from_params(grads, cell)
    assert set(fast) == set(ref_grads)
    for name, g in fast.items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=1e-9, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mgru"])
def test_the_pin_can_fail_on_a_wrong_bias(cell):
    """A changed parameter changes the reference: the comparison above is not vacuous."""
    H = 3
    cfg = ModelConfig(vocab_size=4, hidden=H, cell=cell, dtype="float64")
    params = network.init_params(cfg, np.random.default_rng(0))
    W = reference.from_params(params, cell)
    s0 = np.zeros(network.state_shape(cfg, 1)[2])
    base = _reference(cell, W, [0, 1, 2], [1, 2, 3], s0, H)[0]
    bias = "b_a" if cell == "rnn" else f"b_{reference.GATES[cell][-1]}"
    W[bias] = W[bias] + 0.5
    assert abs(base - _reference(cell, W, [0, 1, 2], [1, 2, 3], s0, H)[0]) > 1e-3


def test_the_reference_gradients_are_the_derivative_of_the_reference_loss():
    """Independent of the fast path: central differences of the textbook GRU, scaled GRU and LSTM losses."""
    rng = np.random.default_rng(4)
    for cell in ("lstm", "gru", "mgru"):
        H, V = 3, 4
        cfg = ModelConfig(vocab_size=V, hidden=H, cell=cell, dtype="float64")
        W = {k: v + rng.normal(0, 0.3, v.shape)
             for k, v in reference.from_params(network.init_params(cfg, rng), cell).items()}
        s0 = rng.normal(0, 0.5, network.state_shape(cfg, 1)[2])
        x, y = [0, 3, 1, 2], [3, 1, 2, 0]
        _, grads, _ = _reference(cell, W, x, y, s0, H)
        names = {"lstm": ("W_hf", "b_g"), "gru": ("W_hu", "b_n"), "mgru": ("W_hu", "b_n", "W_sn", "c_r")}[cell]
        for name in names:
            num = np.zeros_like(W[name])
            for i in np.ndindex(W[name].shape):
                old = W[name][i]
                W[name][i] = old + 1e-6
                up = _reference(cell, W, x, y, s0, H)[0]
                W[name][i] = old - 1e-6
                down = _reference(cell, W, x, y, s0, H)[0]
                W[name][i] = old
                num[i] = (up - down) / 2e-6
            # a central difference at 1e-6 rounds to about 1e-16 * loss / 1e-6, ~3e-10 here (one machine's BLAS
            # missed atol 1e-10 by 2.1e-10 on an entry of 1e-4)
            np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-9, err_msg=f"{cell} {name}")
