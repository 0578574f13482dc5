"""The shapes classifier's dihedral reading (``ShapesI3D.predict_dihedral``), the long-video drift
benchmark's reader: the mean softmax over the 8 flips and transposes of every frame, for the
attributes those symmetries leave unchanged."""

from __future__ import annotations

import pytest
import torch

from magicvideo.models.classifier import DIHEDRAL_INVARIANT, ShapesI3D, dihedral_views

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    """The committed classifier: a random one reads every orientation nearly alike (its logits barely
    move), so it could not show that one view's reading depends on the orientation."""
    from pathlib import Path

    return ShapesI3D.from_pretrained(Path(__file__).resolve().parents[1] / "checkpoints/shapes/classifier").eval()


@pytest.fixture(scope="module")
def windows(model):
    """Four 2-s shapes test windows at 8 fps, as the classifier reads them."""
    import numpy as np

    from magicvideo.data.shapes import ShapesSpec, render, sample_clip

    spec = ShapesSpec(fps=[8.0], durations=[2.0], seed=5)
    return model.prepare(torch.from_numpy(np.stack([render(sample_clip(spec, "test", i), 64) for i in range(4)])))


def test_views_are_the_eight_symmetries_of_the_square():
    x = torch.arange(9.0).reshape(1, 3, 3)
    views = dihedral_views(x)
    assert len(views) == 8 and torch.equal(views[0], x)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8  # all distinct on an asymmetric image
    # a group: the views of any view are the same 8 images
    for v in views:
        assert {tuple(w.flatten().tolist()) for w in dihedral_views(v)} == {tuple(w.flatten().tolist()) for w in views}
    # each view is a rotation or reflection: the centre stays, the corners go to corners
    for v in views:
        assert v[0, 1, 1] == 4 and {v[0, i, j].item() for i in (0, 2) for j in (0, 2)} == {0.0, 2.0, 6.0, 8.0}
    with pytest.raises(ValueError, match="square frames"):
        dihedral_views(torch.zeros(1, 3, 4))


def test_dihedral_reading_is_the_mean_softmax_and_does_not_depend_on_orientation(model, windows):
    x = windows
    got = model.proba_dihedral(x)
    assert set(got) == set(DIHEDRAL_INVARIANT)
    with torch.no_grad():
        views = [model.split(model(v)) for v in dihedral_views(x)]
    picked = model.predict_dihedral(x)
    for a in DIHEDRAL_INVARIANT:
        mean = sum(v[a].softmax(1) for v in views) / 8
        torch.testing.assert_close(got[a], mean)
        assert torch.equal(picked[a], got[a].argmax(1))
    # a flipped or transposed clip reads the same
    for v in dihedral_views(x)[1:]:
        again = model.proba_dihedral(v)
        for a in DIHEDRAL_INVARIANT:
            torch.testing.assert_close(again[a], got[a])
    # while one view's reading does depend on it (the check above would hold trivially otherwise)
    assert max(float((v["shape"].softmax(1) - views[0]["shape"].softmax(1)).abs().max()) for v in views[1:]) > 0.1


def test_dihedral_reading_refuses_attributes_that_flips_change(model):
    x = torch.zeros(1, 3, 16, 64, 64)
    assert set(model.predict_dihedral(x, ("shape", "color"))) == {"shape", "color"}
    with pytest.raises(ValueError, match="motion"):
        model.predict_dihedral(x, ("shape", "motion"))
    with pytest.raises(ValueError, match="expected videos"):
        model.predict_dihedral(torch.zeros(3, 16, 64, 64))
