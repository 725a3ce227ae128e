import json
import os
import zipfile

import numpy as np
import pytest

from charrnn import checkpoint
from charrnn.errors import CharRNNError


def test_round_trip_restores_everything(pantry_model, tmp_path):
    ck = checkpoint.load(pantry_model)
    ck.rng.random()  # move the RNG so its state is not the seed's
    out = str(tmp_path / "copy.npz")
    checkpoint.save(ck, out)
    again = checkpoint.load(out)
    assert again.model_config == ck.model_config and again.train_config == ck.train_config and again.vocab == ck.vocab
    for k in ck.params:
        assert again.params[k].tobytes() == ck.params[k].tobytes()
    for k in ck.opt_state:
        assert again.opt_state[k].tobytes() == ck.opt_state[k].tobytes()
    assert again.rng.random() == ck.rng.random()
    assert (again.step, again.chars_seen, again.pos, again.epoch) == (ck.step, ck.chars_seen, ck.pos, ck.epoch)
    assert again.history == ck.history and again.best_val == ck.best_val


def test_checkpoint_holds_only_plain_arrays(pantry_model):
    with np.load(pantry_model, allow_pickle=False) as z:
        for name in z.files:
            assert z[name].dtype != object
        meta = json.loads(z["meta"].tobytes())
    assert meta["format"] == "charrnn-checkpoint" and meta["version"] == checkpoint.VERSION
    assert {"model", "train", "vocab", "step", "chars_seen", "pos", "rng", "best_val_nats"} <= set(meta)


def _expect_error(path, pattern):
    with pytest.raises(CharRNNError, match=pattern):
        checkpoint.load(str(path))


def test_missing_empty_and_random_files_are_clear_errors(tmp_path):
    _expect_error(tmp_path / "nope.npz", "no such checkpoint")
    (tmp_path / "empty.npz").write_bytes(b"")
    _expect_error(tmp_path / "empty.npz", "is empty")
    (tmp_path / "rand.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    _expect_error(tmp_path / "rand.npz", "not a charrnn checkpoint|damaged")
    _expect_error(tmp_path, "is a directory")


@pytest.mark.parametrize("cut", [1, 10, 100, 1000, -500, -22, -1])
def test_truncated_checkpoints_are_refused(pantry_model, tmp_path, cut):
    data = open(pantry_model, "rb").read()
    p = tmp_path / "cut.npz"
    p.write_bytes(data[:cut])
    _expect_error(p, "truncated|damaged|not a charrnn checkpoint")


def test_a_foreign_zip_and_a_foreign_npz_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("hello.txt", "hi")
    _expect_error(tmp_path / "a.zip", "not a charrnn checkpoint")
    np.savez(tmp_path / "b.npz", weights=np.ones(3))
    _expect_error(tmp_path / "b.npz", "not a charrnn checkpoint")


def test_object_arrays_are_never_unpickled(tmp_path, pantry_model):
    """An npz whose meta is a pickled object must be refused without running it."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays = dict(np.load(pantry_model))
    arrays["meta"] = np.array([Evil()], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    _expect_error(tmp_path / "evil.npz", "damaged|not a charrnn")
    assert not marker.exists()


def _rewrite(src, dst, edit):
    arrays = dict(np.load(src))
    meta = json.loads(arrays["meta"].tobytes())
    edit(arrays, meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(dst, **arrays)


def test_newer_format_version_asks_for_an_upgrade(pantry_model, tmp_path):
    _rewrite(pantry_model, tmp_path / "new.npz", lambda a, m: m.update(version=99))
    _expect_error(tmp_path / "new.npz", "format version 99.*upgrade charrnn")


def test_wrong_shapes_dtypes_and_vocabulary_are_refused(pantry_model, tmp_path):
    _rewrite(pantry_model, tmp_path / "s.npz", lambda a, m: a.update({"param/W_aa.0": a["param/W_aa.0"][:, :3]}))
    _expect_error(tmp_path / "s.npz", "param/W_aa.0 has shape")
    _rewrite(pantry_model, tmp_path / "d.npz", lambda a, m: a.update({"param/b_y": a["param/b_y"].astype(np.float64)}))
    _expect_error(tmp_path / "d.npz", "param/b_y has shape .* float64")
    _rewrite(pantry_model, tmp_path / "v.npz", lambda a, m: m.update(vocab=m["vocab"][:-1]))
    _expect_error(tmp_path / "v.npz", "vocabulary has")
    _rewrite(pantry_model, tmp_path / "m.npz", lambda a, m: a.pop("opt/t"))
    _expect_error(tmp_path / "m.npz", "missing opt/t")


def test_a_failed_save_leaves_the_previous_checkpoint_intact(pantry_model, tmp_path, monkeypatch):
    ck = checkpoint.load(pantry_model)
    out = tmp_path / "keep.npz"
    checkpoint.save(ck, str(out))
    before = out.read_bytes()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    ck.step += 1
    with pytest.raises(CharRNNError, match="No space left.*previous one is unchanged"):
        checkpoint.save(ck, str(out))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]  # no temp file left behind


def test_out_must_be_a_writable_file_path(tmp_path):
    with pytest.raises(CharRNNError, match="is a directory"):
        checkpoint.check_writable(str(tmp_path))
    with pytest.raises(CharRNNError, match="does not exist"):
        checkpoint.check_writable(str(tmp_path / "no" / "m.npz"))
