"""Generate records with a long-range dependency: a key repeated after a gap.

Each line is ``K:<G random lowercase letters>=K``: an upper-case key, a colon,
G letters of noise, an equals sign, and the key again. A model can only
predict the character after ``=`` by remembering the key across G+2 steps,
so accuracy there measures how far back a cell can carry information.

    python corpora/make_longrange.py --gap 20 --records 3000 -o gap20.txt
    python corpora/make_longrange.py            # writes corpora/longrange.txt (gap 20)
"""
from __future__ import annotations

import argparse
import os
import random
import string

KEYS = string.ascii_uppercase
NOISE = string.ascii_lowercase


def records(gap: int, n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        key = rng.choice(KEYS)
        lines.append(f"{key}:{''.join(rng.choice(NOISE) for _ in range(gap))}={key}\n")
    return "".join(lines)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gap", type=int, default=20, help="noise characters between the key and its repeat")
    ap.add_argument("--records", type=int, default=2000, help="how many lines")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("-o", "--out", default=os.path.join(here, "longrange.txt"))
    args = ap.parse_args()
    text = records(args.gap, args.records, args.seed)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.records} records with gap {args.gap} ({len(text):,} characters) to {args.out}")


if __name__ == "__main__":
    main()
