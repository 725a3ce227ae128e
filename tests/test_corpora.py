"""Corpora of any size and folders of files: encode once, memory-map, never hold the text."""
import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn import checkpoint, corpus, corpus_cache
from charrnn.corpus_cache import open_corpus
from charrnn.errors import CharRNNError
from charrnn.vocab import Vocab

from conftest import CORPORA, one_line_error

PANTRY = CORPORA / "pantry.txt"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty cache folder for this test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(folder))
    return folder


def _notes():
    seen = []
    return seen, seen.append


def test_the_cache_gives_the_ids_of_the_text_read_whole(cache, tmp_path):
    text = "naïve café — 🙂 astral 𝄞\n" * 50 + PANTRY.read_text()[:5000]
    (tmp_path / "c.txt").write_text(text)
    built = open_corpus([str(tmp_path / "c.txt")])
    assert built.cache is not None and isinstance(built.ids, corpus_cache.IdsFile)
    again = open_corpus([str(tmp_path / "c.txt")])
    assert again.cache == built.cache  # mapped, not encoded again
    vocab = Vocab.from_text(text)
    for got in (built, again, open_corpus([str(tmp_path / "c.txt")], cache=False)):
        assert got.vocab.chars == vocab.chars
        np.testing.assert_array_equal(got.ids, vocab.encode(text))


def test_a_corpus_read_through_the_cache_trains_the_same_model_bit_for_bit(cli, cache, tmp_path):
    args = ["train", PANTRY, "--steps", 12, "--hidden", 16, "--batch", 8, "--workers", 1, "-q"]
    assert cli(*args, "-o", tmp_path / "whole.npz", "--no-cache").exit_code == 0
    assert not cache.exists() or not list(cache.iterdir())  # --no-cache writes none
    assert cli(*args, "-o", tmp_path / "cached.npz").exit_code == 0  # builds the cache
    assert cli(*args, "-o", tmp_path / "mapped.npz").exit_code == 0  # maps it
    whole = checkpoint.load(str(tmp_path / "whole.npz"))
    for name in ("cached.npz", "mapped.npz"):
        other = checkpoint.load(str(tmp_path / name))
        for k, v in whole.params.items():
            assert v.tobytes() == other.params[k].tobytes(), (name, k)


def test_a_changed_corpus_is_noticed_even_with_the_same_size_and_mtime(cache, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("abcdefgh" * 100)
    first = open_corpus([str(path)])
    st = os.stat(path)
    notes, note = _notes()
    assert open_corpus([str(path)], note=note).cache == first.cache and notes == []
    path.write_text("hgfedcba" * 100)  # same size ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same mtime
    again = open_corpus([str(path)], note=note)
    assert notes == [f"note: {path} changed since it was cached; encoding it again"]
    assert again.vocab.decode(again.ids[:8]) == "hgfedcba"
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, not changed: reused quietly
    notes.clear()
    assert open_corpus([str(path)], note=note).cache == again.cache and notes == []
    path.write_text("abc" * 10)  # another size
    assert open_corpus([str(path)], note=note).vocab.chars == "abc" and len(notes) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "ids"])
def test_a_truncated_or_corrupt_cache_is_rebuilt_with_a_note(cache, tmp_path, damage):
    path = tmp_path / "c.txt"
    path.write_text("the quick brown fox\n" * 200)
    built = open_corpus([str(path)])
    npy = Path(built.cache)
    del built
    data = npy.read_bytes()
    npy.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)),
                     "ids": data[:-100] + bytes([200]) * 100}[damage])
    notes, note = _notes()
    again = open_corpus([str(path)], note=note)
    assert len(notes) == 1 and "is damaged" in notes[0] and "encoding the corpus again" in notes[0]
    assert again.vocab.decode(again.ids) == path.read_text()


def test_a_cache_folder_that_cannot_be_written_trains_from_memory(cli, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "file" / "cache"))
    r = cli("train", PANTRY, "--steps", 2, "--hidden", 8, "-o", tmp_path / "m.npz")
    assert r.exit_code == 0, r.stderr
    assert "note: cannot write the corpus cache in" in r.stderr and "reading the corpus into memory" in r.stderr


def test_a_full_disk_while_the_cache_is_written_leaves_no_partial_cache(cache, tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("some text to cache\n" * 500)

    real = corpus_cache.write_atomically

    def disk_fills(target, write):
        def partly(f):
            f.write(b"\x93NUMPY" + bytes(1000))  # some bytes reach the disk, then it is full
            raise OSError(28, "No space left on device")
        real(target, partly)

    monkeypatch.setattr(corpus_cache, "write_atomically", disk_fills)
    notes, note = _notes()
    got = open_corpus([str(path)], note=note)
    assert got.cache is None and got.vocab.decode(got.ids) == path.read_text()
    assert notes == [f"note: could not write the corpus cache in {cache} (No space left on device); "
                     f"reading the corpus into memory"]
    assert sorted(os.listdir(cache)) == []  # neither a .npy, a .json nor a temporary file
    monkeypatch.undo()
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(cache))
    assert open_corpus([str(path)]).cache is not None  # the next run builds it


def test_a_file_that_changes_while_it_is_encoded_is_an_error(cache, tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("abcdef\n" * 1000)
    real_scan = corpus_cache.scan

    def scan_then_edit(sources, errors, note):
        found = real_scan(sources, errors, note)
        path.write_text("abcdef\n" * 999 + "xyzzy!\n")  # between the two passes
        return found

    monkeypatch.setattr(corpus_cache, "scan", scan_then_edit)
    with pytest.raises(CharRNNError, match="c.txt changed while it was being read; try again"):
        open_corpus([str(path)])
    assert not any(name.endswith(".json") for name in os.listdir(cache))


def test_a_file_that_vanishes_while_it_is_encoded_is_an_error(cache, tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("abcdef\n" * 1000)
    real_scan = corpus_cache.scan

    def scan_then_delete(sources, errors, note):
        found = real_scan(sources, errors, note)
        path.unlink()
        return found

    monkeypatch.setattr(corpus_cache, "scan", scan_then_delete)
    with pytest.raises(CharRNNError, match="c.txt: no such file"):
        open_corpus([str(path)])


def _folder(tmp_path):
    root = tmp_path / "notes"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("first file\n")
    (root / "b" / "c.md").write_text("no newline at the end")
    (root / "b" / "deep" / "d.txt").write_text("deepest\n")
    (root / "b" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / ".hidden").write_text("never read\n")
    return root


def test_a_folder_is_read_recursively_in_sorted_order_and_binary_files_are_skipped(cache, tmp_path):
    root = _folder(tmp_path)
    notes, note = _notes()
    got = open_corpus([str(root)], note=note)
    assert got.vocab.decode(got.ids) == "first file\nno newline at the end\ndeepest\n"  # a newline joins c.md
    assert notes == [f"note: skipping {root / 'b' / 'image.png'} (binary: it holds a NUL byte)"]
    md = open_corpus([str(root)], globs=["*.md"])
    assert md.vocab.decode(md.ids) == "no newline at the end\n"
    deep = open_corpus([str(root)], globs=["b/deep/*"])
    assert deep.vocab.decode(deep.ids) == "deepest\n"


def test_records_from_a_folder_stay_one_per_line(cli, cache, tmp_path):
    root = tmp_path / "names"
    root.mkdir()
    (root / "1.txt").write_text("anna\nbob")  # no newline at the end: bob must not run into carla
    (root / "2.txt").write_text("carla\ndave\n")
    out = tmp_path / "r.npz"
    r = cli("train", root, "--records", "--steps", 3, "--hidden", 8, "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    m = charrnn.load(out)
    assert all(m.is_training_record(name) for name in ("anna", "bob", "carla", "dave"))
    assert not m.is_training_record("bobcarla")


@pytest.mark.parametrize("make,fragment", [
    (lambda d: None, "no text files in this folder"),
    (lambda d: (d / "x.bin").write_bytes(b"\x00\x01\x02"), "no text files in this folder"),
])
def test_a_folder_without_text_files_is_one_line_exit_1(cli, cache, tmp_path, make, fragment):
    folder = tmp_path / "empty"
    folder.mkdir()
    make(folder)
    r = cli("train", folder, "-o", tmp_path / "m.npz")
    assert r.exit_code == 1 and fragment in one_line_error(r.stderr)
    assert not (tmp_path / "m.npz").exists()


def test_a_symlink_loop_is_read_once_without_hanging(cache, tmp_path):
    root = tmp_path / "loop"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "t.txt").write_text("text\n")
    os.symlink(root, root / "sub" / "back")  # sub/back -> loop: a cycle
    got = open_corpus([str(root)])
    assert got.vocab.decode(got.ids) == "text\n"


def test_invalid_utf8_in_one_file_of_a_folder_is_named_and_follows_encoding_errors(cli, cache, tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "good.txt").write_text("fine text\n")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    r = cli("train", root, "-o", tmp_path / "m.npz", "--steps", 2, "--hidden", 8)
    assert r.exit_code == 1
    assert f"{root / 'latin1.txt'}: invalid UTF-8 at byte offset 3" in one_line_error(r.stderr)
    got = open_corpus([str(root)], errors="replace")
    assert got.vocab.decode(got.ids) == "fine text\ncaf\ufffd\n"


def test_encoding_holds_only_a_few_chunks_whatever_the_corpus_size(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK", 1 << 16)
    monkeypatch.setattr(corpus, "PIECE", 1 << 14)
    big = tmp_path / "big.txt"
    line = "all work and no play makes jack a dull boy — ünïcödé 🙂\n"
    big.write_text(line * 60_000)  # 3.7 MB: 56 chunks
    tracemalloc.start()
    got = open_corpus([str(big)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(got.ids) == len(line) * 60_000
    assert peak < 2_000_000  # a few 64 KiB chunks as UTF-32 and their ids, never the 3.7 MB text or its ids


def test_eval_reads_folders_and_the_library_scores_a_file_in_pieces(cli, cache, tmp_path, pantry_model):
    root = tmp_path / "texts"
    root.mkdir()
    text = PANTRY.read_text()[:30000]
    text = text[: text.rindex("\n") + 1]  # whole lines: the folder adds no newline
    cut = text.index("\n", 12000) + 1
    (root / "one.txt").write_text(text[:cut])
    (root / "two.txt").write_text(text[cut:])
    m = charrnn.load(pantry_model)
    whole = m.score(text)
    from_folder = m.score(root)
    assert from_folder.chars == whole.chars == len(text) - 1
    assert from_folder.nats_per_char == pytest.approx(whole.nats_per_char, rel=1e-6)
    r = cli("eval", "-m", pantry_model, root, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["nats_per_char"] == pytest.approx(whole.nats_per_char, rel=1e-6)
    one = json.loads(cli("eval", "-m", pantry_model, root, "--glob", "one.txt", "--json").stdout)
    assert one["chars"] == cut - 1


def test_the_cache_command_lists_and_clears(cli, cache, tmp_path):
    open_corpus([str(PANTRY)])
    listed = json.loads(cli("cache", "--json").stdout)
    assert listed["folder"] == str(cache) and [e["files"] for e in listed["caches"]] == [[str(PANTRY)]]
    assert listed["caches"][0]["chars"] == len(PANTRY.read_text())
    r = cli("cache", "--clear")
    assert r.exit_code == 0 and "removed the corpus caches" in r.stderr
    assert json.loads(cli("cache", "--json").stdout)["caches"] == [] and os.listdir(cache) == []
