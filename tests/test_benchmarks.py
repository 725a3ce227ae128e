"""The benchmark scripts' own machinery, where a bug would silently skew a published figure."""
import filecmp
import json

import pytest

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


def test_curves_interpolate_between_saves_and_leave_gaps_outside_them():
    from benchmarks.curves import at_chars, runs

    points = [(2e6, 1.6), (1e6, 1.8), (4e6, 1.5)]  # out of order on purpose
    assert [at_chars(points, c) for c in (0.5e6, 1e6, 1.5e6, 3e6, 4e6, 5e6)] == [
        None, 1.8, pytest.approx(1.7), pytest.approx(1.55), 1.5, None]
    quality = [{"config": "chosen", "cell": "gru", "hidden": 512, "held_curve": [[30.0, 1.9, 1e6]]}]
    peers = [{"peer": "torch gru 384", "curve": [[30.0, 2e6, 1.7]]}]
    assert runs(quality, peers) == {"charrnn chosen (gru 512)": [(1e6, 1.9)], "torch gru 384": [(2e6, 1.7)]}


def test_quality_runs_on_a_corpus_without_speaker_names_and_compares_budgets(tmp_path):
    """speaker_split divided by zero on any corpus but Shakespeare; --budgets prints the budgets side by side,
    each with the notes of its run (what the budget chose and why)."""
    import subprocess
    import sys

    from conftest import ROOT

    corpus = tmp_path / "c.txt"
    corpus.write_text((CORPORA / "pantry.txt").read_text()[:20000])
    script = str(ROOT / "benchmarks" / "quality.py")
    proc = subprocess.Popen([sys.executable, script, str(corpus), "--budgets", "1s,2s"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3)]  # the heading, then the first budget's row ...
    running = proc.poll() is None  # ... while the second budget still trains
    # the rest through the same buffered reader: communicate() reads the pipe itself and would miss what
    # readline() has already buffered (here the first budget's notes)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=300)
    assert proc.returncode == 0, err[-1000:]
    assert running and lines[2].startswith("1s ")
    lines = [line.rstrip("\n") for line in lines] + out.splitlines()
    rows = [line.split() for line in lines[2:] if not line.startswith(" ")]
    notes = [line.strip() for line in lines[2:] if line.startswith(" ")]  # each budget's notes, under its row
    assert [row[0] for row in rows] == ["1s", "2s"] and rows[0][1] == "gru-128"
    assert [n.split(":")[1] for n in notes if n.startswith("note: --time")] == [" --time 1s", " --time 2s"], out
    assert all("gru of 128 units" in n for n in notes if n.startswith("note: --time"))
    assert float(rows[1][-1]) == pytest.approx(float(rows[1][-2]) - float(rows[0][-1]), abs=2e-4)
    missing = subprocess.run([sys.executable, script, str(tmp_path / "none.txt"), "--budgets", "1s"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.splitlines() == [f"quality.py: error: {tmp_path / 'none.txt'}: no such file; give the path "
                                           "of a UTF-8 text file"]


def test_quality_prints_a_saved_budgets_table_again_naming_a_model_with_skip(tmp_path):
    """--table FILE renders the rows of a --budgets --json run: each budget's model (+skip where every layer
    feeds the output), what it saw, what it served (/T: calibrated to temperature T), its held-out loss and the
    change from the budget before, and its notes."""
    import subprocess
    import sys

    from conftest import ROOT

    row = {"cell": "mgru", "hidden": 512, "layers": 1, "batch": 32, "seq_len": 64, "dropout": 0.1, "weight_drop": 0.15,
           "weight_decay": 0.03, "chars_per_sec": 20000.0, "chars_seen": 6_000_000, "seconds": 300.0,
           "val_seconds": 15.0, "stopped_by": "time", "served": "last", "served_step": 10, "held_out_nats": 1.4442,
           "notes": ["note: --time 5m: mgru of 512 units"]}
    rows = [{"budget": "5m", **row},
            {**row, "budget": "20m", "hidden": 384, "layers": 2, "skip": True, "batch": 16, "seq_len": 256,
             "served": "average", "served_step": 3472, "served_temp": 1.1255, "held_out_nats": 1.4044, "notes": []}]
    saved = tmp_path / "budgets.json"
    saved.write_text(json.dumps(rows))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "ts.txt", "--table", str(saved)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("corpus ts.txt:") and lines[1].split()[:2] == ["budget", "model"]
    assert lines[2].split()[:3] == ["5m", "mgru-512", "32x64"] and lines[2].split()[-1] == "1.4442"
    assert lines[3].strip() == "note: --time 5m: mgru of 512 units"
    assert lines[4].split()[:3] == ["20m", "mgru-2x384+skip", "16x256"]
    assert lines[4].split()[-3:] == ["average@3472/1.13", "1.4044", "-0.0398"] and len(lines) == 5  # calibrated


RECIPE = """== Warm flour and honey pie ==
Serves 4. Takes 30 minutes.

You need:
- 2 cups of cold milk
- 11 jars of sweet oats
- 5 grams of wild salt

1. Stir the warm flour into the pot for ten minutes.
2. Fold the soft honey over the pan until golden.
3. Toast the dark rice in the oven overnight.

Note: Serve it warm.

"""


LONGER = RECIPE.replace("- 5 grams of wild salt\n", "- 5 grams of wild salt\n- 3 bowls of thin pears\n").replace(
    "overnight.\n", "overnight.\n4. Bake the crisp honey on a low flame until soft.\n"
                    "5. Glaze the bright flour beside the bread while it is hot.\n")


@pytest.mark.parametrize("recipe,ingredients,steps,foods", [
    (RECIPE, 3, 3, ["flour ", "honey ", "rice "]),
    (LONGER, 4, 5, ["flour ", "honey ", "rice ", "honey ", "flour "]),
])
def test_the_recipes_floor_is_the_probability_of_each_choice_by_hand(recipe, ingredients, steps, foods):
    """A recipe's probability worked out by hand from make_pantry.py's grammar: whatever the counts, the
    chances of going on or stopping after each line multiply to the uniform draw of how many lines."""
    from math import log

    from benchmarks.pantry_floor import pieces

    text = recipe + RECIPE  # pieces counts the recipes that another one follows
    start, end, found = pieces(text)
    assert (start, end) == (0, len(recipe))
    others = sum(f not in ("flour ", "honey ") for f in foods)
    by_hand = (log(20) + 2 * log(30) + log(12)  # the title: an adjective, two foods, a dish
               + log(7) + log(6)  # serves 2-8, takes one of 6 times
               + ingredients * (log(11) + log(8) + log(20) + log(30)) + log(4)  # of 3-6 ingredients
               + steps * (2 * log(20) + 2 * log(10)) + log(5)  # of 3-7 steps: verb, adjective, place, time
               - (steps - others) * log(1 / 3 + 1 / 90) - others * log(1 / 90)  # the title's foods, or another
               + log(10))  # the note
    assert sum(n for _, _, _, n in found) == pytest.approx(by_hand)
    assert [text[a:b] for part, a, b, _ in found if part == "step foods"] == foods


def test_the_floor_refuses_a_text_the_grammar_did_not_write():
    from benchmarks.pantry_floor import NotTheGrammar, pieces

    with pytest.raises(NotTheGrammar, match="'bread' is not one of the grammar's foods"):
        pieces(RECIPE.replace("sweet oats", "sweet bread") * 2)
    with pytest.raises(NotTheGrammar, match="step 3 where step 2 was due"):
        pieces(RECIPE.replace("2. Fold", "3. Fold") * 2)


def test_timing_noise_summarises_every_timing_it_made():
    import json
    import subprocess
    import sys

    from conftest import ROOT

    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "timing_noise.py"), "--hidden", "16", "--seconds",
                        "0.5", "--batch", "4", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["timings"] == len(d["rates"]) >= 2
    assert d["min"] == min(d["rates"]) < d["max"] == max(d["rates"]) and d["min"] <= d["median"] <= d["max"]


def test_cell_cost_times_every_cell_against_the_first():
    import subprocess
    import sys

    from conftest import ROOT

    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cell_cost.py"), "--cells", "gru,mgru,lstm",
                        "--hidden", "16", "--batch", "4", "--rounds", "3"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["gru-16", "mgru-16", "lstm-16"]
    assert rows[0][3] == "1.00" and all(float(row[1]) > 0 for row in rows)


def test_calibration_scores_the_served_weights_at_each_temperature_and_studies_kept_copies(tmp_path, pantry_model):
    """At temperature 1 the held-out column is `charrnn eval` of the file on the corpus's last 10%; --copies prints
    one JSON line per kept checkpoint, its weights against their average."""
    import shutil
    import subprocess
    import sys

    from conftest import ROOT, run_cmd

    script = str(ROOT / "benchmarks" / "calibration.py")
    corpus = CORPORA / "pantry.txt"
    text = corpus.read_text()
    (tmp_path / "held.txt").write_text(text[len(text) - len(text) // 10:])
    r = subprocess.run([sys.executable, script, pantry_model, str(corpus), "--temps", "1,1.3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["temp", "validation", "held-out"] and len(lines) == 5
    temp, _, held = lines[2].split()
    scored = json.loads(run_cmd(["eval", "-m", pantry_model, tmp_path / "held.txt", "--json"]).stdout)
    assert temp == "1.000" and float(held) == pytest.approx(scored["nats_per_char"], abs=6e-5)
    assert lines[3].split()[0] == "1.300" and lines[4].startswith("best: validation at ")
    (tmp_path / "copies").mkdir()
    shutil.copyfile(pantry_model, tmp_path / "copies" / "000060.npz")
    r = subprocess.run([sys.executable, script, "--copies", str(tmp_path / "copies"), str(corpus)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (row,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert row["step"] == 60 and row["held_average_gain"] == pytest.approx(
        row["held_weights"] - row["held_average"], abs=2e-4)
    assert row["average_gain"] == pytest.approx(row["val_weights"] - row["val_average"], abs=2e-4) and row["se"] > 0
