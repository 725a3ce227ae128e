"""Decoding UTF-8 a chunk at a time: what charrnn.corpus reads every source through.

A character cut between two reads is kept whole (an incremental decoder),
a leading byte-order mark is dropped, and invalid bytes raise naming their
offset or become U+FFFD, as --encoding-errors says. Stretches that are all
ASCII are passed on as bytes; the others keep their UTF-8 bytes beside the
text, so that the common case, ASCII with a few wider characters, is
counted and mapped to ids from the bytes without building code points.
"""
from __future__ import annotations

import codecs
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from charrnn.errors import CharRNNError

BOM = b"\xef\xbb\xbf"


class Decoded(NamedTuple):
    """A stretch of one source's text: its UTF-8 bytes, and its text unless they are all ASCII."""

    raw: bytes  # the bytes these characters were decoded from (exactly, unless ``exact`` is False)
    text: str | None  # None: ``raw`` is ASCII, one byte per character
    exact: bool = True  # False where invalid bytes were replaced by U+FFFD: then only ``text`` is right

    def code_points(self) -> np.ndarray:
        """The characters as code points: uint8 for ASCII, else uint32."""
        if self.text is None:
            return np.frombuffer(self.raw, dtype=np.uint8)
        return np.frombuffer(self.text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def decoded(chunks: Iterable[bytes], name: str, in_folder: bool, errors: str, hasher=None) -> Iterator[Decoded]:
    """The text of one source's ``chunks`` of bytes, named ``name`` in errors (see :func:`code_points`)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    offset, first, last = 0, True, b""
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        if first and chunk.startswith(BOM):
            chunk = chunk[len(BOM):]  # offsets count from after it, as the text does
        first, last = False, chunk[-1:] or last
        held = decoder.getstate()[0]  # the start of a character cut by the last read
        if not held and chunk.isascii():
            yield Decoded(chunk, None)
        else:
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise CharRNNError(f"{name}: invalid UTF-8 at byte offset {offset - len(held) + e.start}; "
                                   f"fix the file or pass --encoding-errors replace") from None
            raw = held + chunk[: len(chunk) - len(decoder.getstate()[0])]
            yield Decoded(raw, text, errors == "strict" or "\ufffd" not in text)
        offset += len(chunk)
    held = decoder.getstate()[0]
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CharRNNError(f"{name}: invalid UTF-8 at byte offset {offset - len(held)}; "
                           f"fix the file or pass --encoding-errors replace") from None
    if tail:
        yield Decoded(held, tail, False)
    if in_folder and last and last != b"\n":
        yield Decoded(b"\n", None)


def wide_characters(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where, code points) of the characters of valid UTF-8 ``raw`` (uint8) that take more than one byte."""
    lead = np.flatnonzero(raw >= 0xC0)
    b0 = raw[lead].astype(np.uint32)
    size = 2 + (b0 >= 0xE0) + (b0 >= 0xF0)  # bytes per character
    cp = b0 & np.where(size == 2, 0x1F, np.where(size == 3, 0x0F, 0x07)).astype(np.uint32)
    for k in (1, 2, 3):
        more = size > k
        cp[more] = (cp[more] << 6) | (raw[lead[more] + k] & 0x3F)
    return lead, cp


