"""Issue 11: validation text held out as blocks spread through the corpus, or taken from files."""
import json

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import MAX_BLOCKS, MIN_BLOCK, next_line_start, split, val_blocks

from conftest import CORPORA, one_line_error, run_cmd

PANTRY = str(CORPORA / "pantry.txt")


def test_spread_blocks_cover_the_corpus_evenly_with_the_requested_fraction():
    n, frac = 1_115_394, 0.1
    n_val = int(n * frac)
    blocks = val_blocks(n, n_val)
    assert 20 <= len(blocks) <= MAX_BLOCKS
    assert sum(e - s for s, e in blocks) == n_val
    k = len(blocks)
    for i, (s, e) in enumerate(blocks):  # one block inside each 1/k of the text, none overlapping
        assert i * n / k <= s < e <= (i + 1) * n / k
    ids = np.arange(n) % 251
    train, val = split(ids, frac, "spread")
    assert len(train) + len(val) == n and len(val) == n_val
    np.testing.assert_array_equal(np.sort(np.concatenate([train.array(), val.array()])), np.sort(ids))


def test_small_texts_get_fewer_but_still_long_blocks():
    blocks = val_blocks(30_000, 3_000)
    assert len(blocks) == 3_000 // MIN_BLOCK and all(e - s >= MIN_BLOCK for s, e in blocks)


def test_end_keeps_the_old_convention():
    ids = np.arange(1000)
    train, val = split(ids, 0.1, "end")
    assert val.array().tolist() == list(range(900, 1000)) and train.array().tolist() == list(range(900))


def test_records_mode_cuts_blocks_on_line_boundaries():
    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abcdefgh"), rng.integers(1, 40))) for _ in range(4000)]
    text = "\n".join(lines) + "\n"
    ids = np.frombuffer(text.encode(), dtype=np.uint8)
    nl = ord("\n")
    n_val = int(len(ids) * 0.1)
    starts = np.flatnonzero(ids[:-1] == nl) + 1
    blocks = val_blocks(len(ids), n_val, lambda pos: next_line_start(ids, pos, nl))
    assert blocks == val_blocks(len(ids), n_val, lambda pos: int(starts[np.searchsorted(starts, pos)]))
    for s, e in blocks:
        assert ids[s - 1] == nl and ids[e - 1] == nl  # starts after a newline, ends with one
    total = sum(e - s for s, e in blocks)
    assert abs(total - n_val) <= n_val / len(blocks)  # the requested fraction, within one block
    train, val = split(ids, 0.1, "spread", newline_id=nl)
    held = set(bytes(val.array()).decode().split("\n")) - {""}
    trained = set(bytes(train.array()).decode().split("\n")) - {""}
    assert held <= set(lines) and trained <= set(lines)  # no record cut in two


def _train(tmp_path, *args, name="m.npz"):
    r = run_cmd(["train", PANTRY, "--hidden", 16, "--steps", 20, "--eval-every", 10, "-o", tmp_path / name,
                 "-q", "--json", *args])
    return r


def test_val_file_is_what_validation_scores_and_resume_keeps_it(tmp_path):
    held = tmp_path / "held.txt"
    held.write_text(open(PANTRY).read()[:400])  # one scoring stream: validation reads it as eval does
    r = _train(tmp_path, "--val-file", held)
    assert r.returncode == 0, r.stderr
    val = json.loads(r.stdout)["best_val_nats"]  # the served weights' score, as validation measured it
    scored = json.loads(run_cmd(["eval", tmp_path / "m.npz", held, "--json"]).stdout)["nats_per_char"]
    assert val == pytest.approx(scored, rel=1e-5)
    ck = checkpoint.load(str(tmp_path / "m.npz"))
    assert ck.train_config.val_files == [str(held)]
    info = json.loads(run_cmd(["info", tmp_path / "m.npz", "--json"]).stdout)
    assert info["train_config"]["val_files"] == [str(held)]
    again = run_cmd(["train", PANTRY, "--steps", 30, "-o", tmp_path / "m.npz", "--resume", "-q", "--json"])
    assert again.returncode == 0, again.stderr
    rescored = json.loads(run_cmd(["eval", tmp_path / "m.npz", held, "--json"]).stdout)["nats_per_char"]
    assert json.loads(again.stdout)["best_val_nats"] == pytest.approx(rescored, rel=1e-5)


def test_an_unknown_character_in_a_val_file_follows_unknown(tmp_path):
    held = tmp_path / "held.txt"
    held.write_text("Mix the flour.\n\u00a7\u00a7\n")
    r = _train(tmp_path, "--val-file", held)
    assert r.returncode == 1 and "--val-file" in one_line_error(r.stderr.decode()) and "U+00A7" in r.stderr.decode()
    assert not (tmp_path / "m.npz").exists()
    skip = _train(tmp_path, "--val-file", held, "--unknown", "skip")
    assert skip.returncode == 0, skip.stderr
    rep = _train(tmp_path, "--val-file", held, "--unknown", "replace:z", name="r.npz")
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["val_nats"] != json.loads(skip.stdout)["val_nats"]


def test_stdin_is_not_a_val_file(tmp_path):
    r = _train(tmp_path, "--val-file", "-")
    assert r.returncode == 2 and "--val-file" in one_line_error(r.stderr.decode())


def test_resume_validates_on_the_same_spread_blocks(tmp_path):
    """Resumed or not, the split is the same: the resumed run's validation equals one straight run's."""
    straight = _train(tmp_path, "--steps", 40, name="a.npz")
    _train(tmp_path, name="b.npz")
    resumed = run_cmd(["train", PANTRY, "--steps", 40, "-o", tmp_path / "b.npz", "--resume", "-q", "--json"])
    a, b = json.loads(straight.stdout), json.loads(resumed.stdout)
    assert a["val_nats"] == b["val_nats"]
    ck_a, ck_b = checkpoint.load(str(tmp_path / "a.npz")), checkpoint.load(str(tmp_path / "b.npz"))
    assert ck_a.train_config.val_from == ck_b.train_config.val_from == "spread"
    for k, v in ck_a.params.items():
        np.testing.assert_array_equal(v, ck_b.params[k])  # bit-exact resume still holds


def test_val_from_end_is_recorded_and_an_old_checkpoint_means_end(tmp_path):
    r = _train(tmp_path, "--val-from", "end")
    assert r.returncode == 0 and checkpoint.load(str(tmp_path / "m.npz")).train_config.val_from == "end"
    ck = checkpoint.load(str(tmp_path / "m.npz"))
    meta = ck.meta()
    del meta["train"]["val_from"], meta["train"]["val_files"]  # as written before spread validation existed
    ck.meta = lambda: meta
    checkpoint.save(ck, str(tmp_path / "old.npz"))
    old = checkpoint.load(str(tmp_path / "old.npz"))
    assert old.train_config.val_from == "end" and old.train_config.val_files == []


def test_a_checkpoint_from_before_lookup_lr_resumes_at_its_old_rate(tmp_path):
    assert _train(tmp_path).returncode == 0
    ck = checkpoint.load(str(tmp_path / "m.npz"))
    assert ck.train_config.lookup_lr == TrainConfig().lookup_lr > 1
    meta = ck.meta()
    del meta["train"]["lookup_lr"]  # as written before the lookup table had its own rate
    ck.meta = lambda: meta
    checkpoint.save(ck, str(tmp_path / "old.npz"))
    assert checkpoint.load(str(tmp_path / "old.npz")).train_config.lookup_lr == 1.0


# ---------------------------------------------------------------- budget-aware defaults (see test_budget.py)


@pytest.mark.parametrize("flags, hidden", [(["--hidden", "24"], 24), (["--cell", "lstm"], 384), (["--steps", "2"], 384)])
def test_an_explicit_shape_or_no_budget_keeps_the_fixed_rule(cli, tmp_path, flags, hidden):
    time_flags = [] if "--steps" in flags else ["--time", "1s"]
    r = cli("train", str(CORPORA / "home.txt"), *time_flags, *flags, "-o", tmp_path / "t.npz", "-q")
    assert r.exit_code == 0, r.stderr
    assert checkpoint.load(str(tmp_path / "t.npz")).model_config.hidden == hidden


def test_validation_scores_its_text_as_one_reading_would(tmp_path):
    """A run's validation loss is the model's loss over the held-out text read once from its start (not 64 short
    readings from a zero state, which a small text would make too high)."""
    from charrnn import validation
    from charrnn.score import total_nll

    out = tmp_path / "p.npz"
    r = run_cmd(["train", PANTRY, "--steps", "120", "--hidden", "48", "--lr", "0.01", "--eval-every", "120",
                 "--average", "0", "-o", out, "--json", "-q"])
    assert r.returncode == 0, r.stderr.decode()
    ck = checkpoint.load(str(out))
    tcfg = ck.train_config
    _, held = split(ck.vocab.encode((CORPORA / "pantry.txt").read_text()), tcfg.val_frac, tcfg.val_from)
    val = held.array()
    once, n = total_nll(ck.params, ck.model_config, val, batch=1)
    cold, _ = total_nll(ck.params, ck.model_config, val, batch=64)
    reported = json.loads(r.stdout)["val_nats"]
    assert reported == pytest.approx(once / n, abs=1e-3)
    assert cold / n - once / n > 5e-3  # 64 cold streams of about 430 characters each read it worse
    assert validation.WARM < 430
