"""Issue 7: live samples, the summary, the metrics log, plots and schedules."""
import csv
import json
import signal

import pytest

from charrnn.checkpoint import load
from charrnn.config import TrainConfig
from charrnn.metrics_log import FIELDS
from charrnn.schedule import lr_at

from conftest import CORPORA, start_training

HOME = str(CORPORA / "home.txt")


def test_live_samples_go_to_stderr_never_stdout(cli, tmp_path):
    r = cli("train", HOME, "--hidden", 16, "--steps", 20, "--sample-every", 10, "--sample-length", 15,
            "-o", tmp_path / "m.npz", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("--- sample at step") == 2 and "--- sample at step 20" in r.stderr
    json.loads(r.stdout)  # stdout is still only the JSON metrics


def test_no_live_samples_by_default_off_a_terminal(cli, tmp_path):
    r = cli("train", HOME, "--hidden", 8, "--steps", 10, "--eval-every", 5, "-o", tmp_path / "m.npz")
    assert "sample at step" not in r.stderr


@pytest.mark.parametrize("name", ["log.jsonl", "log.csv"])
def test_the_log_has_one_record_per_log_every_steps(cli, tmp_path, name):
    log = tmp_path / name
    r = cli("train", HOME, "--hidden", 8, "--steps", 30, "--eval-every", 10, "--log", log, "--log-every", 5,
            "-o", tmp_path / "m.npz", "-q")
    assert r.exit_code == 0, r.stderr
    if name.endswith(".csv"):
        rows = list(csv.DictReader(log.open()))
        assert tuple(rows[0]) == FIELDS
    else:
        rows = [json.loads(l) for l in log.read_text().splitlines()]
        assert all(tuple(row) == FIELDS for row in rows)
    assert [int(float(r["step"])) for r in rows] == [5, 10, 15, 20, 25, 30]
    with_val = [r for r in rows if r["val_nats"] not in (None, "")]
    assert [int(float(r["step"])) for r in with_val] == [10, 20, 30]
    assert all(float(r["grad_norm"]) > 0 and float(r["lr"]) > 0 and float(r["chars_per_sec"]) > 0 for r in rows)


def test_plot_draws_the_log_and_info_curve_the_history(cli, tmp_path):
    log = tmp_path / "l.jsonl"
    cli("train", HOME, "--hidden", 8, "--steps", 40, "--eval-every", 10, "--log", log, "-o", tmp_path / "m.npz", "-q")
    p = cli("plot", log)
    assert p.exit_code == 0 and "• train" in p.stdout and "x val" in p.stdout and "step" in p.stdout
    c = cli("info", tmp_path / "m.npz", "--curve")
    assert c.exit_code == 0 and "• train" in c.stdout and "x val" in c.stdout
    assert cli("plot", tmp_path / "none.jsonl").exit_code == 1


def test_summary_appears_at_the_end(cli, tmp_path):
    r = cli("train", HOME, "--hidden", 8, "--steps", 10, "-o", tmp_path / "m.npz")
    assert "training summary" in r.stderr and "characters/s" in r.stderr and "loss, nats/char" in r.stderr


def test_summary_appears_after_ctrl_c(tmp_path):
    proc = start_training([CORPORA / "pantry.txt", "--time", "600", "--hidden", "32", "-o", "m.npz"], tmp_path,
                          tmp_path / "log.jsonl")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "training summary" in err.decode() and "stopped by SIGINT" in err.decode()


def test_learning_rate_schedules():
    base = TrainConfig(lr=1.0)
    assert lr_at(50, base) == 1.0
    warm = TrainConfig(lr=1.0, warmup=10)
    assert lr_at(1, warm) == pytest.approx(0.1) and lr_at(10, warm) == 1.0 and lr_at(11, warm) == 1.0
    step = TrainConfig(lr=1.0, lr_decay=0.5, lr_decay_every=100)
    assert [lr_at(s, step) for s in (99, 100, 250)] == [1.0, 0.5, 0.25]
    cos = TrainConfig(lr=1.0, cosine_steps=100, min_lr_frac=0.1)
    assert lr_at(0, cos) == pytest.approx(1.0) and lr_at(50, cos) == pytest.approx(0.55) and lr_at(100, cos) == pytest.approx(0.1)


def test_the_log_shows_the_scheduled_learning_rate(cli, tmp_path):
    log = tmp_path / "l.jsonl"
    cli("train", HOME, "--hidden", 8, "--steps", 20, "--warmup", 10, "--lr", "0.01", "--log", log, "--log-every", 5,
        "-o", tmp_path / "m.npz", "-q")
    lrs = [json.loads(l)["lr"] for l in log.read_text().splitlines()]
    assert lrs == pytest.approx([0.005, 0.01, 0.01, 0.01])


def test_cosine_needs_steps(cli, tmp_path):
    r = cli("train", HOME, "--cosine", "--time", "5s", "-o", tmp_path / "m.npz")
    assert r.exit_code == 2 and "--cosine" in r.stderr


def test_a_time_budget_schedule_follows_the_seconds_of_the_run():
    timed = TrainConfig(lr=1.0, cosine_seconds=300.0, min_lr_frac=0.1)
    assert lr_at(7, timed, 0.0) == pytest.approx(1.0)
    assert lr_at(7, timed, 150.0) == pytest.approx(0.55)
    assert lr_at(7, timed, 300.0) == pytest.approx(0.1) and lr_at(7, timed, 900.0) == pytest.approx(0.1)
    assert lr_at(1, TrainConfig(lr=1.0, warmup=10, cosine_seconds=300.0), 200.0) == pytest.approx(0.1)  # warm-up first


def _trained_lr(cli, tmp_path, *flags):
    out = tmp_path / "m.npz"
    r = cli("train", HOME, "--hidden", 8, "-o", out, "--force", "--json", "-q", *flags)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["lr"], load(out).train_config


def test_time_runs_anneal_the_learning_rate_over_the_budget_by_default(cli, tmp_path):
    lr, tcfg = _trained_lr(cli, tmp_path, "--time", "2", "--lr", "0.01")
    assert tcfg.cosine_seconds == 2.0
    assert lr < 0.01 * 0.2  # the last steps run near the floor, a tenth of --lr


@pytest.mark.parametrize("flags", [("--time", "1", "--constant-lr"), ("--steps", "30"),
                                   ("--time", "1", "--lr-decay", "0.5", "--lr-decay-every", "1000000")])
def test_the_lr_stays_flat_when_asked_or_without_a_time_budget(cli, tmp_path, flags):
    lr, tcfg = _trained_lr(cli, tmp_path, "--lr", "0.01", *flags)
    assert tcfg.cosine_seconds == 0.0 and lr == pytest.approx(0.01)


def test_resuming_with_steps_drops_the_earlier_runs_time_schedule(cli, tmp_path):
    _trained_lr(cli, tmp_path, "--time", "1", "--lr", "0.01")
    out = tmp_path / "m.npz"
    r = cli("train", HOME, "--hidden", 8, "-o", out, "--resume", "--steps", load(out).step + 5, "--json", "-q")
    assert r.exit_code == 0, r.stderr
    assert load(out).train_config.cosine_seconds == 0.0 and json.loads(r.stdout)["lr"] == pytest.approx(0.01)
