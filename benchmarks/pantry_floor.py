"""How far a model is from the best loss possible on the recipes, and where the difference lies.

corpora/pantry.txt is written by a grammar (corpora/make_pantry.py) that
draws every word from a list, uniformly. So the true probability of any
text it wrote is known: the product of the probabilities of its choices.
Its negative log over the characters is the *floor*, the loss of the
generator itself, which no model beats on average. This script scores the
last 10% of the corpus (the held-out text of benchmarks/quality.py), or
another text the grammar wrote, and with a model compares the model's
per-character losses (``charrnn.load(model).per_char``) with the generator's,
part by part:

    python benchmarks/pantry_floor.py                      # the floor alone
    python benchmarks/pantry_floor.py model.npz            # and the model's losses, part by part
    python benchmarks/pantry_floor.py model.npz --text held.txt

Only whole recipes are counted (the held-out text starts inside one).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "corpora"))

import make_pantry as grammar  # noqa: E402

sys.path.insert(0, ROOT)
import charrnn  # noqa: E402

PARTS = ("title", "serves", "ingredients", "step numbers", "step foods", "rest of steps", "note",
         "how many lines")
TIME_START = r"(?:for|until|overnight|while)"
STEP = re.compile(rf"(\d+)\. (\w+) the (\w+) (\w+) (.+?) ({TIME_START}.*)\.")


class NotTheGrammar(ValueError):
    """The text is not one make_pantry.py writes."""


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _member(word: str, words: list[str], what: str) -> None:
    if word not in words:
        raise NotTheGrammar(f"{word!r} is not one of the grammar's {what}")


def recipe_nats(lines: list[str], offsets: list[int]) -> list[tuple[str, int, int, float]]:
    """(part, start, end, the generator's nats) of one recipe's pieces; ``offsets`` are its lines' starts."""
    L, out = math.log, []
    title = re.fullmatch(r"== (\w+) (\w+) and (\w+) (\w+) ==", lines[0])
    if not title:
        raise NotTheGrammar(f"not a recipe title: {lines[0]!r}")
    adj, f1, f2, dish = title.groups()
    for w, ws, what in ((adj.lower(), grammar.ADJ, "adjectives"), (f1, grammar.FOOD, "foods"),
                        (f2, grammar.FOOD, "foods"), (dish, grammar.DISH, "dishes")):
        _member(w, ws, what)
    out.append(("title", offsets[0], offsets[1], L(20) + 2 * L(30) + L(12)))
    out.append(("serves", offsets[1], offsets[2], L(7) + L(6)))
    i = 4  # after the blank line and "You need:"
    while lines[i].startswith("- "):
        m = re.fullmatch(r"- (\d+) (\w+) of (\w+) (\w+)", lines[i])
        if not m:
            raise NotTheGrammar(f"not an ingredient: {lines[i]!r}")
        for w, ws, what in ((m.group(2), grammar.UNIT, "units"), (m.group(3), grammar.ADJ, "adjectives"),
                            (m.group(4), grammar.FOOD, "foods")):
            _member(w, ws, what)
        out.append(("ingredients", offsets[i] + 1, offsets[i + 1], L(11) + L(8) + L(20) + L(30)))
        i += 1
    n = i - 4  # 3 to 6 ingredients, uniformly: after the k-th, go on with probability (6 - k) / (7 - k)
    for k in range(1, n + 1):
        p = 1.0 if k < 3 else ((6 - k) / (7 - k) if k < n else 1 / (7 - k))
        at = offsets[4 + k]  # the first character after ingredient k: "-" or the blank line's newline
        out.append(("how many lines", at, at + 1, -L(p)))
    i += 1
    first = i
    while i < len(lines) and (step := STEP.fullmatch(lines[i])):
        num, verb, adj, food, place, when = step.groups()
        if int(num) != i - first + 1:
            raise NotTheGrammar(f"step {num} where step {i - first + 1} was due")
        for w, ws, what in ((verb, grammar.VERB, "verbs"), (adj, grammar.ADJ, "adjectives"),
                            (food, grammar.FOOD, "foods"), (place, grammar.PLACE, "places"),
                            (when, grammar.TIME, "times")):
            _member(w, ws, what)
        k = i - first + 1  # 3 to 7 steps, uniformly: after step k, go on with probability (7 - k) / (8 - k)
        p_go_on = 1.0 if k <= 3 else (8 - k) / (9 - k)  # the chance this step came after step k - 1
        food_p = (food == f1) / 3 + (food == f2) / 3 + 1 / 90
        start, line = offsets[i], lines[i]
        food_at = start + line.index(f" {food} ", len(num) + 2) + 1
        out.append(("step numbers", start, start + len(num) + 2, -L(p_go_on) if k > 1 else 0.0))
        out.append(("step foods", food_at, food_at + len(food) + 1, -L(food_p)))
        out.append(("rest of steps", start + len(num) + 2, food_at, 2 * L(20)))
        out.append(("rest of steps", food_at + len(food) + 1, offsets[i + 1], 2 * L(10)))
        i += 1
    steps = i - first
    if not 3 <= steps <= 7:
        raise NotTheGrammar(f"{steps} steps in the recipe at {offsets[0]}")
    out.append(("how many lines", offsets[i], offsets[i] + 1, -L(1 / (8 - steps)) if steps < 7 else 0.0))
    _member(lines[i + 1][len("Note: "):], grammar.NOTE, "notes")
    out.append(("note", offsets[i + 1], offsets[i + 2], L(10)))
    return out


def pieces(text: str) -> tuple[int, int, list[tuple[str, int, int, float]]]:
    """(start, end, pieces) over the whole recipes of ``text``: each piece (part, start, end, generator nats).

    The characters of a recipe not in a piece (its blank lines, "You need:",
    the newline after its last step) cost the generator nothing.
    """
    starts = [m.start() for m in re.finditer(r"(?m)^== ", text)]
    if len(starts) < 2:
        raise NotTheGrammar("fewer than one whole recipe")
    found = []
    for a, b in zip(starts, starts[1:]):  # each recipe ends where the next begins (the last may be cut)
        chunk = text[a:b]
        found += [(part, a + s, a + e, nats) for part, s, e, nats in recipe_nats(chunk.split("\n"),
                                                                                   _line_starts(chunk))]
    return starts[0], starts[-1], found


def model_nats(model: str, text: str) -> list[float]:
    """The model's loss at each character of ``text`` read from its start (the first character has none)."""
    m = charrnn.load(model)
    unknown = set(text) - set(m.vocab)
    if unknown:
        raise SystemExit(f"{model} does not know {sorted(unknown)}: train it on corpora/pantry.txt")
    return [0.0, *m.per_char(text).nats.tolist()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="a checkpoint to compare (optional)")
    ap.add_argument("--text", help="a text the grammar wrote (default: the last 10%% of corpora/pantry.txt)")
    args = ap.parse_args()
    path = args.text or os.path.join(ROOT, "corpora", "pantry.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not args.text:
        text = text[len(text) - len(text) // 10:]
    start, end, found = pieces(text)
    chars = end - start
    gen = {p: sum(n for q, _, _, n in found if q == p) for p in PARTS}
    print(f"{chars:,} characters of whole recipes; the generator's loss (the floor): "
          f"{sum(gen.values()) / chars:.4f} nats/char")
    if not args.model:
        return
    nats = model_nats(args.model, text)
    mod = {p: sum(sum(nats[a:b]) for q, a, b, _ in found if q == p) for p in PARTS}
    total = sum(nats[start:end])
    mod["other"], gen["other"] = total - sum(mod.values()), 0.0
    print(f"the model's loss over them: {total / chars:.4f} nats/char\n")
    print(f"{'part':16s} {'model':>8s} {'generator':>10s} {'difference':>11s}   (nats/char of the whole)")
    for p in (*PARTS, "other"):
        print(f"{p:16s} {mod[p] / chars:8.4f} {gen[p] / chars:10.4f} {(mod[p] - gen[p]) / chars:+11.4f}")


if __name__ == "__main__":
    main()
