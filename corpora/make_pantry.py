"""Generate corpora/pantry.txt: a kitchen notebook written by a small grammar.

The text is made here, from word lists written for this project, so it can
be shipped and regenerated freely. It has structure a character model can
learn in a minute: recurring words, numbers with units, capitalised
sentence starts, numbered steps and titled recipes.

    python corpora/make_pantry.py            # writes corpora/pantry.txt
    python corpora/make_pantry.py --recipes 50 --seed 7 -o other.txt
"""
from __future__ import annotations

import argparse
import os
import random

ADJ = ["warm", "cold", "soft", "crisp", "golden", "smoky", "sweet", "bitter", "fresh", "toasted",
       "salted", "creamy", "tender", "spiced", "bright", "dark", "light", "thick", "thin", "wild"]
FOOD = ["flour", "butter", "milk", "honey", "barley", "lentils", "onions", "garlic", "apples", "pears",
        "carrots", "beans", "rice", "oats", "cream", "cheese", "plums", "leeks", "mushrooms", "walnuts",
        "almonds", "raisins", "potatoes", "turnips", "cabbage", "peppers", "tomatoes", "eggs", "sugar", "salt"]
UNIT = ["cups", "spoons", "pinches", "handfuls", "grams", "bowls", "slices", "jars"]
VERB = ["Stir", "Fold", "Whisk", "Chop", "Slice", "Roast", "Simmer", "Mash", "Knead", "Toast",
        "Grate", "Pour", "Sprinkle", "Bake", "Rinse", "Soak", "Crush", "Season", "Braise", "Glaze"]
PLACE = ["into the pot", "over the pan", "onto the tray", "into a bowl", "in the oven", "on a low flame",
         "beside the bread", "under the lid", "through a sieve", "across the board"]
TIME = ["for ten minutes", "for an hour", "until golden", "until soft", "until it smells right",
        "for five minutes", "overnight", "until the edges crisp", "while it is hot", "until smooth"]
DISH = ["pie", "stew", "soup", "loaf", "tart", "porridge", "salad", "pudding", "bake", "broth", "cake", "jam"]
NOTE = ["Serve it warm.", "Keep the rest for tomorrow.", "Grandmother added more salt.",
        "It tastes better on the second day.", "Do not let it burn.", "Share it with the neighbours.",
        "Taste before you season.", "A little lemon helps.", "Eat it by the window.", "Write down what you changed."]


def recipe(rng: random.Random) -> str:
    a, f1, f2 = rng.choice(ADJ), rng.choice(FOOD), rng.choice(FOOD)
    title = f"{a.capitalize()} {f1} and {f2} {rng.choice(DISH)}"
    lines = [f"== {title} ==", f"Serves {rng.randint(2, 8)}. Takes {rng.choice([15, 20, 30, 45, 60, 90])} minutes.", ""]
    lines.append("You need:")
    for _ in range(rng.randint(3, 6)):
        lines.append(f"- {rng.randint(2, 12)} {rng.choice(UNIT)} of {rng.choice(ADJ)} {rng.choice(FOOD)}")
    lines.append("")
    for i in range(1, rng.randint(4, 8)):
        food = rng.choice([f1, f2, rng.choice(FOOD)])
        lines.append(f"{i}. {rng.choice(VERB)} the {rng.choice(ADJ)} {food} {rng.choice(PLACE)} {rng.choice(TIME)}.")
    lines.append("")
    lines.append(f"Note: {rng.choice(NOTE)}")
    return "\n".join(lines) + "\n\n"


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", type=int, default=600, help="how many recipes to write")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the generator")
    ap.add_argument("-o", "--out", default=os.path.join(here, "pantry.txt"), help="file to write")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    text = "".join(recipe(rng) for _ in range(args.recipes))
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {len(text):,} characters to {args.out}")


if __name__ == "__main__":
    main()
