"""The one atomic-write helper (magicvideo.fileio) and its users: complete files only, nothing
left behind on failure, and the mode of the user's umask (issue 19.5), not mkstemp's 0600."""

from __future__ import annotations

import os

import numpy as np
import pytest

from magicvideo.fileio import atomic_open, atomic_path, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_atomic_write_replaces_and_follows_the_umask(tmp_path, umask_022):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    assert target.read_text() == "one" and mode(target) == 0o644
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and os.listdir(target.parent) == ["a.txt"]
    os.umask(0o077)
    atomic_write_text(target, "three")
    assert mode(target) == 0o600


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(error):
        with atomic_open(target, "wb", fsync=True) as f:
            f.write(b"partial")
            raise error("interrupted")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.bin"]
    with pytest.raises(ValueError, match="mode must start with 'w'"):
        with atomic_open(target, "a"):
            pass


def test_atomic_path_for_writers_that_take_a_path(tmp_path, umask_022):
    target = tmp_path / "x.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".x.npz.") and tmp.exists()
        with open(tmp, "wb") as f:
            np.savez(f, a=np.arange(3))
        assert not target.exists()
    assert np.array_equal(np.load(target)["a"], np.arange(3)) and mode(target) == 0o644


def test_every_writer_gives_umask_modes(tmp_path, umask_022):
    """Samples, statistics, manifests, features, videos, shapes files: 0644 under umask 022."""
    from evaluation.cache import ReferenceStatsCache
    from evaluation.stats import FeatureStats
    from flows.metrics import _write_npz
    from flows.store import write_sample
    from magicvideo.data.records import PromptRecord, write_manifest
    from magicvideo.video_io import write_mp4

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    sample = tmp_path / "samples" / "ab" / "abc.npy"
    write_sample(sample, frames)
    stats = FeatureStats(4)
    stats.update(np.random.default_rng(0).standard_normal((5, 4)))
    npz = ReferenceStatsCache(tmp_path / "stats").save({"dataset": "d", "extractor": {"extractor": "e"}}, stats)
    written = [sample, npz, *npz.parent.iterdir(), write_manifest(tmp_path / "m.jsonl", [PromptRecord(
        prompt_id="p", prompt="a", benchmark="b")]), write_mp4(tmp_path / "v.mp4", frames)]
    _write_npz(tmp_path / "f.npz", a=np.arange(2))
    written.append(tmp_path / "f.npz")
    assert {p.name: mode(p) for p in written} == {p.name: 0o644 for p in written}
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left
