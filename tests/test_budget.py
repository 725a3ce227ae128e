"""The --time budget rule: its tables pinned by the numbers in docs/quality.md, and the speed it measures."""
import re

import pytest

import charrnn
from charrnn import budget, checkpoint
from charrnn.budget import RELATIVE_SPEED, choose, params_of
from charrnn.config import TrainConfig

from conftest import CORPORA, ROOT

QUALITY = (ROOT / "docs" / "quality.md").read_text()


def documented(name: str) -> list[tuple]:
    """The rows (limit, what, ...) of a table in docs/quality.md between <!-- name --> markers."""
    block = QUALITY.split(f"<!-- {name} -->")[1].split(f"<!-- /{name} -->")[0]
    rows = []
    for line in block.strip().splitlines()[2:]:
        limit, *what = [cell.strip() for cell in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"up to ([\d.]+)(M?)", limit)
        rows.append((float(m.group(1)) * (1e6 if m.group(2) else 1) if m else float("inf"), *what))
    return rows


def machine(rate_512: float):
    """A stub for measuring: a machine that trains a GRU-512 at ``rate_512`` chars/s."""
    return lambda hidden: rate_512 * RELATIVE_SPEED[hidden]


def test_the_documented_sizes_are_what_the_rule_chooses():
    rows = documented("budget-sizes")
    assert [w for _, w in rows] == ["GRU-128, learning rate 4e-3", "GRU-256", "GRU-512", "GRU-768", "GRU-1024"]
    assert len(rows) == len(budget.BUDGET_SIZES)
    lower = 0.0
    for limit, what in rows:
        hidden = int(re.search(r"GRU-(\d+)", what).group(1))
        for reach in (lower * 1.01, min(limit * 0.99, lower * 1.01 + 1e9)):
            if reach <= 0:
                continue
            seconds = 600 if reach > 1.5e6 else 30  # the rate makes the reach; the seconds only the first guess
            got = choose(seconds, 10**9, 65, machine(reach / seconds))
            assert got.hidden == hidden and got.reach == pytest.approx(reach), (reach, what)
            assert ("lr" in got.train) == ("learning rate" in what)
        lower = limit


def test_the_documented_regularisation_is_what_the_exposure_gives():
    rows = [(limit, float(d), float(w)) for limit, d, w in documented("budget-regularisation")]
    assert rows == list(budget.EXPOSURE_REGULARISATION)
    rate, seconds, params = 24_500.0, 300, params_of(512, 65)  # five minutes of a GRU-512 here: 7.35M characters
    lower = 0.0
    for limit, dropout, weight_drop in rows:
        for exposure in (lower + 0.01, min(limit - 0.01, lower + 50)):
            # a GRU-512 reading rate x seconds characters of a text of n: exposure = (rate x seconds / n) x params / n
            n = int(round((rate * seconds * params / exposure) ** 0.5))
            got = choose(seconds, n, 65, machine(rate))
            assert got.hidden == 512 and got.exposure == pytest.approx(exposure, rel=1e-4)
            assert (got.train["dropout"], got.train["weight_drop"]) == (dropout, weight_drop), exposure
        lower = limit


def test_a_slower_machine_chooses_as_for_fewer_passes():
    fast = choose(600, 903_468, 65, machine(24_500))  # ten minutes here
    slow = choose(600, 903_468, 65, machine(12_250))  # ten minutes at half the speed
    five = choose(300, 903_468, 65, machine(24_500))  # five minutes here
    assert (fast.hidden, slow.hidden) == (768, 512)
    same = lambda c: (c.hidden, {k: v for k, v in c.train.items() if k != "patience"})  # noqa: E731
    assert slow.passes == pytest.approx(five.passes) and same(slow) == same(five)
    assert slow.passes < fast.passes * RELATIVE_SPEED[512] / RELATIVE_SPEED[768]
    assert fast.train["patience"] == slow.train["patience"] == "150s"  # a quarter of the budget


def test_a_run_measures_its_machine_before_choosing(tmp_path, monkeypatch):
    """End to end: the rate the run measures (stubbed to a fast or a slow machine) decides the model."""
    seen = []

    def stub(rate):
        monkeypatch.setattr(budget, "measure_rate", lambda by, vocab_size, hidden, batch, seq_len, steps=2:
                            rate * RELATIVE_SPEED[hidden] / RELATIVE_SPEED[512] if hidden != 512 else rate)

    for name, rate, hidden in (("slow", 1_000, 128), ("fast", 5e6, 768)):
        stub(rate)
        notes = []
        out = tmp_path / f"{name}.npz"
        charrnn.train(CORPORA / "home.txt", out, time="3s", workers=1, on_note=notes.append, steps=2)
        note = next(n for n in notes if n.startswith("note: --time 3s"))
        assert f"gru of {hidden} units" in note and f"~{rate * RELATIVE_SPEED[hidden] / RELATIVE_SPEED[512]:,.0f}" \
               " chars/s" in note
        ck = checkpoint.load(str(out))
        assert ck.model_config.hidden == hidden and ck.train_config.patience == "0.75s"
        seen.append((ck.train_config.dropout, ck.train_config.weight_drop))
    assert seen[1] >= seen[0] and seen[1] != (0, 0)  # the faster machine reads the little text more often


def test_the_measurement_is_a_real_rate(tmp_path):
    from charrnn.gradients import InProcess

    rate = budget.measure_rate(InProcess(), 65, 64, 8, 16)
    assert 1_000 < rate < 1e8


def test_flags_win_over_the_budget(cli, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 250)
    r = cli("train", corpus, "--time", "1s", "--dropout", "0.05", "--weight-drop", "0.1", "--patience", "3",
            "-o", tmp_path / "a.npz")
    assert r.exit_code == 0, r.stderr
    tcfg = checkpoint.load(str(tmp_path / "a.npz")).train_config
    assert (tcfg.dropout, tcfg.weight_drop, tcfg.patience) == (0.05, 0.1, "3")
    assert ", dropout" not in r.stderr and ", weight-drop" not in r.stderr and "(pass --hidden to choose)" in r.stderr


def test_a_budget_measures_and_trains_on_its_own_batch_unless_batch_is_given(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 250)
    for given, want in ((None, budget.BATCH), (16, 16)):
        measured = []
        monkeypatch.setattr(budget, "measure_rate", lambda by, vocab_size, hidden, batch, seq_len, steps=2:
                            measured.append(batch) or 50_000.0)
        flags = {} if given is None else {"batch": given}
        out = tmp_path / f"b{want}.npz"
        charrnn.train(corpus, out, time="2s", workers=1, steps=2, **flags)
        assert measured and set(measured) == {want}  # the rate that chose the model is the rate of this batch
        assert checkpoint.load(str(out)).train_config.batch == want
    assert budget.BATCH != TrainConfig().batch  # so a budget run and a plain run differ here
