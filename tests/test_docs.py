"""The README and docs/ are true: every sh and python example in them runs, and the --help examples are listed."""
import os
import re
import subprocess
import sys

import pytest
import typer

from charrnn.cli import app

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = "pip() { :; }\nset -eo pipefail\n"  # pip: CI installs


def blocks(language: str) -> list[tuple[str, int, str]]:
    """(file name, line, code) of every fenced block of ``language`` in the README and docs/."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for m in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
            found.append((path.name, text[: m.start()].count("\n") + 1, m.group(1)))
    return found


def _sandbox(tmp_path):
    """The environment of an example: corpora/ beside it, its own cache, and ``charrnn`` on PATH as an executable
    that becomes this interpreter (so ``cmd & pid=$!`` is the process itself, as with the installed script)."""
    os.symlink(ROOT / "corpora", tmp_path / "corpora")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    script = bin_dir / "charrnn"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m charrnn "$@"\n')
    script.chmod(0o755)
    return {**os.environ, "CHARRNN_CACHE_DIR": str(tmp_path / ".cache"),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("name,line,code", [b for b in blocks("sh") if "pytest" not in b[2]],
                         ids=[f"{b[0]}:{b[1]}" for b in blocks("sh") if "pytest" not in b[2]])
def test_every_shell_example_runs(tmp_path, name, line, code):
    """Each block runs as written, as one bash script in a fresh folder holding corpora/.

    (The block that runs the test suite itself is left out: it is what CI runs.)
    """
    r = subprocess.run(["bash", "-c", SHELL + code], cwd=tmp_path, capture_output=True, env=_sandbox(tmp_path),
                       timeout=600)
    assert r.returncode == 0, (name, line, r.stderr.decode()[-1500:])


PYTHON_FILES = sorted({name for name, _, _ in blocks("python")})


@pytest.mark.parametrize("name", PYTHON_FILES)
def test_every_python_example_runs(tmp_path, name):
    """A file's python blocks run in order in one interpreter (a later block may use an earlier one's names)."""
    code = "\n".join(c for n, _, c in blocks("python") if n == name)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env=_sandbox(tmp_path), timeout=600)
    assert r.returncode == 0, (name, r.stderr[-2000:])
    if name == "README.md":
        lines = r.stdout.splitlines()
        assert lines[0].startswith("300 ") and lines[1].startswith("<charrnn.Model gru 1x32")
        assert (tmp_path / "home.npz").exists() and not (tmp_path / "model.npz").exists()


def help_examples() -> list[str]:
    group = typer.main.get_command(app)
    found = []
    for cmd in group.commands.values():
        doc = cmd.help or ""
        if "Examples:" in doc:
            found += [line.strip() for line in doc.split("Examples:")[1].splitlines() if line.strip()]
    return found


def test_every_command_has_examples_and_the_cli_doc_lists_them_all():
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        assert "Examples:" in (cmd.help or ""), name
    text = (ROOT / "docs" / "cli.md").read_text()
    block = text.split("<!-- help-examples -->")[1].split("<!-- /help-examples -->")[0]
    listed = [line.strip() for line in block.splitlines() if re.match(r"\s*(charrnn |\S.*\| charrnn )", line)]
    assert sorted(listed) == sorted(help_examples())


def test_top_level_help_lists_every_command_with_one_line(runner):
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for name in typer.main.get_command(app).commands:
        assert re.search(rf"│ {name}\s+\S", r.stdout), name


def test_the_readme_is_short_and_links_only_to_docs_that_exist():
    text = (ROOT / "README.md").read_text()
    assert text.count("\n") <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link
    for path in DOCS:
        for word in ("earlier session", "this session", "until now", "this round", "was slower that hour"):
            assert word not in path.read_text(), (path.name, word)
