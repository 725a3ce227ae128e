"""The README's --help examples run as written, and match the commands' own help."""
import os
import re
import subprocess
import sys

import typer

from charrnn.cli import app

from conftest import ROOT


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- help-examples -->")[1].split("<!-- /help-examples -->")[0]
    return [line.strip() for line in block.splitlines() if re.match(r"\s*(charrnn |\S.*\| charrnn )", line)]


def help_examples() -> list[str]:
    group = typer.main.get_command(app)
    found = []
    for name, cmd in group.commands.items():
        doc = cmd.help or ""
        if "Examples:" in doc:
            found += [l.strip() for l in doc.split("Examples:")[1].splitlines() if l.strip()]
    return found


def test_every_command_has_examples_and_the_readme_lists_them_all():
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        assert "Examples:" in (cmd.help or ""), name
    assert sorted(readme_examples()) == sorted(help_examples())


def test_every_readme_help_example_runs(tmp_path):
    os.symlink(ROOT / "corpora", tmp_path / "corpora")
    script = f'charrnn() {{ "{sys.executable}" -m charrnn "$@"; }}\nset -o pipefail\n'
    for line in readme_examples():
        r = subprocess.run(["bash", "-c", script + line], cwd=tmp_path, capture_output=True, timeout=300)
        assert r.returncode == 0, (line, r.stderr.decode()[-500:])


def test_top_level_help_lists_every_command_with_one_line(runner):
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for name in typer.main.get_command(app).commands:
        assert re.search(rf"│ {name}\s+\S", r.stdout), name


def test_the_readme_python_api_examples_run(tmp_path):
    """The "Python API" section's code blocks, run in order in one interpreter from a folder with corpora/."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- api-examples -->")[1].split("<!-- /api-examples -->")[0]
    code = "\n".join(part.split("```")[0] for part in block.split("```python")[1:])
    assert "charrnn.train(" in code and "charrnn.load(" in code
    os.symlink(ROOT / "corpora", tmp_path / "corpora")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("300 ") and lines[1].startswith("<charrnn.Model gru 1x32")
    assert (tmp_path / "home.npz").exists() and not (tmp_path / "model.npz").exists()
