"""The fast batched model computes exactly what the textbook equations in charrnn/reference.py say."""
import numpy as np
import pytest

from charrnn import network, reference
from charrnn.config import ModelConfig


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_matches_the_reference_loss_and_gradients(seed):
    V, H, T = 7, 6, 9
    cfg = ModelConfig(vocab_size=V, hidden=H, cell="rnn", dtype="float64")
    rng = np.random.default_rng(seed)
    params = network.init_params(cfg, rng)
    for p in params.values():
        p += rng.normal(0.0, 0.2, p.shape)  # non-zero biases
    x = rng.integers(0, V, T)
    y = rng.integers(0, V, T)
    a0 = np.tanh(rng.normal(0.0, 0.5, H))
    loss, grads, state = network.loss_and_grads(params, cfg, x[:, None], y[:, None], a0[None, None, :])
    ref_loss, ref_grads, ref_a = reference.loss_and_grads(reference.from_params(params), list(x), list(y), a0)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(state[0, 0], ref_a, rtol=1e-12)
    for name, g in reference.from_params(grads).items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=1e-9, atol=1e-14, err_msg=name)


def test_the_pin_can_fail_on_a_wrong_bias():
    """A changed parameter changes the reference: the comparison above is not vacuous."""
    cfg = ModelConfig(vocab_size=4, hidden=3, cell="rnn", dtype="float64")
    params = network.init_params(cfg, np.random.default_rng(0))
    W = reference.from_params(params)
    base, _, _ = reference.loss_and_grads(W, [0, 1, 2], [1, 2, 3], np.zeros(3))
    W["b_a"] = W["b_a"] + 0.5
    moved, _, _ = reference.loss_and_grads(W, [0, 1, 2], [1, 2, 3], np.zeros(3))
    assert abs(base - moved) > 1e-3
