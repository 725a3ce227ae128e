"""A model as one self-contained page: page.html with the weights inside, run by its own JavaScript.

The page `charrnn serve` shows works offline when it finds a model in its
``<script id="charrnn-model">`` element: the weights as base64 (float32, or
float16 to halve the size), the configuration, the vocabulary and the card.
Its JavaScript then runs the RNN, LSTM or GRU step and the sampler itself,
with no server and no network (charrnn/page.html).
"""
from __future__ import annotations

import base64
import json
import os
from importlib import resources

import numpy as np

from charrnn.atomic import write_atomically
from charrnn.errors import CharRNNError

MARK = '<script id="charrnn-model" type="application/json">null</script>'


def model_data(model, float16: bool = False) -> dict:
    """The JSON the page reads: config, vocabulary, card, history and every served weight."""
    info = model.info.to_dict()
    info.pop("path", None)
    dtype = np.float16 if float16 else np.float32
    weights = {}
    for name, value in model.weights().items():
        arr = np.ascontiguousarray(value, dtype=dtype)
        weights[name] = {"shape": list(arr.shape), "dtype": arr.dtype.name,
                         "data": base64.b64encode(arr.astype(arr.dtype.newbyteorder("<")).tobytes()).decode("ascii")}
    name = os.path.splitext(os.path.basename(model.path))[0] if model.path else "model"
    return {"name": name, "card": {"name": name, **info}, "history": model.history, "weights": weights}


def write_page(model, out: str, float16: bool = False) -> int:
    """Write the page for ``model`` to ``out`` atomically; returns its size in bytes."""
    page = resources.files("charrnn").joinpath("page.html").read_text(encoding="utf-8")
    data = json.dumps(model_data(model, float16), ensure_ascii=True).replace("</", "<\\/")
    html = page.replace(MARK, MARK.replace(">null<", f">{data}<"), 1).encode("utf-8")
    try:
        write_atomically(out, lambda f: f.write(html))
    except OSError as e:
        raise CharRNNError(f"could not write {out}: {e.strerror or e}") from None
    return len(html)
