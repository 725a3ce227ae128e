"""The saved file is the model to use: best weights served, averaged weights, early stopping, exact resume."""
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.checkpoint import new_checkpoint
from charrnn.gradients import InProcess
from charrnn.limits import Limits
from charrnn.score import total_nll
from charrnn.trainer import train_checkpoint
from charrnn.validation import TEMP_RANGE, Validation, clearly_better, temps_around
from charrnn.vocab import Vocab

from conftest import CORPORA, ROOT

PANTRY = str(CORPORA / "pantry.txt")
DATA = ROOT / "tests" / "data"


def assert_same_run(a: checkpoint.Checkpoint, b: checkpoint.Checkpoint) -> None:
    """Two checkpoints hold the same run, byte for byte: everything a resume or a user reads."""
    assert (a.step, a.chars_seen, a.pos, a.epoch) == (b.step, b.chars_seen, b.pos, b.epoch)
    assert (a.best_step, a.served_kind, a.served_step, a.average_steps) == \
           (b.best_step, b.served_kind, b.served_step, b.average_steps)
    for name in ("params", "opt_state", "served", "average"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        for k in x or {}:
            assert x[k].tobytes() == y[k].tobytes(), (name, k)
    assert a.state.tobytes() == b.state.tobytes()
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def _overfitting_run(cli, tmp_path, *flags):
    """Random letters learned by heart at a high learning rate: validation is best early and worse by the end."""
    rng = random.Random(0)
    (tmp_path / "train.txt").write_text("".join(rng.choice("abcdefgh ") for _ in range(4000)))
    (tmp_path / "val.txt").write_text("".join(rng.choice("abcdefgh ") for _ in range(400)))  # < 512: one stream
    out = tmp_path / "m.npz"
    r = cli("train", tmp_path / "train.txt", "--val-file", tmp_path / "val.txt", "--steps", 300, "--eval-every", 20,
            "--hidden", 96, "--lr", 0.01, "--constant-lr", "--dropout", 0, "--batch", 8, "--seq-len", 32,
            "--workers", 1, "-o", out, "--json", *flags)
    assert r.exit_code == 0, r.stderr
    return out, json.loads(r.stdout), r.stderr


def test_a_run_that_gets_worse_at_the_end_serves_its_earlier_best_weights(cli, tmp_path):
    out, metrics, stderr = _overfitting_run(cli, tmp_path, "--average", 0, "--no-calibrate")
    saved = checkpoint.load(str(out))
    vals = dict((int(s), v) for s, v, _ in saved.history["val"])
    assert vals[300] > min(vals.values()) + 0.05  # it did get worse
    best = min(vals, key=vals.get)
    assert metrics["best_step"] == best < 300 and metrics["served"] == "weights" and metrics["served_step"] == best
    info = json.loads(cli("info", out, "--json").stdout)
    assert (info["served"], info["served_step"], info["resume_step"], info["steps"]) == ("weights", best, 300, 300)
    assert f"serves the weights of step {best}, and --resume continues from step 300" in stderr
    score = json.loads(cli("eval", "-m", out, tmp_path / "val.txt", "--json").stdout)
    assert score["nats_per_char"] == pytest.approx(vals[best], rel=1e-6)  # eval reads the served weights
    last = json.loads(cli("eval", "-m", _serve_last(cli, tmp_path, out), tmp_path / "val.txt", "--json").stdout)
    assert last["nats_per_char"] == pytest.approx(vals[300], rel=1e-6)


def test_a_model_surer_than_it_should_be_is_served_calibrated_to_its_validation_text(cli, tmp_path):
    out, metrics, stderr = _overfitting_run(cli, tmp_path, "--average", 0)
    saved = checkpoint.load(str(out))
    temp = saved.served_temp
    assert temp > 1.05 and metrics["served_temp"] == temp  # learned by heart: too sure of itself on new letters
    vals = dict((int(s), v) for s, v, _ in saved.history["val"])
    assert metrics["best_val_nats"] < vals[metrics["best_step"]] - 0.003  # calibrated, the same weights score better
    score = json.loads(cli("eval", "-m", out, tmp_path / "val.txt", "--json").stdout)
    assert score["nats_per_char"] == pytest.approx(metrics["best_val_nats"], rel=1e-5)  # what the file serves
    undone = {**saved.use_params, "W_ya": saved.use_params["W_ya"] * temp, "b_y": saved.use_params["b_y"] * temp}
    val_ids = saved.vocab.encode((tmp_path / "val.txt").read_text())
    nats, count = total_nll(undone, saved.model_config, val_ids, warm=128)
    assert nats / count == pytest.approx(vals[metrics["best_step"]], rel=1e-5)  # the best step's weights, divided
    info = json.loads(cli("info", out, "--json").stdout)
    assert info["served_temp"] == temp
    assert f"calibrated to temperature {temp:.2f}, and --resume continues from step 300" in stderr


def _serve_last(cli, tmp_path, out):
    """The same run to the same step, served as the last step's weights (--serve last)."""
    again = tmp_path / "last.npz"
    r = cli("train", tmp_path / "train.txt", "--val-file", tmp_path / "val.txt", "--steps", 300, "--eval-every", 20,
            "--hidden", 96, "--lr", 0.01, "--constant-lr", "--dropout", 0, "--batch", 8, "--seq-len", 32,
            "--workers", 1, "-o", again, "-q", "--average", 0, "--serve", "last", "--no-calibrate")
    assert r.exit_code == 0, r.stderr
    assert checkpoint.load(str(again)).served is None and charrnn.load(again).info.served == "last"
    return again


def test_the_served_weights_feed_init_from_and_the_library(cli, tmp_path):
    out, metrics, _ = _overfitting_run(cli, tmp_path, "--average", 0)
    served = checkpoint.load(str(out)).served
    model = charrnn.load(out)
    assert model.info.served_step == metrics["best_step"]
    child = tmp_path / "child.npz"
    r = cli("train", tmp_path / "train.txt", "--init-from", out, "--steps", 1, "--lr", 1e-12, "--workers", 1,
            "--average", 0, "-o", child, "-q", "--serve", "last")
    assert r.exit_code == 0, r.stderr
    got = checkpoint.load(str(child)).params
    for k, v in served.items():  # one step at a negligible rate: still the parent's served weights
        np.testing.assert_allclose(got[k], v, atol=1e-6)


def _fresh(text, **opts):
    vocab = Vocab.from_text(text)
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=48),
                        TrainConfig(batch=4, seq_len=16, eval_every=5, lr=0.02, **opts))
    if ck.train_config.average:
        ck.average, ck.average_steps = {k: v.copy() for k, v in ck.params.items()}, 0
    return ck, vocab.encode(text)


def test_resume_is_bit_exact_after_a_finished_run_an_early_stop_and_ctrl_c(tmp_path):
    rng = random.Random(1)
    text = "".join(rng.choice("abcdefgh ") for _ in range(3000))  # learned by heart: validation turns up
    one = str(tmp_path / "one.npz")
    ck, ids = _fresh(text)
    train_checkpoint(ck, ids, one, Limits(steps=40), workers=1)
    for how in ("finished", "patience", "SIGINT"):
        two = str(tmp_path / f"{how}.npz")
        ck, ids = _fresh(text, patience="1" if how == "patience" else "", patience_anneal=0)  # stops at once
        calls = []

        def stop():
            calls.append(1)
            return "SIGINT" if how == "SIGINT" and len(calls) > 17 else None

        metrics = train_checkpoint(ck, ids, two, Limits(steps=17 if how == "finished" else 40), should_stop=stop,
                                   workers=1)
        assert metrics.stopped_by == {"finished": "steps", "patience": "patience", "SIGINT": "SIGINT"}[how]
        assert metrics.steps < 40
        again = checkpoint.load(two)
        again.train_config.patience = ""
        train_checkpoint(again, ids, two, Limits(steps=40), workers=1)
        assert_same_run(checkpoint.load(one), checkpoint.load(two))


def test_patience_stops_the_run_says_so_and_exits_0(cli, tmp_path):
    out, metrics, stderr = _overfitting_run(cli, tmp_path, "--average", 0, "--patience", 3, "--patience-anneal", 0)
    assert metrics["stopped_by"] == "patience" and metrics["steps"] < 300
    lines = [line for line in stderr.splitlines() if line.startswith("stopping early")]
    assert len(lines) == 1 and "3 validation passes (--patience 3)" in lines[0]
    assert metrics["steps"] == metrics["best_step"] + 3 * 20
    result = charrnn.train(tmp_path / "train.txt", val_file=str(tmp_path / "val.txt"), steps=300, eval_every=20,
                           hidden=96, lr=0.01, constant_lr=True, dropout=0, batch=8, seq_len=32, workers=1,
                           average=0, patience="3", patience_anneal=0)
    assert result.stopped_by == "patience" and result.steps == metrics["steps"]
    timed = charrnn.train(tmp_path / "train.txt", val_file=str(tmp_path / "val.txt"), steps=300, eval_every=20,
                          hidden=96, lr=0.01, constant_lr=True, dropout=0, batch=8, seq_len=32, workers=1,
                          average=0, patience="0.001s")  # a patience too short to anneal over: it stops at once
    assert timed.stopped_by == "patience" and timed.steps == timed.best_step + 20


def test_out_of_patience_a_run_anneals_to_the_floor_over_the_patience_then_stops(cli, tmp_path):
    out, metrics, stderr = _overfitting_run(cli, tmp_path, "--average", 0, "--patience", 3, "--log", tmp_path / "l",
                                           "--log-every", 1)
    began = re.search(r"validation has not improved since step (\d+) \(--patience 3\): annealing the learning rate "
                      r"over 60 more steps \(--patience-anneal 1\), then stopping", stderr)
    assert began, stderr
    trigger = int(began.group(1)) + 3 * 20  # patience ran out at this step
    assert metrics["stopped_by"] == "patience" and metrics["steps"] == trigger + 60
    assert "stopping early after the final anneal: the best" in stderr
    rates = {e["step"]: e["lr"] for e in map(json.loads, (tmp_path / "l").read_text().splitlines()) if "lr" in e}
    assert rates[trigger] == pytest.approx(0.01) and metrics["lr"] == pytest.approx(0.001)  # --lr to lr * 0.1
    tail = [rates[s] for s in range(trigger + 1, trigger + 61)]
    assert all(a > b for a, b in zip(tail, tail[1:]))  # falling all the way
    assert checkpoint.load(str(out)).history["val"][-1][0] == trigger + 60  # the annealed weights were scored
    near = charrnn.train(tmp_path / "train.txt", val_file=str(tmp_path / "val.txt"), steps=trigger + 10,
                         eval_every=20, hidden=96, lr=0.01, constant_lr=True, dropout=0, batch=8, seq_len=32,
                         workers=1, average=0, patience="3")  # the step limit comes first: a shorter anneal
    assert near.stopped_by == "patience" and near.steps == trigger + 10 and near.lr == pytest.approx(0.001)


@pytest.mark.parametrize("bad", ["0", "-2", "soon", "5x"])
def test_a_bad_patience_is_a_usage_error(cli, tmp_path, bad):
    r = cli("train", PANTRY, "--patience", bad, "-o", tmp_path / "m.npz")
    assert r.exit_code == 2 and "--patience must be a number of validation passes" in r.stderr


def test_the_average_is_the_hand_computed_polynomial_average_of_three_steps(tmp_path):
    text = (CORPORA / "pantry.txt").read_text()[:8000]
    ck, ids = _fresh(text, average=0.25)  # eta = 1/0.25 - 1 = 3
    seen = []

    class Snapshots(charrnn.trainer.Reporter):
        def step(self, ck, event):
            seen.append({k: v.astype(np.float64) for k, v in ck.params.items()})

    train_checkpoint(ck, ids, None, Limits(steps=3), reporter=Snapshots(), workers=1)
    eta = 3.0
    avg = seen[0]  # the first step copies the weights
    for t, p in enumerate(seen[1:], start=2):
        avg = {k: a + (eta + 1) / (t + eta) * (p[k] - a) for k, a in avg.items()}
    assert ck.average_steps == 3
    for k, v in avg.items():
        np.testing.assert_allclose(ck.average[k], v, rtol=1e-6, atol=1e-7, err_msg=k)
    assert not np.allclose(ck.average["W_aa.0"], ck.params["W_aa.0"])  # an average, not the last weights


# The fixtures' float32 arithmetic is OpenBLAS's with its SkylakeX kernels (tests/data/README.md); other kernels
# round differently. Where the CPU has AVX-512 that kernel is pinned, so the comparison is byte for byte.
FIXTURE_KERNEL = {"OPENBLAS_CORETYPE": "SkylakeX"} if "avx512f" in Path("/proc/cpuinfo").read_text() else {}
FIXTURE_RUN = ("import charrnn; charrnn.train('{corpus}', '{out}', steps={steps}, hidden=16, cell='gru', dropout=0.2, "
               "batch=8, seq_len=16, eval_every=10, workers=1, seed=7, force=True)")


def _charrnn_with_fixture_kernel(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **FIXTURE_KERNEL}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_checkpoint_from_before_serving_loads_and_resumes_bit_exactly(cli, tmp_path):
    """v1_step20 and v1_step30 were written by charrnn before this format (see tests/data/README.md)."""
    old = tmp_path / "old.npz"
    shutil.copyfile(DATA / "v1_step20.npz", old)
    info = json.loads(cli("info", old, "--json").stdout)
    assert info["format_version"] == 1 and (info["served"], info["served_step"], info["resume_step"]) == \
           ("last", 20, 20)
    assert len(charrnn.load(old).sample(20, seed=1)) == 20
    r = _charrnn_with_fixture_kernel("-m", "charrnn", "train", PANTRY, "-o", str(old), "--resume", "--steps", "30",
                                     "--workers", "1", "-q")
    assert r.returncode == 0, r.stderr
    resumed, reference = checkpoint.load(str(old)), checkpoint.load(str(DATA / "v1_step30.npz"))
    assert (resumed.step, resumed.pos, resumed.chars_seen) == (reference.step, reference.pos, reference.chars_seen)
    # Byte for byte where this machine's arithmetic is the fixtures' (a fresh run reproduces v1_step20 exactly);
    # on a CPU whose BLAS rounds otherwise, as close as float32 rounding of 10 steps allows.
    fresh = tmp_path / "fresh20.npz"
    made = _charrnn_with_fixture_kernel("-c", FIXTURE_RUN.format(corpus=PANTRY, out=fresh, steps=20))
    assert made.returncode == 0, made.stderr
    first = checkpoint.load(str(DATA / "v1_step20.npz"))
    same_arithmetic = all(checkpoint.load(str(fresh)).params[k].tobytes() == v.tobytes()
                          for k, v in first.params.items())
    for k, v in reference.params.items():
        if same_arithmetic:
            assert resumed.params[k].tobytes() == v.tobytes(), k
        else:
            np.testing.assert_allclose(resumed.params[k], v, rtol=1e-4, atol=1e-5, err_msg=k)
    assert resumed.average_steps == 10  # averaging starts at the resume


class _Scores(InProcess):
    """Scores each validation stream as told: ``by_weights[id(weights)]`` (b,) nats, whatever the text."""

    def __init__(self, by_weights: dict):
        self.by_weights = by_weights

    def rows_nll(self, params, cfg, x, y, mask, seq_len=128, key=None, temps=()):
        rows = self.by_weights[id(params)]
        assert len(rows) == len(x) and not temps  # one score per stream, at temperature 1
        return rows


PER_STREAM = 256  # validation's shortest streams (charrnn.data.MIN_STREAM)


def _validated(weights_rows, average_rows):
    """The served kind and score after one validation pass whose streams score as given."""
    text = (CORPORA / "pantry.txt").read_text()[:64 * PER_STREAM + 1]  # 64 streams of PER_STREAM predictions
    ck, ids = _fresh(text, average=0.2, calibrate=False)
    ck.average_steps = 5
    scores = _Scores({id(ck.params): np.asarray(weights_rows, float), id(ck.average): np.asarray(average_rows, float)})
    val = Validation(ck, ids, scores, charrnn.trainer.Reporter())
    val.run(1.0, "")
    return ck.served_kind, ck.best_val


def test_the_average_is_served_unless_the_weights_beat_it_clearly_over_the_validation_streams():
    average = np.full(64, PER_STREAM * 1.30)  # 1.30 nats/char on every stream
    lucky = average.copy()
    lucky[0] -= PER_STREAM * 0.64  # one stream far better: 0.01 nats/char better on the whole, but only there
    assert _validated(lucky, average) == ("average", pytest.approx(1.30))
    steady = average - PER_STREAM * 0.01  # the same 0.01 better, on every stream alike
    assert _validated(steady + np.linspace(-0.2, 0.2, 64), average) == ("weights", pytest.approx(1.29))
    assert _validated(average + PER_STREAM * 0.01, average) == ("average", pytest.approx(1.30))  # the average better


def test_clearly_better_weighs_the_gain_against_how_much_the_streams_disagree():
    counts = np.full(10, 100)
    base = np.full(10, 130.0)
    assert clearly_better(base - 1.0, base, counts)  # 0.01 better on every stream: no spread at all
    assert not clearly_better(base, base, counts)  # a tie is not better
    noisy = base - 1.0 + np.array([30, -30] * 5)  # the same mean gain, streams that disagree by 0.3 nats/char
    assert not clearly_better(noisy, base, counts)
    assert clearly_better(noisy, base, counts, z=0.05)  # with a far lower bar it counts (se 0.1 nats/char)
    assert clearly_better(base[:1] - 0.1, base[:1], counts[:1])  # one stream has no spread to judge by: any gain
    assert not clearly_better(base[:1], base[:1], counts[:1])


def test_a_pass_tries_temperatures_around_the_served_one_within_the_range_and_always_1():
    assert temps_around(1.0) == pytest.approx([1.03**k for k in range(-4, 5)])  # 0.89 to 1.13, 3% apart
    around = temps_around(1.3)
    assert len(around) == 10 and 1.0 in around and around[1] == pytest.approx(1.3 / 1.03**4)
    assert around[-1] == pytest.approx(1.3 * 1.03**4)
    top = temps_around(TEMP_RANGE[1])  # at the top of the range the grid stops there
    assert top[-1] == TEMP_RANGE[1] and len(top) == 6 and top[0] == 1.0


def test_the_temperatures_follow_the_served_one_from_pass_to_pass(cli, tmp_path):
    """A model far surer than it should be moves its served temperature up pass by pass, past the first grid."""
    out, metrics, stderr = _overfitting_run(cli, tmp_path, "--average", 0)
    temps = [float(t) for t in re.findall(r"at temperature (\d\.\d\d)", stderr)]
    assert len(temps) == 15 and temps[0] <= 1.13  # the first pass tries 0.89-1.13
    assert max(temps) > 1.13 and metrics["served_temp"] > 1.13
