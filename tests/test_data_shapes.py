"""The synthetic 'shapes' benchmark: determinism, labels that match the pixels, layout on disk."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from magicvideo.data.shapes import MOTIONS, ShapesSpec, render, sample_clip, trajectory, vocabulary, write_shapes

SPEC = ShapesSpec(train=6, test=4, size=32, seed=3, fps=[8, 12], durations=[2])


def test_sampling_and_rendering_are_deterministic_for_a_seed():
    for i in range(20):
        a, b = sample_clip(SPEC, "train", i), sample_clip(SPEC, "train", i)
        assert a == b
        assert np.array_equal(render(a, 32), render(b, 32))
    other = SPEC.model_copy(update={"seed": 4})
    assert [sample_clip(SPEC, "train", i) for i in range(20)] != [sample_clip(other, "train", i) for i in range(20)]
    assert sample_clip(SPEC, "train", 0) != sample_clip(SPEC, "test", 0)


def test_given_attributes_replace_the_drawn_ones_and_keep_the_stream():
    """sample_clip(..., attributes=...) (the drift ceiling's windows of one object): the given labels,
    new placements per index, every clip still inside the frame, and no change without them."""
    fixed = {"shape": "triangle", "color": "red", "background": "black", "motion": "left", "speed": "fast"}
    clips = [sample_clip(SPEC, "test", 1000 + i, attributes=fixed) for i in range(30)]
    assert all(c.attributes == fixed for c in clips)
    assert len({(c.x0, c.y0, c.radius) for c in clips}) == 30
    for c in clips:  # the translation stays inside the frame over the clip's span
        x = trajectory(c)[0]
        assert x.min() >= c.radius - 1e-9 and x.max() <= 1 - c.radius + 1e-9 and x[-1] < x[0]
    drawn = sample_clip(SPEC, "test", 7)
    assert sample_clip(SPEC, "test", 7, attributes={}) == drawn
    same = sample_clip(SPEC, "test", 7, attributes={"color": drawn.color})
    assert same == drawn  # giving the drawn label changes nothing: the draws are the same
    circle = sample_clip(SPEC, "test", 7, attributes={"shape": "circle"})
    assert circle.motion not in ("clockwise", "counterclockwise")
    with pytest.raises(ValueError, match="unknown shapes attributes"):
        sample_clip(SPEC, "test", 0, attributes={"size": "big"})
    with pytest.raises(ValueError, match="not one of"):
        sample_clip(SPEC, "test", 0, attributes={"color": "teal"})


def test_attributes_cover_the_vocabulary_and_frame_rates():
    spec = ShapesSpec(seed=0)
    clips = [sample_clip(spec, "train", i) for i in range(600)]
    vocab = vocabulary()
    for key in ("shape", "color", "background", "motion", "speed"):
        assert {getattr(c, key) for c in clips} == set(vocab[key]), key
    assert {c.fps for c in clips} == {8.0, 12.0, 24.0}
    assert {c.num_frames for c in clips} == {16, 24, 36, 48, 72}
    assert all(c.motion not in ("clockwise", "counterclockwise") for c in clips if c.shape == "circle")
    for c in clips[:50]:
        words = [c.color, c.shape, c.background]
        assert all(all(w in cap for w in words) for cap in c.captions())
        assert c.caption in c.captions()


def _centroid_and_area(frame, bg):
    mask = np.abs(frame.astype(int) - np.array(bg)).sum(-1) > 60
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean(), mask.sum(), mask


@pytest.mark.parametrize("motion", MOTIONS)
def test_pixels_show_the_labelled_motion(motion):
    from magicvideo.data.shapes import BACKGROUNDS

    base = sample_clip(ShapesSpec(seed=0), "train", 0)
    clip = dataclasses.replace(
        base, shape="triangle", motion=motion, speed="fast", fps=8.0, num_frames=16, x0=0.5, y0=0.5,
        radius=0.15 if motion not in ("grow", "shrink") else 0.08, angle0=0.0, background="black",
    )  # fmt: skip
    frames = render(clip, 64)
    bg = BACKGROUNDS["black"]
    x0, y0, a0, m0 = _centroid_and_area(frames[0], bg)
    x1, y1, a1, _ = _centroid_and_area(frames[-1], bg)
    # fast translation: 0.24 sides/s * 15/8 s = 0.45 sides = 28.8 px at 64 px
    expected = {
        "left": x1 - x0 < -25, "right": x1 - x0 > 25, "up": y1 - y0 < -25, "down": y1 - y0 > 25,
        "grow": a1 > 2 * a0, "shrink": a0 > 2 * a1,
    }  # fmt: skip
    if motion in expected:
        assert expected[motion], (x0, y0, a0, x1, y1, a1)
    else:  # rotation: at angle 0 the triangle's vertex points up; clockwise on screen moves it right
        _, _, _, m1 = _centroid_and_area(frames[1], bg)  # 150 deg/s at 8 fps: 18.75 deg
        top0, top1 = np.nonzero(m0)[0].min(), np.nonzero(m1)[0].min()
        tip0 = np.nonzero(m0[top0])[0].mean()
        tip1 = np.nonzero(m1[top1])[0].mean()
        assert abs(tip0 - 31.5) < 1.0
        assert (tip1 - tip0 > 2) if motion == "clockwise" else (tip1 - tip0 < -2), (tip0, tip1)


def _decode(path):
    import decord

    vr = decord.VideoReader(str(path), num_threads=1)
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def test_write_shapes_layout_splits_and_determinism(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    summary = write_shapes(a, SPEC, workers=0)
    write_shapes(b, SPEC.model_copy(update={"train": 40}), workers=2)  # pool path, more clips
    assert summary["counts"]["train"] == 6 and summary["vocabulary"]["shape"] == ["circle", "square", "triangle"]

    # MSR-VTT annotation format, with the attribute labels on every video
    ann = json.loads((a / "test_videodatainfo.json").read_text())
    assert set(ann) == {"info", "videos", "sentences"}
    assert [v["video_id"] for v in ann["videos"]] == ["video7010", "video7011", "video7012", "video7013"]
    for v in ann["videos"]:
        assert v["split"] == "test" and set(v["attributes"]) == {"shape", "color", "background", "motion", "speed"}
        assert (a / "TestVideo" / f"{v['video_id']}.mp4").is_file()
        caps = [s["caption"] for s in ann["sentences"] if s["video_id"] == v["video_id"]]
        assert len(caps) == 4 and all(v["attributes"]["color"] in c for c in caps)

    rows = list(csv.DictReader(open(a / "train.csv")))
    assert len(rows) == 6 and {"videoid", "name", "path", "fps", "shape", "motion"} <= set(rows[0])
    assert all((a / r["path"]).is_file() for r in rows)

    # disjoint splits: no test clip repeats a training clip's parameters
    train_params = {json.dumps(sample_clip(SPEC, "train", i).params, sort_keys=True) for i in range(40)}
    assert not train_params & {json.dumps(v["params"], sort_keys=True) for v in ann["videos"]}

    # same seed, another worker count and more training clips: identical annotations, the same
    # test clips and shared training clips. Compared decoded, not byte for byte: x264's own
    # threads make the encoded bytes vary from run to run (the rendered frames do not).
    assert (a / "test_videodatainfo.json").read_bytes() == (b / "test_videodatainfo.json").read_bytes()
    assert (b / "train.csv").read_text().startswith((a / "train.csv").read_text())
    names = [f"TestVideo/video{7010 + i}.mp4" for i in range(4)] + [f"train/{i:06d}.mp4" for i in range(6)]
    for name in names:
        fa, fb = _decode(a / name), _decode(b / name)
        assert fa.shape == fb.shape and np.abs(fa.astype(int) - fb.astype(int)).mean() < 1.0, name
    clip = sample_clip(SPEC, "test", 0)
    assert np.abs(_decode(a / names[0]).astype(int) - render(clip, 32)).mean() < 3.0  # the file shows the clip

def test_spec_validation():
    with pytest.raises(ValueError, match="size"):
        ShapesSpec(size=512)
    with pytest.raises(ValueError, match="fps"):
        ShapesSpec(fps=[])


def test_cli_renders_the_benchmark_at_256(tmp_path, capsys):
    """`magicvideo data shapes OUT --size 256` (x4 of the 64 px benchmark: the super-resolution
    stage's training frames and references): the same clips, four times the side."""
    import torch

    from magicvideo.cli import main
    from magicvideo.models.upsampler import downsample

    out = tmp_path / "hr"
    assert main(["data", "shapes", str(out), "--size", "256", "--train", "1", "--test", "1", "--workers", "0"]) == 0
    assert json.loads((out / "shapes.json").read_text())["spec"]["size"] == 256
    frames = _decode(out / "TestVideo" / "video7010.mp4")
    assert frames.shape[1:] == (256, 256, 3)
    spec = ShapesSpec(seed=0)
    clip = sample_clip(spec, "test", 0)
    hr, lr = render(clip, 256), render(clip, 64)
    small = downsample(torch.from_numpy(hr).permute(0, 3, 1, 2).float(), 4).permute(0, 2, 3, 1).numpy()
    assert np.abs(small - lr).mean() < 2.0  # the 256 px clip shrunk x4 is the 64 px clip
    assert main(["data", "shapes", str(tmp_path / "big"), "--size", "512"]) == 2
    assert "size" in capsys.readouterr().err
