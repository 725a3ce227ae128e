"""Issue 5: decoding options, stop conditions, confidence views, per-character scores, records, fine-tuning."""
import json
import math

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint
from charrnn.sample import Decoding, Stops, beam_search, distribution, generate_scored

from conftest import CORPORA, one_line_error, run_shell

HOME = str(CORPORA / "home.txt")


def _text(ck, prime, dec, stops, seed=0):
    return "".join(ch for ch, _, _ in generate_scored(ck, prime, np.random.default_rng(seed), dec, stops))


def test_decoding_order_temperature_then_top_k_then_top_p():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    np.testing.assert_allclose(distribution(logits, Decoding()), [0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(distribution(logits, Decoding(top_k=2)), [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    np.testing.assert_allclose(distribution(logits, Decoding(top_p=0.7)), [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    np.testing.assert_allclose(distribution(logits, Decoding(top_p=0.81)), [0.5, 0.3, 0.15, 0] / np.float64(0.95))
    hot = distribution(logits, Decoding(temp=2.0))
    assert hot[3] > 0.05 and abs(hot.sum() - 1) < 1e-12
    # temperature first: at a low temperature the top-p nucleus is a single character
    np.testing.assert_allclose(distribution(logits, Decoding(temp=0.1, top_p=0.9)), [1, 0, 0, 0])


def test_top_k_1_and_a_tiny_top_p_equal_greedy(pantry_model):
    ck = checkpoint.load(pantry_model)
    stops = Stops(length=120)
    greedy = _text(ck, "== ", Decoding(temp=0), stops)
    assert _text(ck, "== ", Decoding(top_k=1), stops, seed=5) == greedy
    assert _text(ck, "== ", Decoding(top_p=1e-9), stops, seed=9) == greedy


def test_the_same_seed_gives_the_same_output(cli, pantry_model):
    args = ["sample", "-m", pantry_model, "-n", 80, "--top-p", 0.9, "--top-k", 10, "--seed", 4]
    assert cli(*args).stdout == cli(*args).stdout


def test_stop_ends_exactly_after_the_stop_string(cli, pantry_model):
    r = cli("sample", "-m", pantry_model, "--stop", "the", "--stop", "of", "-n", 3000, "--seed", 2)
    assert r.exit_code == 0
    assert r.stdout.endswith("the") or r.stdout.endswith("of")
    body = r.stdout
    first = min((body.find(s) + len(s) for s in ("the", "of") if s in body), default=-1)
    assert first == len(body)  # it ended at the first occurrence


def test_lines_counts_newlines(cli, pantry_model):
    r = cli("sample", "-m", pantry_model, "--lines", 3, "-n", 5000, "--seed", 1)
    assert r.stdout.count("\n") == 3 and r.stdout.endswith("\n")


def test_length_is_the_ceiling(cli, pantry_model):
    r = cli("sample", "-m", pantry_model, "--stop", "zzzzqqq", "-n", 37, "--seed", 1)
    assert len(r.stdout) == 37


def test_endless_streaming_into_head(pantry_model):
    r = run_shell(f"$CHARRNN sample -m {pantry_model} -n 0 --seed 1 | head -c 30000")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 30000 and r.stderr == b""


def test_num_samples_json_reports_text_nats_and_chars(cli, home_model):
    r = cli("sample", "-m", home_model, "--num-samples", 3, "--lines", 2, "--json", "--seed", 0)
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert row["chars"] == len(row["text"]) and row["text"].count("\n") == 2
        assert row["nats"] >= 0


def test_num_samples_are_separated(cli, home_model):
    r = cli("sample", "-m", home_model, "--num-samples", 2, "-n", 4, "--temp", 0, "--sep", "|", "--prime", "H")
    assert r.stdout == "HOME\n|HOME\n"


def test_nats_of_a_sample_equal_the_model_scoring_it(cli, home_model):
    ck = checkpoint.load(home_model)
    row = json.loads(cli("sample", "-m", home_model, "-n", 12, "--json", "--seed", 3, "--prime", "HO").stdout)
    ids = ck.vocab.encode("HO" + row["text"])
    from charrnn.score import per_char

    nats, _ = per_char(ck.use_params, ck.model_config, ids)  # the weights the file serves
    assert row["nats"] == pytest.approx(nats[1:].sum(), rel=1e-4)


def test_beam_search_is_at_least_as_likely_as_greedy(pantry_model):
    ck = checkpoint.load(pantry_model)
    from charrnn.score import per_char

    greedy = _text(ck, "1. ", Decoding(temp=0), Stops(length=30))
    [(beam, logp)] = beam_search(ck, "1. ", 30, 4)
    assert len(beam) == 30
    g_nats, _ = per_char(ck.params, ck.model_config, ck.vocab.encode("1. " + greedy))
    assert logp >= -g_nats[2:].sum() - 1e-6
    assert beam_search(ck, "1. ", 30, 4) == [(beam, logp)]  # deterministic


def test_beam_cli(cli, home_model):
    r = cli("sample", "-m", home_model, "--beam", 3, "-n", 6, "--prime", "HOM", "--json")
    row = json.loads(r.stdout)
    assert row["text"] == "E\nHOME" and row["chars"] == 6


def test_show_probs_json_lines(cli, home_model):
    r = cli("sample", "-m", home_model, "--show-probs", "--json", "-n", 5, "--prime", "HOM", "--temp", 0)
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [row["char"] for row in rows] == list("E\nHOM")
    assert rows[0]["p"] > 0.9 and rows[0]["top"][0]["char"] == "E" and len(rows[0]["top"]) == 5


@pytest.mark.parametrize("args,fragment", [
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--top-k", "0"], "--top-k must be at least 1"),
    (["--temp", "nan"], "--temp must be 0"),
    (["--num-samples", "0"], "--num-samples must be at least 1"),
    (["-n", "0", "--num-samples", "2"], "never ends"),
    (["--novel"], "--novel needs a model trained with --records"),
])
def test_bad_sampling_options(cli, home_model, args, fragment):
    r = cli("sample", "-m", home_model, *args)
    assert r.exit_code == 2 and fragment in one_line_error(r.stderr)


def test_eval_per_char_tsv(cli, home_model):
    r = cli("eval", home_model, "-", "--per-char", input="HOME\n")
    lines = r.stdout.splitlines()
    assert lines[0] == "index\tchar\tnats\tbits\tp_top"
    rows = [l.split("\t") for l in lines[1:]]
    assert [row[1] for row in rows] == ["O", "M", "E", "\\n"]
    for row in rows:
        assert float(row[3]) == pytest.approx(float(row[2]) / math.log(2), abs=1e-3)
        assert 0 < float(row[4]) <= 1


def test_eval_per_char_color_shades_surprise(cli, home_model):
    r = cli("eval", "-m", home_model, "-", "--per-char", "--color", input="HOMX\nHOMEHOME\n")
    assert "\x1b[48;5;" in r.stdout


def test_probs_last_shows_one_row_with_entropy(cli, home_model):
    r = cli("probs", "-m", home_model, "HOM", "--last", "--json")
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["index"] == 2 and rows[0]["next"][0]["char"] == "E"
    assert 0 <= rows[0]["entropy_bits"] < 0.7


@pytest.fixture(scope="module")
def names_model(tmp_path_factory):
    from typer.testing import CliRunner

    from charrnn.cli import app

    runner = CliRunner()
    d = tmp_path_factory.mktemp("names")
    names = ["anna", "bob", "carla", "dave", "emma", "fred", "gina", "hugo", "ivy", "jack"] * 30
    (d / "names.txt").write_text("\n".join(names) + "\n")
    out = d / "names.npz"
    r = runner.invoke(app, ["train", str(d / "names.txt"), "--records", "--hidden", "32", "--steps", "150",
                            "--lr", "0.01", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.stderr
    return str(out)


def test_records_mode_resets_the_state_at_newlines(names_model):
    ck = checkpoint.load(names_model)
    assert ck.model_config.reset_id == ck.vocab.chars.index("\n")
    from charrnn.score import next_char_probs

    a = next_char_probs(ck.params, ck.model_config, ck.vocab.encode("anna\nbo"))
    b = next_char_probs(ck.params, ck.model_config, ck.vocab.encode("dave\nbo"))
    np.testing.assert_allclose(a[4:], b[4:], rtol=1e-6)  # after the newline, nothing earlier matters


def test_without_records_mode_the_past_leaks_through(pantry_model):
    ck = checkpoint.load(pantry_model)
    from charrnn.score import next_char_probs

    a = next_char_probs(ck.params, ck.model_config, ck.vocab.encode("salt\nStir"))
    b = next_char_probs(ck.params, ck.model_config, ck.vocab.encode("milk\nStir"))
    assert np.abs(a[4:] - b[4:]).max() > 1e-6


def test_records_sampling_gives_whole_lines_and_novel_drops_known_ones(cli, names_model):
    r = cli("sample", "-m", names_model, "--num-samples", 10, "--seed", 1)
    assert r.exit_code == 0 and r.stdout.count("\n") == 10
    r = cli("sample", "-m", names_model, "--num-samples", 3, "--novel", "--seed", 1, "--temp", 1.5)
    assert "dropped" in r.stderr
    known = {"anna", "bob", "carla", "dave", "emma", "fred", "gina", "hugo", "ivy", "jack"}
    assert not set(r.stdout.splitlines()) & known


def test_fine_tuning_keeps_the_vocabulary_and_records_the_parent(cli, pantry_model, tmp_path):
    new = tmp_path / "new.txt"
    new.write_text("Stir the salt.\nStir the milk.\n" * 50)
    out = tmp_path / "ft.npz"
    r = cli("train", new, "--init-from", pantry_model, "-o", out, "--steps", 5, "--lr", "1e-3", "-q")
    assert r.exit_code == 0, r.stderr
    parent, child = checkpoint.load(pantry_model), checkpoint.load(str(out))
    assert child.vocab.chars == parent.vocab.chars and child.parent == pantry_model
    assert child.model_config == parent.model_config and child.step == 5
    assert any((child.params[k] != parent.params[k]).any() for k in child.params)


def test_fine_tuning_unknown_characters(cli, pantry_model, tmp_path):
    new = tmp_path / "new.txt"
    new.write_text("Stir the sauce¡ Zap@@ the milk.\n" * 20)
    ck = checkpoint.load(pantry_model)
    missing = sorted(c for c in set(new.read_text()) if c not in ck.vocab.chars)
    r = cli("train", new, "--init-from", pantry_model, "-o", tmp_path / "a.npz", "--steps", 2)
    assert r.exit_code == 1
    line = one_line_error(r.stderr)
    assert all(repr(c) in line for c in missing) and "x20" in line
    assert cli("train", new, "--init-from", pantry_model, "-o", tmp_path / "b.npz", "--steps", 2, "-q",
               "--unknown", "skip").exit_code == 0
    r = cli("train", new, "--init-from", pantry_model, "-o", tmp_path / "c.npz", "--steps", 2, "-q", "--unknown", "replace:.")
    assert r.exit_code == 0
    assert checkpoint.load(str(tmp_path / "c.npz")).vocab.chars == ck.vocab.chars
    r = cli("train", new, "--init-from", pantry_model, "-o", tmp_path / "d.npz", "--unknown", "replace:¡")
    assert r.exit_code == 2 and "not in the model's vocabulary" in one_line_error(r.stderr)


# ---------------------------------------------------------------- batched sampling


def test_batched_distributions_are_the_single_sample_rules_row_by_row():
    from charrnn.batch_sampling import distributions

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        dec = Decoding(temp=float(rng.choice([0, 0.3, 1.0, 2.5])), top_k=int(rng.choice([0, 1, 3, 9])) or None,
                       top_p=float(rng.choice([1.0, 0.9, 0.5, 0.01])))
        rows.append((rng.normal(0, 3, 12), dec))
    logits = np.stack([r[0] for r in rows])
    got = distributions(logits, np.array([d.temp for _, d in rows]), np.array([d.top_k or 0 for _, d in rows]),
                        np.array([d.top_p for _, d in rows]))
    for row, (lg, dec) in enumerate(rows):
        np.testing.assert_allclose(got[row], distribution(lg, dec), atol=1e-12, err_msg=str(dec))


def test_batched_samples_follow_the_models_distribution(pantry_model):
    import charrnn

    m = charrnn.load(pantry_model)
    prime = "1. "
    want = {c: p for c, p in m.probs(prime, k=len(m.vocab))[-1].next}
    firsts = [t[0] for t in m.sample_batch(4000, n=1, prime=prime, seed=11)]
    counts = {c: firsts.count(c) for c in want}
    expected = {c: 4000 * p for c, p in want.items()}
    common = [c for c in want if expected[c] >= 5]
    chi2 = sum((counts[c] - expected[c]) ** 2 / expected[c] for c in common)
    rare = sum(counts[c] for c in want if c not in common)
    assert chi2 < 3 * len(common) + 30 and rare <= 4000 * sum(p for c, p in want.items() if c not in common) + 30
    skewed = [t[0] for t in m.sample_batch(2000, n=1, prime=prime, seed=11, temp=0.3)]
    top = max(want, key=want.get)
    assert skewed.count(top) > firsts.count(top) / 2  # a low temperature piles onto the likeliest character


def test_a_seed_gives_the_same_batch_and_each_sample_ends_at_its_own_stop(cli, names_model):
    args = ["sample", "-m", names_model, "--num-samples", 6, "--seed", 4, "--json"]
    a, b = cli(*args).stdout, cli(*args).stdout
    assert a == b
    samples = [json.loads(line)["text"] for line in a.splitlines()]
    assert len(samples) == 6 and all(s.endswith("\n") and s.count("\n") == 1 for s in samples)  # whole records
    assert len(set(samples)) > 1 and len({len(s) for s in samples}) > 1  # they end where they end
    other = cli("sample", "-m", names_model, "--num-samples", 6, "--seed", 5, "--json").stdout
    assert other != a


def test_a_model_without_newlines_reads_its_random_first_character_once(tmp_path):
    """The first character of a prime-less sample from such a model was fed to the network twice."""
    import charrnn

    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcab" * 400)  # no newline
    charrnn.train(corpus, tmp_path / "m.npz", steps=40, hidden=16, lr=0.01, workers=1)
    m = charrnn.load(tmp_path / "m.npz")
    drawn = list(m.stream_scored(n=2, seed=0))
    first, (second, p2, probs2) = drawn[0][0], drawn[1]
    after_first = dict(m.probs(first, k=len(m.vocab))[-1].next)
    assert probs2[m.vocab.index(second)] == pytest.approx(after_first[second], rel=1e-5)
    assert drawn[0][1] == pytest.approx(1 / len(m.vocab))  # drawn uniformly, so its probability is 1/V


def test_a_job_the_engine_cannot_start_ends_alone_and_the_engine_keeps_serving(home_model):
    """A job whose prime the batch refuses gets one finished, empty event; the engine thread goes on drawing."""
    import threading

    from charrnn.batch_sampling import Job
    from charrnn.engine import Engine
    from charrnn.sample import Stops

    engine = Engine(charrnn.load(home_model))
    try:
        events, finished = [], threading.Event()

        def sink(drawn):
            events.append(drawn)
            if drawn.done and drawn.char:
                finished.set()

        engine.submit([Job(prime="HOUSE", key=0)], sink)  # S and U are not in the vocabulary
        engine.submit([Job(prime="HOM", stops=Stops(length=5), rng=np.random.default_rng(1), key=1)], sink)
        assert finished.wait(10), events
        refused = [e for e in events if e.sample == 0]
        assert len(refused) == 1 and refused[0].done and refused[0].char == ""
        assert engine.thread.is_alive() and "".join(e.char for e in events if e.sample == 1) and engine.chars == 5
    finally:
        engine.close()


def test_batch_texts_are_the_streamed_characters_and_a_shared_prime_is_read_once(pantry_model):
    import charrnn
    from charrnn.batch_sampling import Batch, Job
    from charrnn.sample import start

    m = charrnn.load(pantry_model)
    texts = m.sample_batch(6, n=40, seed=2, stop="\n", temp=0.8)
    streamed = [""] * 6
    for i, ch, _, _, _ in m.stream_batch(6, n=40, seed=2, stop="\n", temp=0.8):
        streamed[i] += ch
    assert texts == streamed and len({len(t) for t in texts}) > 1  # each ended at its own stop
    ck = checkpoint.load(pantry_model)
    batch = Batch(ck)
    primes = ["1. ", "2. ", "1. "]
    for key, prime in enumerate(primes):
        batch.add(Job(prime, key=key))
    assert sorted(batch.primed) == ["1. ", "2. "]
    for row, prime in enumerate(primes):
        logits, state, _ = start(ck, prime, np.random.default_rng(0))
        np.testing.assert_array_equal(batch.logits[row], logits)
        np.testing.assert_array_equal(batch.state[:, row], state[:, 0])


@pytest.mark.parametrize("cell, skip", [("rnn", False), ("lstm", False), ("gru", False), ("mgru", False),
                                        ("mgru", True)])
def test_texts_read_beside_samples_get_what_each_gets_read_alone(tmp_path, cell, skip):
    """The server's engine reads probs and score texts as rows of the same network steps as its samples (one
    step at a time while samples run, chunks of characters while none do); each text from a zero state."""
    import charrnn
    from charrnn.batch_sampling import Job, spawn_rngs
    from charrnn.engine import READ_AHEAD, Engine
    from charrnn.reading import BUFFER
    from charrnn.sample import Stops
    from charrnn.score import next_char_probs, next_char_probs_many

    corpus = tmp_path / "c.txt"
    corpus.write_text(open(CORPORA / "pantry.txt", encoding="utf-8").read()[:20000], encoding="utf-8")
    charrnn.train(corpus, tmp_path / "m.npz", steps=3, hidden=24, cell=cell, layers=2, skip=skip, workers=1)
    m = charrnn.load(tmp_path / "m.npz")
    text = corpus.read_text(encoding="utf-8")
    lengths = [1, 2, BUFFER - 1, BUFFER, BUFFER + 1, READ_AHEAD * 3 + 5, 600]  # across buffer and chunk edges
    texts = [text[100 * i : 100 * i + n] for i, n in enumerate(lengths)]
    params, cfg = m.weights(), m.checkpoint.model_config
    ids = [m.checkpoint.vocab.encode(t) for t in texts]
    for got, one in zip(next_char_probs_many(params, cfg, ids), ids):
        np.testing.assert_allclose(got, next_char_probs(params, cfg, one), rtol=1e-4, atol=1e-6)
    def check(kind, t, got):
        if kind == "probs":
            np.testing.assert_allclose(got, next_char_probs(params, cfg, m.checkpoint.vocab.encode(t)), rtol=1e-4,
                                       atol=1e-6)
        else:
            assert got.chars == len(t) - 1
            assert got.nats_per_char == pytest.approx(m.score(t).nats_per_char, rel=1e-5)

    asked = [(kind, t) for t in texts for kind in ("probs", "score") if len(t) >= 1 + (kind == "score")]
    engine = Engine(m)
    try:
        drawn = []
        samples = [Job("1. ", stops=Stops(length=10**7), rng=rng, key=i) for i, rng in enumerate(spawn_rngs(5, 3))]
        request = engine.submit(samples, drawn.append)
        for kind, t, future in [(kind, t, engine.read(kind, t)) for kind, t in asked]:
            check(kind, t, future.result(30))
        engine.cancel(request)  # the texts were read while the samples were drawn; now none are
        for kind, t, future in [(kind, t, engine.read(kind, t)) for kind, t in asked]:  # read in chunks
            check(kind, t, future.result(30))
        texts_drawn = ["".join(d.char for d in list(drawn) if d.sample == i) for i in range(3)]
        n = min(map(len, texts_drawn))
        # the 600-character read steps one character at a time beside the samples, so they drew at least that many
        # while it ran (exactly that many when no step ran before the reads came or before the cancel)
        assert n >= 600 and [t[:n] for t in texts_drawn] == m.sample_batch(3, n=n, prime="1. ", seed=5)
    finally:
        engine.close()