"""What a person sees on a real terminal (a pty): the HOME table, the info panel, the heat map, and NO_COLOR."""
import os
import pty
import re
import select
import subprocess
import sys

import pytest

STYLE = re.compile(r"\x1b\[[0-9;]*m")  # any character style
COLOUR = re.compile(r"\x1b\[(3\d|9\d|38;5;\d+|48;5;\d+)m")  # a foreground or background colour


def on_terminal(args, no_color: bool, timeout: float = 60) -> str:
    """Run ``python -m charrnn ARGS`` with stdout and stderr on a pty; everything it wrote, as text."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    if no_color:
        env["NO_COLOR"] = "1"
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("the command went quiet on the terminal")
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=timeout) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")


@pytest.mark.parametrize("no_color", [False, True])
def test_the_home_table_on_a_terminal(home_model, no_color):
    out = on_terminal(["probs", "-m", home_model, "HOM"], no_color)
    text = STYLE.sub("", out)
    assert "next-character probabilities" in text and "┃ after ┃" in text and "{" not in text  # a table, not JSON
    plain = [line for line in text.splitlines() if re.match(r"│\s+\d+\s+│", line)]
    assert [r.split("│")[2].strip() for r in plain] == ["H", "O", "M"]
    assert [r.split("│")[4].split()[0] for r in plain] == ["O", "M", "E"] and all("█" in r for r in plain)
    assert bool(COLOUR.search(out)) is not no_color


@pytest.mark.parametrize("no_color", [False, True])
def test_the_info_panel_on_a_terminal(home_model, no_color):
    out = on_terminal(["info", home_model], no_color)
    text = STYLE.sub("", out)
    assert text.lstrip().startswith("╭") and "charrnn checkpoint" in text and "format version" in text
    assert "vocabulary" in text and not text.lstrip().startswith("{")
    assert "\x1b[1m" in out and not COLOUR.search(out)  # bold labels; the panel uses no colour either way


@pytest.mark.parametrize("no_color", [False, True])
def test_the_heat_map_shades_each_character_unless_no_color(home_model, no_color):
    args = ["sample", "-m", home_model, "--prime", "HOM", "-n", 10, "--seed", 1, "--show-probs"]
    out = on_terminal(args, no_color)
    plain = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args[:-1])], capture_output=True,
                           text=True).stdout
    if no_color:
        assert "(NO_COLOR is set: no confidence colours)" in out and not COLOUR.search(out)
        assert plain in out
    else:
        assert "model's probability of each character" in out
        shaded = re.findall(r"\x1b\[48;5;(\d+)m\x1b\[38;5;16m(.)\x1b\[0m", out)
        assert "".join(ch for _, ch in shaded) == plain[len("HOM"):].replace("\n", "")
        assert {int(c) for c, _ in shaded} <= {196, 208, 220, 148, 46}
