"""Data-parallel workers: the same model as one process, resumable, and no process or memory left behind."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint, network, workers
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError
from charrnn.shards import Layout, contribute, shares, summed
from charrnn.workers import WorkerError, WorkerPool, default_workers

from conftest import CORPORA, one_line_error, run_cmd

PANTRY = CORPORA / "pantry.txt"


def _shm_names(pid=None):
    prefix = "charrnn_" if pid is None else f"charrnn_{pid}_"
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix)) if os.path.isdir("/dev/shm") else []


def _children(pid):
    """pids whose parent is ``pid`` (from /proc)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                kids.append(int(entry))
    return kids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _all_gone(pids, seconds=2.0):
    """Whether every one of ``pids`` has exited (or is a zombie) within ``seconds``."""
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def _train(tmp_path, name, n, steps, **opts):
    opts = {"hidden": 24, "batch": 16, "seq_len": 16, "seed": 5, "cell": "gru", "dropout": 0.2, **opts}
    return charrnn.train(str(PANTRY), str(tmp_path / name), steps=steps, workers=n, force=True, **opts)


def test_shares_cover_the_batch_in_near_equal_parts():
    for batch in (1, 7, 64):
        for n in range(1, batch + 1):
            parts = shares(batch, n)
            sizes = [b - a for a, b in parts]
            assert parts[0][0] == 0 and parts[-1][1] == batch and max(sizes) - min(sizes) <= 1
            assert all(a == b for (_, a), (b, _) in zip(parts, parts[1:]))
    with pytest.raises(ValueError):
        shares(4, 5)


@pytest.mark.parametrize("drop", [0.3, network.Dropout(0.3, 0.4)], ids=["outputs", "outputs+weights"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mgru"])
def test_summed_contributions_are_the_whole_batch(cell, drop):
    """The seam: any split of the streams sums to one process's loss, gradients and state (float64)."""
    cfg = ModelConfig(vocab_size=7, hidden=5, cell=cell, layers=2, dtype="float64")
    rng = np.random.default_rng(1)
    params = network.init_params(cfg, rng)
    x, y = rng.integers(0, 7, (6, 5)), rng.integers(0, 7, (6, 5))
    state0 = rng.normal(size=network.state_shape(cfg, 5))
    whole = network.loss_and_grads(params, cfg, x, y, state0, drop, np.random.default_rng(9))
    layout = Layout.contribution(cfg, 5)
    total = np.zeros(layout.size)
    draws = np.random.default_rng(9)
    for start, stop in shares(5, 3):
        rng_copy = np.random.default_rng(0)
        rng_copy.bit_generator.state = draws.bit_generator.state
        flat = np.zeros(layout.size)
        contribute(params, cfg, x[:, start:stop], y[:, start:stop], state0[:, start:stop], (start, stop, 5),
                   layout.views(flat), drop, rng_copy)
        total += flat
    loss, grads, state = summed(layout.views(total), params)
    assert loss == pytest.approx(whole[0], rel=1e-12)
    for k in params:
        np.testing.assert_allclose(grads[k], whole[1][k], rtol=1e-10, atol=1e-14, err_msg=k)
    np.testing.assert_allclose(state, whole[2], rtol=1e-12)


def test_default_workers_follow_the_cores_the_streams_and_the_environment(monkeypatch):
    monkeypatch.delenv("CHARRNN_WORKERS", raising=False)
    monkeypatch.setattr(workers, "available_cores", lambda: 8)
    assert [default_workers(b) for b in (64, 32, 16, 8, 4)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv("CHARRNN_WORKERS", "3")
    assert default_workers(64) == 3 and default_workers(2) == 2
    monkeypatch.setenv("CHARRNN_WORKERS", "two")
    with pytest.raises(CharRNNError, match="CHARRNN_WORKERS must be a whole number"):
        default_workers(64)


@pytest.mark.parametrize("weight_drop", [0.0, 0.3])
def test_two_workers_train_the_same_model_as_one(tmp_path, weight_drop):
    """20 steps with dropout: --workers 2 and --workers 1 agree to float rounding, validation too."""
    one = _train(tmp_path, "a.npz", 1, 20, weight_drop=weight_drop)
    two = _train(tmp_path, "b.npz", 2, 20, weight_drop=weight_drop)
    assert (one.workers, two.workers) == (1, 2)
    a, b = checkpoint.load(str(tmp_path / "a.npz")), checkpoint.load(str(tmp_path / "b.npz"))
    for k in a.params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=1e-4, atol=2e-6, err_msg=k)
        assert not np.array_equal(a.params[k], network.init_params(a.model_config, np.random.default_rng(5))[k])
    np.testing.assert_allclose(b.state, a.state, atol=1e-5)
    assert b.rng.bit_generator.state == a.rng.bit_generator.state  # the same dropout draws were made
    assert two.val_nats == pytest.approx(one.val_nats, abs=1e-5)
    assert two.train_nats == pytest.approx(one.train_nats, abs=1e-5)


def test_resume_with_two_workers_is_bit_exact(tmp_path):
    _train(tmp_path, "straight.npz", 2, 16, eval_every=5)
    _train(tmp_path, "split.npz", 2, 9, eval_every=5)
    charrnn.train(str(PANTRY), str(tmp_path / "split.npz"), steps=16, workers=2, resume=True)
    a, b = checkpoint.load(str(tmp_path / "straight.npz")), checkpoint.load(str(tmp_path / "split.npz"))
    for k in a.params:
        assert a.params[k].tobytes() == b.params[k].tobytes(), k
    for k in a.opt_state:
        assert a.opt_state[k].tobytes() == b.opt_state[k].tobytes(), k


def test_a_checkpoint_from_two_workers_resumes_with_one(tmp_path):
    _train(tmp_path, "straight.npz", 2, 16)
    _train(tmp_path, "moved.npz", 2, 8)
    result = charrnn.train(str(PANTRY), str(tmp_path / "moved.npz"), steps=16, workers=1, resume=True)
    assert result.steps == 16 and result.workers == 1
    a, b = checkpoint.load(str(tmp_path / "straight.npz")), checkpoint.load(str(tmp_path / "moved.npz"))
    for k in a.params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=1e-4, atol=2e-6, err_msg=k)


def test_more_workers_than_streams_is_one_clear_line(tmp_path):
    r = run_cmd(["train", PANTRY, "--batch", "4", "--workers", "5", "--steps", "2", "-q", "-o", tmp_path / "m.npz"])
    assert r.returncode == 1
    assert "--workers 5 is more than the 4 streams" in one_line_error(r.stderr.decode())
    assert not (tmp_path / "m.npz").exists()


def test_a_worker_that_raises_stops_training_with_one_line_and_keeps_the_work(tmp_path):
    out = tmp_path / "m.npz"
    r = run_cmd(["train", PANTRY, "--hidden", "24", "--workers", "2", "--steps", "50", "-q", "-o", out],
                env={"CHARRNN_TEST_WORKER_FAULT": "2:4"})
    assert r.returncode == 1
    line = one_line_error(r.stderr.decode())
    assert "worker 2 of 2" in line and "RuntimeError: fault injected" in line and "step 3" in line
    assert checkpoint.load(str(out)).step == 3  # the three good steps were saved
    assert [n for n in _shm_names() if not _alive(int(n.split("_")[1]))] == []  # no segment outlived its owner


def test_a_worker_that_dies_is_named_with_its_signal():
    cfg = ModelConfig(vocab_size=5, hidden=8, cell="gru")
    params = network.init_params(cfg, np.random.default_rng(0))
    x = np.zeros((4, 4), dtype=np.int64)
    with WorkerPool(2, cfg, 4) as pool:
        pool.loss_and_grads(params, cfg, x, x, network.zero_state(cfg, 4))
        os.kill(pool.procs[1].pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match=r"worker 2 of 2 \(pid \d+\) was killed by SIGKILL"):
            pool.loss_and_grads(params, cfg, x, x, network.zero_state(cfg, 4))
    assert _shm_names(os.getpid()) == []


def _start_training(out, *extra):
    args = [sys.executable, "-m", "charrnn", "train", str(PANTRY), "--hidden", "48", "--workers", "2",
            "--steps", "100000", "--eval-every", "5", "-o", str(out), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and len(_children(proc.pid)) >= 2):
        time.sleep(0.05)
    assert out.exists(), "training never saved"
    return proc, _children(proc.pid)


def test_sigkill_of_the_parent_leaves_no_worker_and_no_shared_memory(tmp_path):
    proc, kids = _start_training(tmp_path / "m.npz")
    proc.kill()
    proc.wait()
    assert _all_gone(kids), "a worker outlived its parent by 2 s"
    assert _shm_names(proc.pid) == []


def test_ctrl_c_with_workers_saves_and_leaves_nothing(tmp_path):
    out = tmp_path / "m.npz"
    proc, kids = _start_training(out, "--json")
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    proc.wait(timeout=30)
    assert proc.returncode == 130, proc.stderr.read().decode()
    assert checkpoint.load(str(out)).step > 0
    # The workers are gone before the parent exits; multiprocessing's resource tracker, also a child,
    # exits when it reads EOF from the parent, a moment later.
    assert _all_gone(kids) and _shm_names(proc.pid) == []


def test_eval_figures_do_not_depend_on_workers(pantry_model):
    """A long text is scored in pieces; 1 and 2 workers agree, and both match one reading from the start."""
    from charrnn.score import total_nll

    text = PANTRY.read_text()[:30000]
    m = charrnn.load(pantry_model)
    one, two = m.score(text, workers=1), m.score(text, workers=2)
    assert two.chars == one.chars == len(text) - 1
    # The same float32 arithmetic on other batch shapes: numpy 2.4.6 with scipy-openblas 0.3.31 differs by
    # 1.4e-9 relative here; a lost or doubled character would move the mean by ~1e-4.
    assert two.nats_per_char == pytest.approx(one.nats_per_char, rel=1e-7)
    ck = m.checkpoint
    exact, n = total_nll(ck.use_params, ck.model_config, ck.vocab.encode(text), batch=1)  # what the file serves
    assert one.nats_per_char == pytest.approx(exact / n, abs=1e-6)
    r = run_cmd(["eval", pantry_model, PANTRY, "--workers", "2", "--json"])
    assert r.returncode == 0 and json.loads(r.stdout)["chars"] == len(PANTRY.read_text()) - 1


def test_two_workers_score_each_stream_at_each_temperature_as_one_process_does(pantry_model):
    """Validation's per-stream scores at every temperature come back from the workers in stream order."""
    from charrnn.score import stream_nll
    from charrnn.validation import temps_around

    TEMPS = temps_around(1.1)

    ck = charrnn.load(pantry_model).checkpoint
    ids = ck.vocab.encode(PANTRY.read_text()[:20000])
    here, counts = stream_nll(ck.params, ck.model_config, ids, warm=128, temps=TEMPS)
    with WorkerPool(2, ck.model_config, 4) as pool:
        there, _ = stream_nll(ck.params, ck.model_config, ids, warm=128, temps=TEMPS, by=pool)
        plain, _ = stream_nll(ck.params, ck.model_config, ids, warm=128, by=pool)
    assert here.shape == (len(counts), len(TEMPS)) and len(set(np.round(here[:, 0], 3))) > 1  # streams differ
    np.testing.assert_allclose(there, here, rtol=1e-6)
    np.testing.assert_allclose(plain, here[:, TEMPS.index(1.0)], rtol=1e-5)  # temperature 1 is the plain score
