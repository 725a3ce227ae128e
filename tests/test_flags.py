"""Flags whose effect nothing else checks: each run through the real command, its effect measured."""
import json
import math

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint, network
from charrnn.config import ModelConfig

from conftest import CORPORA

HOME = str(CORPORA / "home.txt")
PANTRY = str(CORPORA / "pantry.txt")


def _one_sgd_step(cli, tmp_path, name, *flags):
    """(initial params, params after one plain SGD step) of a small model trained with ``flags``."""
    out = tmp_path / name
    r = cli("train", HOME, "--steps", 1, "--hidden", 8, "--optimizer", "sgd", "--momentum", 0, "--dropout", 0,
            "--workers", 1, "--seed", 3, "-o", out, "-q", *flags)
    assert r.exit_code == 0, r.stderr
    ck = checkpoint.load(str(out))
    start = network.init_params(ModelConfig(**vars(ck.model_config)), np.random.default_rng(3))
    return start, ck.params


def test_clip_mode_value_bounds_every_element_of_the_step(cli, tmp_path):
    lr, limit = 1.0, 1e-3  # steps of 1e-3, far above float32 rounding of the weights
    start, after = _one_sgd_step(cli, tmp_path, "v.npz", "--lr", lr, "--lookup-lr", 1, "--clip", limit,
                                 "--clip-mode", "value")
    moves = np.concatenate([np.abs(after[k] - start[k]).ravel() for k in start])
    assert moves.max() == pytest.approx(lr * limit, rel=1e-3)  # some gradient entries were clipped ...
    assert (moves <= lr * limit * (1 + 1e-3)).all()  # ... and none moved further
    _, by_norm = _one_sgd_step(cli, tmp_path, "n.npz", "--lr", lr, "--lookup-lr", 1, "--clip", limit)
    assert not np.allclose(by_norm["b_y"], after["b_y"])  # norm clipping steps differently


def test_lookup_lr_scales_only_the_lookup_tables_step(cli, tmp_path):
    start, one = _one_sgd_step(cli, tmp_path, "a.npz", "--lr", 0.1, "--lookup-lr", 1)
    _, ten = _one_sgd_step(cli, tmp_path, "b.npz", "--lr", 0.1, "--lookup-lr", 10)
    np.testing.assert_allclose(ten["W_ax.0"] - start["W_ax.0"], 10 * (one["W_ax.0"] - start["W_ax.0"]), rtol=1e-3,
                               atol=2e-6)  # float32 weights near 1 round to ~1e-7
    for name in ("W_aa.0", "b_a.0", "W_ya", "b_y"):
        np.testing.assert_allclose(ten[name], one[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_epochs_from_the_command_line_stop_after_that_many_passes(cli, tmp_path):
    r = cli("train", HOME, "--epochs", 2, "--hidden", 8, "--batch", 4, "--seq-len", 8, "--val-frac", 0,
            "-o", tmp_path / "e.npz", "-q", "--json")
    assert r.exit_code == 0, r.stderr
    metrics = json.loads(r.stdout)
    n = len(open(HOME).read())
    steps_per_epoch = math.ceil(((n - 1) // 4) / 8)
    assert metrics["stopped_by"] == "epochs" and metrics["steps"] == 2 * steps_per_epoch
    assert charrnn.load(tmp_path / "e.npz").info.epoch == 2


def test_shift_moves_each_epochs_streams_and_keeps_room_for_it(cli, tmp_path):
    r = cli("train", HOME, "--epochs", 3, "--hidden", 8, "--batch", 4, "--seq-len", 8, "--val-frac", 0, "--shift",
            "-o", tmp_path / "s.npz", "-q", "--json")
    assert r.exit_code == 0, r.stderr
    n = len(open(HOME).read())
    assert json.loads(r.stdout)["steps"] == 3 * math.ceil(((n - 1 - 7) // 4) / 8)  # streams 7 shorter in all
    assert checkpoint.load(str(tmp_path / "s.npz")).train_config.shift


def _lrs(cli, tmp_path, *flags):
    log = tmp_path / "lr.jsonl"
    r = cli("train", HOME, "--hidden", 8, "--lr", 0.01, "--log", log, "--log-every", 1, "-o", tmp_path / "m.npz",
            "--force", "-q", *flags)
    assert r.exit_code == 0, r.stderr
    return [json.loads(line)["lr"] for line in log.read_text().splitlines()]


def test_lr_decay_halves_the_rate_every_n_steps(cli, tmp_path):
    lrs = _lrs(cli, tmp_path, "--steps", 7, "--lr-decay", 0.5, "--lr-decay-every", 2)
    assert lrs == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025, 0.00125, 0.00125])


def test_cosine_anneals_from_lr_to_a_tenth_over_the_steps(cli, tmp_path):
    lrs = _lrs(cli, tmp_path, "--steps", 10, "--cosine")
    expected = [0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 10))) for s in range(1, 11)]
    assert lrs == pytest.approx(expected) and lrs[-1] == pytest.approx(0.001)


def test_save_every_writes_the_checkpoint_at_those_steps(tmp_path):
    out = tmp_path / "s.npz"
    on_disk = []

    def look(event):  # after each step, the step of the file on disk
        on_disk.append(checkpoint.load(str(out)).step if out.exists() else None)

    charrnn.train(HOME, out, steps=8, hidden=8, save_every=3, eval_every=1000, workers=1, on_step=look)
    assert on_disk == [None, None, 3, 3, 3, 6, 6, 6]
    assert checkpoint.load(str(out)).step == 8  # and the end of the run is saved


def test_sample_greedy_is_temperature_zero_whatever_the_seed(cli, home_model):
    outs = {cli("sample", "-m", home_model, "--prime", "HOM", "-n", 12, "--greedy", "--seed", s).stdout
            for s in (1, 2, 3)}
    assert outs == {cli("sample", "-m", home_model, "--prime", "HOM", "-n", 12, "--temp", 0).stdout}
    assert outs.pop().startswith("HOME\nHOME")


@pytest.mark.parametrize("width,height", [(20, 5), (70, 9)])
def test_plot_width_and_height_set_the_grid(cli, tmp_path, width, height):
    log = tmp_path / "l.jsonl"
    cli("train", HOME, "--hidden", 8, "--steps", 30, "--eval-every", 10, "--log", log, "-o", tmp_path / "m.npz",
        "-q")
    r = cli("plot", log, "--width", width, "--height", height)
    assert r.exit_code == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if "│" in line]
    assert len(rows) == height
    assert {len(line.split("│", 1)[1]) for line in rows} == {width}
    assert cli("plot", log, "--width", 5).exit_code == 2
