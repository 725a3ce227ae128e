"""Issue 14: the public Python API, the CLI as its face, one place per numeric choice, and the two defects."""
import ast
import json
import subprocess
import sys

import numpy as np
import pytest

import charrnn
from charrnn import numerics

from conftest import CORPORA, ROOT
from test_generation import names_model  # noqa: F401  (a records model trained on names)

HOME = str(CORPORA / "home.txt")
PUBLIC = {"CharRNNError", "Model", "ModelInfo", "PerChar", "Prediction", "Score", "StepEvent", "TrainOptions",
          "TrainResult", "load", "train", "__version__"}


# ---------------------------------------------------------------- the two defects


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mgru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_with_its_defaults_passes_for_seeds_0_to_9(cli, cell, layers):
    for seed in range(10):
        r = cli("gradcheck", "--cell", cell, "--layers", layers, "--seed", seed, "--json")
        assert r.exit_code == 0, (seed, r.stdout)
        assert json.loads(r.stdout)["passed"] is True


def test_beam_search_on_a_records_model_gives_whole_records(cli, names_model):  # noqa: F811
    r = cli("sample", "-m", names_model, "--beam", 4, "--num-samples", 3, "-n", 40)
    assert r.exit_code == 0, r.stderr
    records = r.stdout.split("\n")
    assert records[-1] == "" and len(records) == 4  # three records, each ending at its newline
    known = {"anna", "bob", "carla", "dave", "emma", "fred", "gina", "hugo", "ivy", "jack"}
    assert set(records[:3]) <= known and len(set(records[:3])) == 3
    j = [json.loads(l) for l in cli("sample", "-m", names_model, "--beam", 4, "--json").stdout.splitlines()]
    assert len(j) == 1 and j[0]["text"].endswith("\n") and j[0]["text"].count("\n") == 1


# ---------------------------------------------------------------- the public API


def test_all_lists_exactly_the_public_surface():
    assert set(charrnn.__all__) == PUBLIC
    for name in charrnn.__all__:
        assert getattr(charrnn, name) is not None


def test_import_charrnn_loads_nothing_heavy():
    code = "import sys, charrnn; print(sorted(m for m in ('numpy', 'typer', 'rich', 'tqdm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_train_in_memory_with_callbacks_then_use_the_model(tmp_path):
    steps, vals = [], []
    result = charrnn.train(HOME, steps=60, hidden=16, lr=0.01, eval_every=20, val_frac=0.2,
                           on_step=steps.append, on_validation=vals.append)
    assert isinstance(result, charrnn.TrainResult) and result.steps == 60 and result.checkpoint is None
    assert [e.step for e in steps] == list(range(1, 61)) and [e.step for e in vals] == [20, 40, 60]
    assert all(e.val_nats is not None for e in vals) and result.val_nats == vals[-1].val_nats
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere we can see
    m = result.model
    text = m.sample(30, seed=3)
    assert len(text) == 30 and set(text) <= set(m.vocab) and m.sample(30, seed=3) == text
    assert "".join(m.stream(30, seed=3)) == text


def test_train_writes_the_same_checkpoint_the_cli_would(tmp_path, cli):
    out = tmp_path / "api.npz"
    result = charrnn.train([HOME], out, steps=20, hidden=8, seed=5)
    cli("train", HOME, "--steps", 20, "--hidden", 8, "--seed", 5, "-o", tmp_path / "cli.npz", "-q")
    a, b = charrnn.load(out), charrnn.load(tmp_path / "cli.npz")
    for k, v in a.checkpoint.params.items():
        np.testing.assert_array_equal(v, b.checkpoint.params[k])
    assert result.checkpoint == str(out) and a.info.steps == 20


def test_resume_through_the_api_continues_the_run(tmp_path):
    out = tmp_path / "m.npz"
    charrnn.train(HOME, out, steps=10, hidden=8)
    again = charrnn.train(HOME, out, steps=25, resume=True)
    assert again.steps == 25 and again.run_steps == 15


def test_unknown_option_names_are_refused_with_the_known_ones():
    with pytest.raises(charrnn.CharRNNError, match="unknown training option.*hiden.*known: .*hidden"):
        charrnn.train(HOME, hiden=8)


def test_model_methods_agree_with_the_cli(cli, home_model):
    m = charrnn.load(home_model)
    rows = [json.loads(l) for l in cli("probs", "-m", home_model, "HOM", "--json").stdout.splitlines()]
    preds = m.probs("HOM", 5)
    assert [p.next[0][0] for p in preds] == [r["next"][0]["char"] for r in rows] == ["O", "M", "E"]
    score = m.score("HOME\nHOME\n")
    report = json.loads(cli("eval", "-m", home_model, "-", "--json", input="HOME\nHOME\n").stdout)
    assert score.to_dict() == pytest.approx(report)
    assert score.bits_per_char == pytest.approx(score.nats_per_char / np.log(2))
    pc = m.per_char("HOME\nHOME\n")
    assert pc.chars == "OME\nHOME\n" and pc.nats.mean() == pytest.approx(score.nats_per_char, rel=1e-5, abs=1e-6)
    info = json.loads(cli("info", home_model, "--json").stdout)
    assert m.info.to_dict() == info


def test_model_errors_are_charrnn_errors(home_model):
    m = charrnn.load(home_model)
    with pytest.raises(charrnn.CharRNNError, match="not in the model's vocabulary"):
        m.sample(5, prime="XYZ")
    with pytest.raises(charrnn.CharRNNError, match="never ends"):
        m.sample(0)
    with pytest.raises(charrnn.CharRNNError, match="nothing to score"):
        m.score("xyz")


# ---------------------------------------------------------------- one place for each numeric choice


def test_softmax_and_log_softmax_agree_and_survive_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    p = numerics.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(numerics.log_softmax(z)), p, atol=1e-300)
    assert np.isfinite(numerics.log_softmax(z)).all() and numerics.safe_log(0.0) > -700


def test_top_k_breaks_ties_toward_the_lower_id():
    assert numerics.top_k(np.array([0.2, 0.4, 0.2, 0.2]), 3).tolist() == [1, 0, 2]
    assert numerics.nats_and_bits(np.log(2)) == "0.6931 nats/char (1.0000 bits/char)"
    assert numerics.nats_and_bits(None) == "—"


# ---------------------------------------------------------------- the code's shape


def _modules():
    return sorted((ROOT / "charrnn").rglob("*.py"))


def test_no_private_name_crosses_a_module_boundary():
    modules = {path.stem for path in _modules()} - {"__init__", "__main__"}  # every module of the package
    assert {"network", "loop", "cells", "app", "train"} <= modules
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charrnn"):
                found += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_") and a.name[1] != "_"]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in modules):
                found.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert found == []


def test_the_cli_package_has_no_import_cycle():
    """app.py, where the shared helpers live, imports no command module."""
    tree = ast.parse((ROOT / "charrnn" / "cli" / "app.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("charrnn.cli") for m in imported)


def _import_graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports at load time."""
    names = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in _modules()}
    graph = {}
    for name, path in names.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charrnn"):
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module
                         for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in names}
        graph[name] = deps - {name}
    return graph


def test_no_import_cycle_anywhere_in_the_package():
    graph, done, path = _import_graph(), set(), []

    def visit(name):
        assert name not in path, " -> ".join(path[path.index(name):] + [name])
        if name in done:
            return
        path.append(name)
        for dep in sorted(graph.get(name, ())):
            visit(dep)
        path.pop()
        done.add(name)

    assert "charrnn.loop" in graph and "charrnn.cli.train" in graph
    for name in sorted(graph):
        visit(name)
    library = {name: deps for name, deps in graph.items() if not name.startswith(("charrnn.cli", "charrnn.__main__"))}
    assert not any(d.startswith("charrnn.cli") for deps in library.values() for d in deps)  # never the command line


def test_modules_and_functions_stay_small():
    """Modules about 300 lines at most; functions 60, except the cell kernels and typer's option lists."""
    for path in _modules():
        text = path.read_text()
        assert text.count("\n") <= 320, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and path.name not in ("cells.py", "gru_cells.py"):
                first = node.body[0].lineno  # typer commands: count from the body, not the option list
                assert node.end_lineno - first + 1 <= 60, f"{path.name}:{node.name}"


def test_a_model_loaded_or_trained_from_a_path_object_reports_its_path_as_text(tmp_path):
    """charrnn.load and charrnn.train take a pathlib.Path; the model's info keeps the path as a str, which the
    info table (rich markup) needs."""
    from rich.console import Console

    from charrnn.display import info_table

    out = tmp_path / "p.npz"
    trained = charrnn.train(CORPORA / "home.txt", out, steps=2, hidden=8, workers=1).model
    loaded = charrnn.load(out)
    for model in (trained, loaded):
        assert model.path == str(out) and model.info.path == str(out)
        console = Console(width=200, record=True)
        console.print(info_table(model.info.to_dict()))
        assert "p.npz" in console.export_text()
