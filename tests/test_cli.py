"""The real commands: in-process through typer's CliRunner, and as processes in pipelines."""
import json
import signal

import numpy as np
import pytest

from charrnn import checkpoint

from conftest import CORPORA, one_line_error, run_cmd, run_shell, start_training

HOME = str(CORPORA / "home.txt")


def test_train_writes_a_checkpoint_and_json_metrics(cli, tmp_path):
    out = tmp_path / "m.npz"
    r = cli("train", HOME, "--steps", 20, "--hidden", 16, "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    metrics = json.loads(r.stdout)  # stdout is exactly one JSON object
    for key in ["steps", "chars_seen", "seconds", "chars_per_sec", "train_nats", "val_nats", "val_bits"]:
        assert key in metrics
    assert metrics["steps"] == 20 and metrics["val_bits"] == pytest.approx(metrics["val_nats"] / np.log(2))
    assert "note: the training text is short" in r.stderr
    assert checkpoint.load(str(out)).step == 20
    assert not (tmp_path / "m.best.npz").exists()  # one file: it serves the best weights itself


def test_quiet_training_says_nothing(cli, tmp_path):
    r = cli("train", HOME, "--steps", 5, "--hidden", 8, "-o", tmp_path / "q.npz", "--quiet")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""


def test_resume_continues_to_the_total_step_count(cli, tmp_path):
    out = tmp_path / "r.npz"
    assert cli("train", HOME, "--steps", 10, "--hidden", 8, "-o", out, "-q").exit_code == 0
    r = cli("train", HOME, "--steps", 25, "-o", out, "--resume", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["run_steps"] == 15
    assert checkpoint.load(str(out)).step == 25


def test_an_existing_checkpoint_is_not_overwritten_without_force(cli, tmp_path):
    out = tmp_path / "x.npz"
    assert cli("train", HOME, "--steps", 3, "--hidden", 8, "-o", out, "-q").exit_code == 0
    before = out.read_bytes()
    r = cli("train", HOME, "--steps", 3, "--hidden", 8, "-o", out)
    assert r.exit_code == 1 and "--resume" in one_line_error(r.stderr)
    assert out.read_bytes() == before
    assert cli("train", HOME, "--steps", 3, "--hidden", 8, "-o", out, "-q", "--force").exit_code == 0


def test_resume_refuses_a_different_model_shape(cli, tmp_path):
    out = tmp_path / "h.npz"
    assert cli("train", HOME, "--steps", 3, "--hidden", 8, "-o", out, "-q").exit_code == 0
    r = cli("train", HOME, "--steps", 6, "--hidden", 16, "-o", out, "--resume")
    assert r.exit_code == 2 and "--hidden 16 differs" in one_line_error(r.stderr)


def test_sample_is_reproducible_with_a_seed_and_prints_the_prime_first(cli, home_model):
    a = cli("sample", "-m", home_model, "-n", 50, "--seed", 3, "--prime", "HO")
    b = cli("sample", "-m", home_model, "-n", 50, "--seed", 3, "--prime", "HO")
    assert a.exit_code == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith("HO") and len(a.stdout) == 52
    assert a.stderr == ""


def test_sample_greedy_continues_home(cli, home_model):
    r = cli("sample", "-m", home_model, "-n", 8, "--temp", 0, "--prime", "HOM")
    assert r.stdout == ("HOME\n" * 3)[: 3 + 8]


def test_different_seeds_give_different_text(cli, pantry_model):
    a = cli("sample", "-m", pantry_model, "-n", 200, "--seed", 1).stdout
    b = cli("sample", "-m", pantry_model, "-n", 200, "--seed", 2).stdout
    assert a != b and len(a) == len(b) == 200


def test_sample_prime_from_stdin(cli, home_model):
    r = cli("sample", "-m", home_model, "--prime", "-", "-n", 2, "--temp", 0, input="HOM")
    assert r.exit_code == 0 and r.stdout == "HOME\n"


@pytest.mark.parametrize("args,code,message", [
    (["--temp", "-1"], 2, "--temp must be 0"),
    (["--length", "-5"], 2, "--length must be 0 or more"),
    (["--prime", "HOUSE"], 1, r"not in the model's vocabulary: 'S' \(U\+0053\), 'U' \(U\+0055\)"),
    (["--seed", "-1"], 2, "--seed must be a whole number of at least 0, not -1"),  # was an internal error
])
def test_sample_rejects_bad_options(cli, home_model, args, code, message):
    r = cli("sample", "-m", home_model, *args)
    assert r.exit_code == code
    assert __import__("re").search(message, one_line_error(r.stderr))
    assert r.stdout == ""


def test_probs_json_lines(cli, home_model):
    r = cli("probs", "-m", home_model, "HOM", "--json", "-k", 3)
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["index"] for row in rows] == [0, 1, 2] and [row["char"] for row in rows] == list("HOM")
    assert [row["next"][0]["char"] for row in rows] == list("OME")
    assert all(len(row["next"]) == 3 for row in rows)
    ps = [n["p"] for n in rows[0]["next"]]
    assert ps == sorted(ps, reverse=True) and ps[0] > 0.9


def test_probs_is_json_lines_when_stdout_is_not_a_terminal(cli, home_model):
    r = cli("probs", "-m", home_model, "H")
    assert json.loads(r.stdout)["next"][0]["char"] == "O"


def test_probs_rejects_unknown_characters(cli, home_model):
    r = cli("probs", "-m", home_model, "HAT")
    assert r.exit_code == 1 and "'A'" in one_line_error(r.stderr) and "'T'" in r.stderr


def test_eval_reports_nats_bits_and_perplexity(cli, home_model):
    r = cli("eval", "-m", home_model, HOME, "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert set(rep) == {"chars", "nats_per_char", "bits_per_char", "perplexity", "unknown_chars"}
    assert rep["chars"] == 999 and rep["unknown_chars"] == 0
    assert rep["bits_per_char"] == pytest.approx(rep["nats_per_char"] / np.log(2))
    assert rep["perplexity"] == pytest.approx(np.exp(rep["nats_per_char"]))
    assert rep["nats_per_char"] < 0.2


def test_eval_skips_and_counts_unknown_characters(cli, home_model):
    r = cli("eval", "-m", home_model, "-", "--json", input="HOME\nHOXME\nHOME\n")
    rep = json.loads(r.stdout)
    assert rep["unknown_chars"] == 1 and rep["chars"] == 14
    assert "skipped 1 character" in r.stderr and "'X'" in r.stderr


def test_info_json(cli, home_model):
    r = cli("info", home_model, "--json")
    facts = json.loads(r.stdout)
    assert facts["vocab"] == "\nEHMO" and facts["vocab_size"] == 5
    assert facts["format_version"] == 2 and facts["config"]["hidden"] == 32
    assert facts["steps"] == 200 and facts["chars_seen"] > 0 and facts["best_val_nats"] > 0
    assert facts["params"] == 5 * 32 + 32 * 32 + 32 + 32 * 5 + 5


@pytest.mark.parametrize("args,code,fragment", [
    (["train", "missing.txt"], 1, "missing.txt: no such file"),
    (["train", "one.txt"], 1, "at least 2"),
    (["train", "bad.txt"], 1, "invalid UTF-8 at byte offset 2"),
    (["train", "home.txt", "--hidden", "0"], 2, "--hidden must be positive"),
    (["train", "home.txt", "--time", "soon"], 2, "cannot read --time"),
    (["train", "home.txt", "--val-frac", "1"], 2, "--val-frac must be in [0, 1)"),
    (["train", "home.txt", "-o", "."], 1, "is a directory"),
    (["train", "home.txt", "--optimizer", "rmsprop"], 2, "unknown optimizer"),
    (["train", "home.txt", "--seed", "-1"], 2, "--seed must be a whole number of at least 0"),
    (["train", "home.txt", "--bogus"], 2, "No such option"),
    (["sample", "-m", "missing.npz"], 1, "no such checkpoint"),
    (["info", "home.txt"], 1, "not a charrnn checkpoint"),
])
def test_errors_are_one_line_with_the_right_exit_code(cli, tmp_path, monkeypatch, args, code, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one.txt").write_text("x")
    (tmp_path / "bad.txt").write_bytes(b"ab\xc3(")
    (tmp_path / "home.txt").write_text("HOME\n" * 20)
    r = cli(*args)
    assert r.exit_code == code, (r.stdout, r.stderr)
    assert fragment in one_line_error(r.stderr)
    assert r.stdout == ""
    assert not (tmp_path / "model.npz").exists()


def test_encoding_errors_replace_lets_invalid_utf8_through(cli, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ab\xffcd" * 10)
    r = cli("train", tmp_path / "bad.txt", "--encoding-errors", "replace", "--steps", 2, "--hidden", 4, "-o", tmp_path / "b.npz", "-q")
    assert r.exit_code == 0, r.stderr
    assert "\ufffd" in checkpoint.load(str(tmp_path / "b.npz")).vocab.chars


# ---------------------------------------------------------------- real processes


def test_python_dash_m_works():
    r = run_cmd(["--version"])
    assert r.returncode == 0 and r.stdout.decode().startswith("charrnn ")


def test_train_from_stdin_in_a_pipeline(tmp_path):
    r = run_shell(f"cat {HOME} | $CHARRNN train - --steps 5 --hidden 8 -o m.npz --json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 5


def test_sample_into_head_exits_quietly(home_model):
    r = run_shell(f"$CHARRNN sample -m {home_model} -n 1000000 --seed 1 | head -c 20")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 20 and r.stderr == b""


def test_piped_output_has_no_colour_codes(home_model):
    for args in (["info", home_model], ["probs", "-m", home_model, "HOM"], ["sample", "-m", home_model, "-n", "20"]):
        r = run_cmd(args, env={"TERM": "xterm-256color"})
        assert r.returncode == 0 and b"\x1b[" not in r.stdout and b"\x1b[" not in r.stderr


def test_a_missing_corpus_in_a_process_is_one_line_exit_1(tmp_path):
    r = run_cmd(["train", "nope.txt"], cwd=tmp_path)
    assert r.returncode == 1
    one_line_error(r.stderr.decode())


def test_empty_stdin_is_a_clear_error(tmp_path):
    r = run_cmd(["train", "-"], input=b"", cwd=tmp_path)
    assert r.returncode == 1 and "stdin: is empty" in one_line_error(r.stderr.decode())


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_training_saves_and_exits(tmp_path, sig, code):
    proc = start_training([CORPORA / "pantry.txt", "--time", "600", "--hidden", "64", "-o", "m.npz"], tmp_path,
                          tmp_path / "log.jsonl")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err.decode()
    assert f"interrupted by {sig.name}" in err.decode() and "saved m.npz" in err.decode()
    assert checkpoint.load(str(tmp_path / "m.npz")).step > 0
