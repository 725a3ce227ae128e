"""Bad input, faults and fuzzing: one clear line, the right exit code, nothing lost or half-written."""
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.errors import CharRNNError
from charrnn.vocab import Vocab

from conftest import CORPORA, one_line_error, run_shell

HOME = str(CORPORA / "home.txt")


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


BAD_INPUTS = [
    # (arguments, stdin, exit code, fragment of the one stderr line)
    (["train", "missing.txt"], None, 1, "missing.txt: no such file"),
    (["train", "adir"], None, 1, "adir: no text files in this folder"),
    (["train", "empty.txt"], None, 1, "empty.txt: is empty"),
    (["train", "one.txt"], None, 1, "at least 2"),
    (["train", "latin1.txt"], None, 1, "invalid UTF-8 at byte offset 2"),
    (["train", "-"], b"", 1, "stdin: is empty"),
    (["train", "home.txt", "empty.txt"], None, 1, "empty.txt: is empty"),
    (["train", "home.txt", "--hidden", "0"], None, 2, "--hidden must be positive"),
    (["train", "home.txt", "--batch", "-3"], None, 2, "--batch must be positive"),
    (["train", "home.txt", "--seq-len", "0"], None, 2, "--seq-len must be positive"),
    (["train", "home.txt", "--steps", "0"], None, 2, "--steps must be positive"),
    (["train", "home.txt", "--val-frac", "1.5"], None, 2, "--val-frac must be in [0, 1)"),
    (["train", "home.txt", "--val-frac", "-0.1"], None, 2, "--val-frac must be in [0, 1)"),
    (["train", "home.txt", "--lr", "0"], None, 2, "--lr must be positive"),
    (["train", "home.txt", "--lr", "-1"], None, 2, "--lr must be positive"),
    (["train", "home.txt", "--lookup-lr", "0"], None, 2, "--lookup-lr must be positive"),
    (["train", "home.txt", "--time", "ten minutes"], None, 2, "cannot read --time"),
    (["train", "home.txt", "--dropout", "1"], None, 2, "--dropout must be in [0, 1)"),
    (["train", "home.txt", "--weight-drop", "1"], None, 2, "--weight-drop must be in [0, 1)"),
    (["gradcheck", "--weight-drop", "-0.5"], None, 2, "--weight-drop must be in [0, 1)"),
    (["train", "home.txt", "--hidden", "many"], None, 2, "--hidden"),
    (["train", "home.txt", "-o", "adir"], None, 1, "adir: is a directory"),
    (["train", "home.txt", "-o", "nofolder/m.npz"], None, 1, "does not exist"),
    (["sample", "-m", "hm.npz", "--temp", "-0.5"], None, 2, "--temp must be 0"),
    (["sample", "-m", "hm.npz", "--length", "-1"], None, 2, "--length must be 0 or more"),
    (["sample", "-m", "hm.npz", "--prime", "HOUSE"], None, 1, "'S' (U+0053), 'U' (U+0055)"),
    (["sample", "-m", "missing.npz"], None, 1, "missing.npz: no such checkpoint"),
    (["sample", "-m", "empty.txt"], None, 1, "empty.txt: is empty"),
    (["sample", "-m", "random.bin"], None, 1, "random.bin: is"),
    (["sample", "-m", "foreign.zip"], None, 1, "not a charrnn checkpoint"),
    (["sample", "-m", "truncated.npz"], None, 1, "truncated.npz: is"),
    (["probs", "-m", "hm.npz", "HAT"], None, 1, "'A' (U+0041), 'T' (U+0054)"),
    (["probs", "-m", "hm.npz", "HOM", "--top", "0"], None, 2, "--top must be at least 1"),
    (["eval", "-m", "hm.npz", "missing.txt"], None, 1, "missing.txt: no such file"),
    (["eval", "-m", "hm.npz", "-"], b"XYZ", 1, "nothing to score"),
    (["info", "newer.npz"], None, 1, "newer than this charrnn reads"),
    (["info", "objects.npz"], None, 1, "objects.npz: is"),
    (["info", "shapes.npz"], None, 1, "param/W_ya has shape"),
    (["info", "vocab.npz"], None, 1, "vocabulary has 4 characters but the model expects 5"),
    (["nonsense"], None, 2, "No such command"),
]


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory, home_model):
    d = tmp_path_factory.mktemp("bad")
    (d / "adir").mkdir()
    (d / "empty.txt").write_bytes(b"")
    (d / "one.txt").write_text("x")
    (d / "latin1.txt").write_bytes("naïve caf\xe9".encode("latin-1"))
    (d / "home.txt").write_text("HOME\n" * 30)
    (d / "random.bin").write_bytes(np.random.default_rng(0).bytes(3000))
    with zipfile.ZipFile(d / "foreign.zip", "w") as z:
        z.writestr("a.txt", "not a model")
    good = open(home_model, "rb").read()
    (d / "hm.npz").write_bytes(good)
    (d / "truncated.npz").write_bytes(good[: len(good) // 2])
    arrays = dict(np.load(home_model))
    meta = json.loads(arrays["meta"].tobytes())

    def variant(name, **change):
        a = dict(arrays)
        m = dict(meta)
        for k, v in change.items():
            if k == "meta":
                m.update(v)
            else:
                a[k] = v
        a["meta"] = np.frombuffer(json.dumps(m).encode(), np.uint8)
        np.savez(d / name, **a)

    variant("newer.npz", meta={"version": checkpoint.VERSION + 1})
    variant("shapes.npz", **{"param/W_ya": arrays["param/W_ya"][:, :2]})
    variant("vocab.npz", meta={"vocab": "EHMO"})
    a = dict(arrays)
    a["meta"] = np.array([{"format": "charrnn-checkpoint"}], dtype=object)
    np.savez(d / "objects.npz", **a)
    return d


@pytest.mark.parametrize("args,stdin,code,fragment", BAD_INPUTS, ids=[" ".join(a[0]) for a in BAD_INPUTS])
def test_bad_input_gets_one_clear_line_and_changes_nothing(bad_dir, cli, monkeypatch, args, stdin, code, fragment):
    monkeypatch.chdir(bad_dir)
    before = _files(bad_dir)
    r = cli(*args, input=stdin)
    assert r.exit_code == code, (r.stdout, r.stderr)
    line = one_line_error(r.stderr)
    assert fragment in line
    assert r.stdout == ""
    assert _files(bad_dir) == before  # no file created or changed


def test_binary_corpus_is_a_warning_not_a_crash(cli, tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01abc\x00" * 40)
    r = cli("train", tmp_path / "bin.txt", "--steps", 2, "--hidden", 4, "-o", tmp_path / "b.npz")
    assert r.exit_code == 0, r.stderr
    assert "NUL bytes" in r.stderr


def test_closed_stdin_is_a_clear_error(tmp_path):
    r = run_shell("$CHARRNN train - --steps 1 <&-", cwd=tmp_path)
    assert r.returncode == 1
    one_line_error(r.stderr.decode())
    assert not (tmp_path / "hm.npz").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_in_a_read_only_folder(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = cli("train", HOME, "--steps", 1, "-o", ro / "m.npz")
    assert r.exit_code == 1 and "no permission" in one_line_error(r.stderr)


def test_a_full_disk_during_training_keeps_the_previous_checkpoint(cli, tmp_path, monkeypatch):
    out = tmp_path / "m.npz"
    assert cli("train", HOME, "--steps", 3, "--hidden", 8, "-o", out, "-q").exit_code == 0
    before = out.read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    r = cli("train", HOME, "--steps", 6, "-o", out, "--resume")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert r.exit_code == 1
    assert "No space left on device" in one_line_error(r.stderr.splitlines()[-1] + "\n")
    assert out.read_bytes() == before
    assert checkpoint.load(str(out)).step == 3


def test_nan_loss_stops_with_the_step_and_exit_1(cli, tmp_path):
    out = tmp_path / "nan.npz"
    r = cli("train", HOME, "--steps", 50, "--hidden", 8, "--lr", "1e38", "--clip", 0, "--optimizer", "sgd", "-o", out)
    assert r.exit_code == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("charrnn: error: training diverged at step") and "--lr" in last
    assert "Traceback" not in r.stderr


def test_kill_9_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    """20 SIGKILLs, many of them during saves (a save after every step; every other step validates, so the
    served weights, the last step's and their average are all being written)."""
    rng = random.Random(0)
    out = tmp_path / "k.npz"
    base = [sys.executable, "-m", "charrnn", "train", str(CORPORA / "pantry.txt"), "--hidden", "48",
            "--save-every", "1", "--eval-every", "2", "--steps", "100000", "-o", str(out), "-q"]
    steps_seen = []
    for i in range(20):
        args = base + (["--resume"] if out.exists() else [])
        before = out.stat().st_mtime_ns if out.exists() else None
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while (out.stat().st_mtime_ns if out.exists() else None) == before:  # wait for this run's first save
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.01)
        time.sleep(rng.random() * 0.3)  # then kill at a random moment: often mid-save, saves come every step
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        steps_seen.append(checkpoint.load(str(out)).step)  # must load: the old or the new save
    assert len(steps_seen) == 20 and steps_seen == sorted(steps_seen) and steps_seen[-1] > 0


# ---------------------------------------------------------------- fuzzing


ALPHABET = st.one_of(
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),  # emoji (astral)
    st.characters(min_codepoint=0x0300, max_codepoint=0x036F),  # combining marks
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
    st.characters(max_codepoint=0x7F),
)


@given(st.text(alphabet=ALPHABET, min_size=1, max_size=300))
@settings(max_examples=150, deadline=None)
def test_vocabulary_round_trips_astral_and_combining_text(text):
    v = Vocab.from_text(text)
    assert v.decode(v.encode(text)) == text
    assert list(v.chars) == sorted(set(text))


@pytest.fixture(scope="module")
def ckpt_bytes(home_model):
    return open(home_model, "rb").read()


@given(data=st.data())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_checkpoints_load_equal_or_raise_our_error(ckpt_bytes, tmp_path_factory, data):
    blob = bytearray(ckpt_bytes)
    kind = data.draw(st.sampled_from(["flip", "truncate", "meta"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    path.write_bytes(bytes(blob))
    if kind == "meta":
        arrays = dict(np.load(str(path)))
        meta = json.loads(arrays["meta"].tobytes())
        key = data.draw(st.sampled_from(sorted(meta)))
        meta[key] = data.draw(st.one_of(st.none(), st.integers(-5, 10**6), st.text(max_size=5), st.floats(),
                                        st.lists(st.integers(), max_size=2), st.booleans()))
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(str(path), **arrays)
    original = checkpoint.load(str(_original_path(ckpt_bytes, tmp_path_factory)))
    try:
        loaded = checkpoint.load(str(path))
    except CharRNNError:
        return
    if kind != "meta":  # bytes changed yet it loaded: it must be the same model
        for k in original.params:
            assert loaded.params[k].tobytes() == original.params[k].tobytes()


_ORIGINAL = {}


def _original_path(blob, factory):
    if "p" not in _ORIGINAL:
        p = factory.mktemp("orig") / "orig.npz"
        p.write_bytes(blob)
        _ORIGINAL["p"] = p
    return _ORIGINAL["p"]


OPTION_VALUES = {
    "--hidden": st.integers(-3, 12),
    "--batch": st.integers(-2, 8),
    "--seq-len": st.integers(-2, 12),
    "--steps": st.integers(-2, 3),  # never more than a few steps
    "--lr": st.sampled_from(["0", "-1", "0.01", "1e-3", "abc", "nan"]),
    "--val-frac": st.sampled_from(["-0.5", "0", "0.1", "0.99", "1", "2"]),
    "--time": st.sampled_from(["1s", "0", "-5", "0.5s", "x", "1h30", "2m"]),
    "--clip": st.sampled_from(["-1", "0", "5", "inf"]),
    "--optimizer": st.sampled_from(["adam", "sgd", "adagrad", "lion"]),
    "--cell": st.sampled_from(["rnn", "lstm", "gru", "mgru", "cnn"]),
    "--dropout": st.sampled_from(["0", "0.5", "1", "-0.1"]),
}


@given(st.dictionaries(st.sampled_from(sorted(OPTION_VALUES)), st.none(), min_size=1, max_size=4), st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_cli_with_random_options_succeeds_or_fails_cleanly(cli, tmp_path_factory, chosen, data):
    folder = tmp_path_factory.mktemp("opts")
    args = ["train", HOME, "-o", str(folder / "m.npz"), "-q"]
    for opt in chosen:
        args += [opt, str(data.draw(OPTION_VALUES[opt]))]
    if "--steps" not in chosen:
        args += ["--steps", "2"]  # a long --time still stops at step 2
    r = cli(*args)
    assert r.exit_code in (0, 1, 2), (args, r.stderr)
    assert "Traceback" not in r.stderr
    if r.exit_code:
        one_line_error(r.stderr)


@given(st.sampled_from(["-n", "-t", "-p", "--seed"]), st.one_of(st.integers(-3, 30).map(str),
       st.sampled_from(["0.5", "-1", "abc", "HOM", "", "nan", "inf"])))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_sample_with_random_options_succeeds_or_fails_cleanly(cli, home_model, opt, value):
    if opt == "-n" and value == "0":
        value = "3"  # -n 0 streams forever by design
    r = cli("sample", "-m", home_model, "-n", 5, opt, value)
    assert r.exit_code in (0, 1, 2)
    assert "Traceback" not in r.stderr
    if r.exit_code:
        one_line_error(r.stderr)
