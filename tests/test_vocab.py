import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.errors import CharRNNError
from charrnn.vocab import Vocab, id_dtype, read_corpora, read_text


def test_vocabulary_is_the_sorted_set_of_characters():
    text = "hello, world\n"
    assert Vocab.from_text(text).chars == "".join(sorted(set(text)))


@pytest.mark.parametrize("text", ["HOME\nHOME\n", "naïve café — ünïcödé", "emoji 🙂🚀 and astral 𝄞", "a\u0301e\u0308"])
def test_encode_decode_round_trips(text):
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert v.decode(ids) == text
    assert ids.max() < v.size


@given(st.text(min_size=1, max_size=200))
@settings(max_examples=200, deadline=None)
def test_round_trip_for_any_text(text):
    v = Vocab.from_text(text)
    assert v.chars == "".join(sorted(set(text)))
    assert v.decode(v.encode(text)) == text


def test_ids_use_the_smallest_integer_type():
    assert id_dtype(65) == np.uint8
    assert id_dtype(256) == np.uint8
    assert id_dtype(257) == np.uint16
    assert Vocab.from_text("abc").encode("cab").dtype == np.uint8


def test_unknown_characters_are_an_error_that_names_them():
    v = Vocab.from_text("abc")
    with pytest.raises(CharRNNError, match=r"'z'.*U\+007A"):
        v.encode("abz")
    assert v.encode("abzc", skip_unknown=True).tolist() == [0, 1, 2]
    assert dict(v.unknown("zzq")) == {"z": 2, "q": 1}


def test_invalid_utf8_reports_the_byte_offset(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"hello \xff world")
    with pytest.raises(CharRNNError, match="byte offset 6"):
        read_text(str(p))
    assert read_text(str(p), "replace") == "hello \ufffd world"


def test_each_bad_corpus_is_named(tmp_path):
    good, empty = tmp_path / "good.txt", tmp_path / "empty.txt"
    good.write_text("some text")
    empty.write_text("")
    with pytest.raises(CharRNNError, match="empty.txt: is empty"):
        read_corpora([str(good), str(empty)])
    with pytest.raises(CharRNNError, match="missing.txt: no such file"):
        read_corpora([str(good), str(tmp_path / "missing.txt")])
    with pytest.raises(CharRNNError, match="is a directory"):
        read_corpora([str(tmp_path)])


def test_nul_bytes_warn_but_load(tmp_path):
    p = tmp_path / "bin.txt"
    p.write_bytes(b"ab\x00cd")
    warnings = []
    assert read_corpora([str(p)], warn=warnings.append) == "ab\x00cd"
    assert warnings and "NUL" in warnings[0]
