"""A budget times each size on a pool of workers and in one process, and trains the faster way."""
import pytest

import charrnn
from charrnn import budget, checkpoint
from charrnn.gradients import InProcess
from charrnn.workers import available_cores

pytestmark = pytest.mark.skipif(available_cores() < 2, reason="a pool of workers needs two cores")

# A GRU's chars/s on a pool, against a GRU-512's (the EPYC's figures in docs/quality.md). A 3 s budget at
# 530,000 chars/s for a GRU-512 shows a GRU-256 3.7M characters, more than its 3.5M, and a GRU-384 2.9M of its
# 4.0M, or 3.8M at 1.3 times those rates: a GRU-256 either way, small enough to train quickly.
POOL = {128: 5.9, 256: 2.3, 384: 1.84, 512: 1.0, 768: 0.48, 1024: 0.26}
GRU_512 = 530_000


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.txt"
    # 32 streams of 64 fit, so a pool can start, and the text is long enough for a GRU-256 (SMALL_TEXT_256)
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 7000)
    return path


def stub_rates(monkeypatch, here_share: float) -> list:
    """Stub the measurement: one process trains at ``here_share`` times a pool's rate. Returns the (hidden,
    processes, dropout) of each call."""
    calls = []

    def rate(by, vocab_size, size, batch, seq_len, steps=3, dropout=(0.0, 0.0)):
        assert (size.cell, size.layers) == ("gru", 1)  # the text is too short for the layered row
        calls.append((size.hidden, by.size, tuple(dropout)))
        return GRU_512 * POOL[size.hidden] * (here_share if isinstance(by, InProcess) else 1.0)

    monkeypatch.setattr(budget, "measure_rate", rate)
    return calls


def test_a_model_faster_in_one_process_trains_there_and_says_so(corpus, tmp_path, monkeypatch):
    calls = stub_rates(monkeypatch, here_share=1.3)
    notes = []
    out = tmp_path / "m.npz"
    result = charrnn.train(corpus, out, time="3s", steps=2, on_note=notes.append)
    assert (256, 1, (0, 0)) in calls and (256, 2, (0, 0)) in calls  # timed both ways
    assert calls[-1] == (256, 1, (0.1, 0.15))  # then with the dropout it gets (exposure 27), the faster way only
    assert result.workers == 1 and checkpoint.load(str(out)).train_config.one_process
    way = [n for n in notes if "one process" in n]
    here, pool = GRU_512 * POOL[256] * 1.3, GRU_512 * POOL[256]
    assert len(way) == 1 and "gru of 256 units trains faster" in way[0]
    assert f"~{here:,.0f} against ~{pool:,.0f}" in way[0]
    choice = next(n for n in notes if n.startswith("note: --time 3s"))
    assert "gru of 256 units" in choice and f"~{here:,.0f} chars/s" in choice  # the faster rate


def test_a_model_faster_on_the_pool_trains_there(corpus, tmp_path, monkeypatch):
    calls = stub_rates(monkeypatch, here_share=0.7)
    notes = []
    out = tmp_path / "m.npz"
    result = charrnn.train(corpus, out, time="3s", steps=2, on_note=notes.append)
    assert (256, 1, (0, 0)) in calls and result.workers == 2 and calls[-1] == (256, 2, (0.1, 0.15))
    assert not checkpoint.load(str(out)).train_config.one_process
    assert not any("one process" in n for n in notes)


def test_one_fast_timing_in_one_process_does_not_choose_it(corpus, tmp_path, monkeypatch):
    """Each way is timed WAY_ROUNDS times in turn and keeps its median: one process read 1.3 times the pool's
    rate once, then 0.8 times it (as a GRU-512's timings did on the EPYC, where the pool trained faster)."""
    from charrnn import trainer

    reads = []

    def rate(by, vocab_size, size, batch, seq_len, steps=3, dropout=(0.0, 0.0)):
        here = isinstance(by, InProcess)
        reads.append((size.hidden, here))
        first = sum(1 for h, w in reads if (h, w) == (size.hidden, True)) == 1
        return GRU_512 * POOL[size.hidden] * ((1.3 if first else 0.8) if here else 1.0)

    monkeypatch.setattr(budget, "measure_rate", rate)
    result = charrnn.train(corpus, tmp_path / "m.npz", time="3s", steps=2)
    timed_256 = [here for h, here in reads if h == 256]
    assert timed_256[:2 * trainer.WAY_ROUNDS] == [False, True] * trainer.WAY_ROUNDS  # in turn
    assert result.workers == 2 and not checkpoint.load(str(tmp_path / "m.npz")).train_config.one_process


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_workers_given_are_not_second_guessed(corpus, tmp_path, monkeypatch, how):
    calls = stub_rates(monkeypatch, here_share=1.3)
    if how == "environment":
        monkeypatch.setenv("CHARRNN_WORKERS", "2")
    flags = {"workers": 2} if how == "flag" else {}
    result = charrnn.train(corpus, tmp_path / "m.npz", time="3s", steps=2, **flags)
    assert calls and all(n == 2 for _, n, _ in calls) and result.workers == 2


def test_a_resumed_run_goes_on_the_way_its_budget_chose_unless_told(corpus, tmp_path, monkeypatch):
    stub_rates(monkeypatch, here_share=1.3)
    out = tmp_path / "m.npz"
    charrnn.train(corpus, out, time="3s", steps=2)
    assert charrnn.train(corpus, out, resume=True, steps=3).workers == 1
    assert charrnn.train(corpus, out, resume=True, steps=4, workers=2).workers == 2
    assert checkpoint.load(str(out)).train_config.one_process  # what the budget chose stays in the file
