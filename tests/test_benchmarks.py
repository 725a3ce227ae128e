"""The benchmark scripts' own machinery, where a bug would silently skew a published figure."""
import filecmp

from benchmarks.quality import curve_at, train_watched

from conftest import CORPORA


def test_the_watcher_keeps_the_final_save(tmp_path):
    # no validation pass inside the run, so the only save is the final one, moments before training exits
    out = str(tmp_path / "m.npz")
    metrics, copies = train_watched(str(CORPORA / "home.txt"), out, ["--hidden", "8", "--eval-every", "1000000"], "2")
    assert metrics["stopped_by"] == "time"
    assert copies and filecmp.cmp(copies[-1], out, shallow=False)


def test_curve_at_reads_the_last_point_at_or_before_a_mark():
    curve = [[10.0, 2.0], [30.0, 1.8], [61.0, 1.7]]
    assert [curve_at(curve, m) for m in (5, 30, 60, 300)] == [None, 1.8, 1.8, 1.7]
