"""The text a Model scores, as known ids a piece at a time: a string, or files and folders read as ``train`` reads them.

Reading in pieces keeps memory bounded whatever the size of the files, and
counting the characters outside the vocabulary as they go by lets ``eval``
report them as it does for a string.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Iterator, Sequence

import numpy as np

from charrnn.corpus import PIECE, code_points, resolve
from charrnn.vocab import Vocab


def known_id_pieces(vocab: Vocab, text, unknown: Counter, glob: Sequence[str] | None = None,
                    encoding_errors: str = "strict") -> Iterator[np.ndarray]:
    """The ids (n,) of the characters of ``text`` that ``vocab`` knows, a piece of at most PIECE characters at
    a time. ``text`` is the text (a str) or files and folders (an os.PathLike or a list of them; ``glob``
    chooses a folder's files). Characters outside the vocabulary are counted into ``unknown`` and skipped."""
    if isinstance(text, str):
        for i in range(0, len(text), PIECE):
            unknown.update(vocab.unknown(text[i : i + PIECE]))
            yield vocab.encode(text[i : i + PIECE], skip_unknown=True)
        return
    paths = [os.fspath(text)] if isinstance(text, os.PathLike) else [os.fspath(t) for t in text]
    for source in resolve(paths, glob):
        for cps in code_points(source, encoding_errors):
            ids, missing = vocab.map_code_points(cps)
            if len(missing):
                values, counts = np.unique(missing, return_counts=True)
                unknown.update({chr(v): c for v, c in zip(values.tolist(), counts.tolist())})
            yield ids


def size_of(text) -> int:
    """The characters of a str, or the bytes in the files named (an estimate of their characters)."""
    if isinstance(text, str):
        return len(text)
    paths = [text] if isinstance(text, os.PathLike) else text
    total = 0
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            total += sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
        elif os.path.isfile(path):
            total += os.path.getsize(path)
    return total
