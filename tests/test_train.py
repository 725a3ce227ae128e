import math

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Streams, fit_shape, padded_streams, split
from charrnn.errors import CharRNNError
from charrnn.score import next_char_probs
from charrnn.limits import Limits, parse_duration
from charrnn.checkpoint import new_checkpoint
from charrnn.loop import auto_eval_every
from charrnn.trainer import train_checkpoint as train
from charrnn.vocab import Vocab

from conftest import CORPORA, train_small


def test_trained_on_home_it_predicts_o_then_m_then_e(home_model):
    ck = checkpoint.load(home_model)
    p = next_char_probs(ck.params, ck.model_config, ck.vocab.encode("HOM"))
    idx = ck.vocab.chars.index
    assert p[0, idx("O")] > 0.9
    assert p[1, idx("M")] > 0.9
    assert p[2, idx("E")] > 0.9


def test_an_untrained_model_does_not_know_home():
    """The HOME test above can fail: a fresh model is near uniform."""
    vocab = Vocab.from_text("HOME\n")
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=5, hidden=32), TrainConfig())
    p = next_char_probs(ck.params, ck.model_config, vocab.encode("H"))
    assert p[0, vocab.chars.index("O")] < 0.6


def test_validation_split_is_the_end_of_the_text():
    ids = np.arange(100)
    tr, va = split(ids, 0.1)
    assert tr.array().tolist() == list(range(90)) and va.array().tolist() == list(range(90, 100))
    assert len(split(ids, 0.0)[1]) == 0
    with pytest.raises(CharRNNError, match="at least 2"):
        split(ids[:1], 0.1)


def test_tiny_corpora_shrink_the_batch_then_the_sequence():
    assert fit_shape(100_000, 64, 64) == (64, 64)
    assert fit_shape(650, 64, 64) == (10, 64)
    assert fit_shape(30, 64, 64) == (1, 29)
    assert fit_shape(2, 64, 64) == (1, 1)


def test_streams_are_contiguous_and_chunks_continue_them():
    ids = np.arange(41)
    s = Streams.of(ids, batch=4, seq_len=3)
    assert s.length == 10 and s.ids.read(10, 20).tolist() == list(range(10, 20))
    assert s.steps_per_epoch == 4  # 3 + 3 + 3 + 1 columns
    x0, y0 = s.chunk(0)
    x1, _ = s.chunk(1)
    assert x0.shape == (3, 4) and x0[:, 2].tolist() == [20, 21, 22] and x1[:, 2].tolist() == [23, 24, 25]
    assert (y0 == x0 + 1).all()
    assert s.chunk(3)[0].shape == (1, 4)


def test_shifted_streams_start_each_epoch_elsewhere_and_stay_contiguous():
    ids = np.arange(100)
    plain, shifted = Streams.of(ids, batch=4, seq_len=8), Streams.of(ids, batch=4, seq_len=8, shift=True)
    assert plain.length == 24 and {plain.offset(e) for e in range(9)} == {0}
    assert shifted.length == (99 - 7) // 4  # room for offsets up to T - 1
    offsets = [shifted.offset(e) for e in range(8)]
    assert offsets[0] == 0 and len(set(offsets)) == 7 and all(0 <= o < 8 for o in offsets)
    for e in range(20):  # every epoch reads its streams whole and in order, and never past the text
        chunks = [shifted.chunk(p, e) for p in range(shifted.steps_per_epoch)]
        x, y = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])  # (L, B)
        o = shifted.offset(e)
        assert x[:, 1].tolist() == list(range(o + 23, o + 46)) and (y == x + 1).all() and y.max() <= 99
    assert shifted.chunk(0, 0)[0][:, 0].tolist() == plain.chunk(0)[0][:, 0].tolist()


def test_a_text_barely_long_enough_still_shifts_inside_itself():
    for n in range(5, 40):
        s = Streams.of(np.arange(n), batch=4, seq_len=8, shift=True)
        assert s.length >= 1
        for e in range(10):
            for p in range(s.steps_per_epoch):
                _, y = s.chunk(p, e)
                assert y.max() <= n - 1 and y.shape[0] >= 1


def test_padded_streams_cover_every_prediction_once():
    ids = np.arange(1000) % 7
    x, y, mask = padded_streams(ids, 64)
    assert mask.sum() == 999
    got = sorted(zip(x[mask].tolist(), y[mask].tolist()))
    assert got == sorted(zip(ids[:-1].tolist(), ids[1:].tolist()))


def test_parse_duration():
    assert parse_duration("90") == 90
    assert parse_duration("90s") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    for bad in ["", "soon", "5x", "-3", "0"]:
        with pytest.raises(CharRNNError):
            parse_duration(bad)


def test_auto_eval_every_keeps_validation_cheap():
    assert auto_eval_every(111_539, 64, 64) == 200
    assert auto_eval_every(111_539, 64, 64, models=2) == 400  # the weights and their average
    assert auto_eval_every(50, 64, 64) == 100


def test_training_lowers_validation_loss_and_keeps_the_best(tmp_path):
    text = (CORPORA / "pantry.txt").read_text()[:40000]
    out = str(tmp_path / "m.npz")
    ck = train_small(text, out, steps=80, hidden=32, lr=0.01, eval_every=40, calibrate=False)  # scores as recorded
    vals = [v for _, v, _ in ck.history["val"]]
    assert len(vals) == 2 and vals[-1] < vals[0] < math.log(ck.vocab.size)
    saved = checkpoint.load(out)
    both = vals + [v for _, v, _ in ck.history["avg"]]
    assert saved.best_val == pytest.approx(min(both)) and saved.best_step == ck.best_step
    assert len(ck.history["train"]) == 8


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_resume_is_bit_exact(tmp_path, optimizer):
    text = (CORPORA / "pantry.txt").read_text()[:8000]
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    opts = dict(optimizer=optimizer, batch=4, seq_len=16, eval_every=7, lr=0.01)

    def fresh():
        return new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=16), TrainConfig(**opts))

    one = str(tmp_path / "one.npz")
    train(fresh(), ids, one, Limits(steps=30))
    two = str(tmp_path / "two.npz")
    train(fresh(), ids, two, Limits(steps=12))
    train(checkpoint.load(two), ids, two, Limits(steps=30))
    a, b = checkpoint.load(one), checkpoint.load(two)
    assert (a.step, a.chars_seen, a.pos, a.epoch) == (b.step, b.chars_seen, b.pos, b.epoch)
    for k in a.params:
        assert a.params[k].tobytes() == b.params[k].tobytes(), k
    for k in a.opt_state:
        assert a.opt_state[k].tobytes() == b.opt_state[k].tobytes(), k
    assert a.state.tobytes() == b.state.tobytes()
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def test_resume_is_bit_exact_across_shifted_epochs(tmp_path):
    text = (CORPORA / "pantry.txt").read_text()[:1500]
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)

    def fresh(shift=True):
        tcfg = TrainConfig(batch=4, seq_len=16, eval_every=7, lr=0.01, shift=shift)
        return new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=16), tcfg)

    one, two, plain = (str(tmp_path / f"{name}.npz") for name in ("one", "two", "plain"))
    train(fresh(), ids, one, Limits(steps=70))
    train(fresh(), ids, two, Limits(steps=33))
    train(checkpoint.load(two), ids, two, Limits(steps=70))
    train(fresh(shift=False), ids, plain, Limits(steps=70))
    a, b, c = checkpoint.load(one), checkpoint.load(two), checkpoint.load(plain)
    assert a.epoch >= 2 and a.train_config.shift and (a.step, a.pos, a.epoch) == (b.step, b.pos, b.epoch)
    for k in a.params:
        assert a.params[k].tobytes() == b.params[k].tobytes(), k
    assert a.state.tobytes() == b.state.tobytes()
    assert not np.array_equal(a.params["W_ya"], c.params["W_ya"])  # the shifted epochs read other chunks


def test_epochs_limit_and_epoch_wrap_reset_the_state(tmp_path):
    text = "abcdefghij" * 20
    vocab = Vocab.from_text(text)
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=8), TrainConfig(batch=2, seq_len=10, val_frac=0))
    metrics = train(ck, vocab.encode(text), str(tmp_path / "e.npz"), Limits(epochs=2))
    assert metrics.stopped_by == "epochs"
    assert ck.epoch == 2 and ck.pos == 0 and ck.step == 20
    assert not ck.state.any()


def test_a_diverging_run_stops_with_the_step_and_keeps_a_good_checkpoint(tmp_path):
    text = (CORPORA / "pantry.txt").read_text()[:4000]
    vocab = Vocab.from_text(text)
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=8), TrainConfig(batch=2, seq_len=8, eval_every=5))
    out = str(tmp_path / "nan.npz")
    train(ck, vocab.encode(text), out, Limits(steps=5))
    ck.params["W_ya"][0, 0] = np.nan  # poison: the next step's loss is NaN
    with pytest.raises(CharRNNError, match=r"diverged at step 6.*--lr"):
        train(ck, vocab.encode(text), out, Limits(steps=10))
    saved = checkpoint.load(out)
    assert saved.step == 5 and np.isfinite(saved.params["W_ya"]).all()


def test_a_loss_overflow_from_finite_weights_saves_that_state(tmp_path):
    text = (CORPORA / "pantry.txt").read_text()[:4000]
    vocab = Vocab.from_text(text)
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=8), TrainConfig(batch=2, seq_len=8))
    ck.params["W_ya"][...] = 3e38  # finite, but the logits overflow
    out = str(tmp_path / "inf.npz")
    with pytest.raises(CharRNNError, match=r"diverged at step 1.*saved the last good state \(step 0\)"):
        train(ck, vocab.encode(text), out, Limits(steps=10))
    assert checkpoint.load(out).step == 0


def test_should_stop_ends_training_and_saves(tmp_path):
    text = (CORPORA / "pantry.txt").read_text()[:4000]
    vocab = Vocab.from_text(text)
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=8), TrainConfig(batch=2, seq_len=8))
    calls = []

    def stop():
        calls.append(1)
        return "SIGINT" if len(calls) > 3 else None

    out = str(tmp_path / "s.npz")
    metrics = train(ck, vocab.encode(text), out, Limits(steps=100), should_stop=stop)
    assert metrics.stopped_by == "SIGINT" and metrics.steps == 3
    assert checkpoint.load(out).step == 3
