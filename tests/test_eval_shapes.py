"""The shapes domain's evaluation: ShapesI3D FVD features, CLIP frame features for FID, attribute
accuracy, missing-weights errors, and the committed models (checkpoints/shapes) themselves."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from evaluation import (EXTRACTORS, CLIPImageExtractor, MissingWeightsError, ShapesI3DExtractor, attribute_accuracy,
                        build_extractor, compute_fid, compute_fvd, score_attributes, weights)
from magicvideo.checkpoints import shapes_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def videos(n=3, t=16, h=64, w=64, seed=0):
    return torch.randint(0, 256, (n, t, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def shapes_i3d():
    return build_extractor("shapes_i3d")  # the committed classifier (3 MB)


@pytest.fixture(scope="module")
def clip_image():
    return build_extractor("clip_image")  # the committed shapes CLIP (2 MB)


@pytest.fixture(scope="module")
def shapes_test(tmp_path_factory):
    """A few test clips of the shapes benchmark at its default spec, read as the eval flow reads them."""
    from magicvideo.data import ShapesSpec, load_benchmark, write_shapes

    root = tmp_path_factory.mktemp("shapes")
    write_shapes(root, ShapesSpec(train=0, test=24), workers=0)
    bench = load_benchmark("shapes", root=root)
    clips = np.stack([c.frames for c in bench.reference_clips()])
    return clips, [r.attributes for r in bench.manifest()]


def test_registry_names_every_extractor():
    assert {"i3d_kinetics400", "i3d_pytorch", "i3d_stylegan_v_torchscript", "inception_v3_fid", "shapes_i3d",
            "clip_image"} == set(EXTRACTORS)
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'"):
        build_extractor("nope")
    with pytest.raises(ValueError, match="takes no option colour"):
        build_extractor("shapes_i3d", colour="red")


def test_shapes_i3d_features_shape_and_determinism(shapes_i3d):
    v = videos()
    f = shapes_i3d(v)
    assert f.shape == (3, shapes_i3d.num_features) == (3, 256) and f.dtype == torch.float32
    assert torch.equal(f, shapes_i3d(v))                                   # deterministic
    assert torch.allclose(shapes_i3d(v[1:2]), f[1:2], atol=1e-5)          # not batch-dependent (eval-mode BN)
    assert not torch.allclose(f[0], f[1])
    # it is the classifier's own preprocessing and pooled features
    with torch.no_grad():
        direct = shapes_i3d.model.features(shapes_i3d.model.prepare(v.numpy()))
    assert torch.allclose(f, direct)
    # other sizes and more frames go through `prepare` (short side + crop, first 16 frames)
    assert shapes_i3d(videos(2, t=20, h=48, w=80)).shape == (2, 256)
    with pytest.raises(ValueError, match="at least 16 frames"):
        shapes_i3d(videos(1, t=12))
    ident = shapes_i3d.identity()
    assert ident["extractor"] == "shapes_i3d" and ident["weights_sha256"] == weights.file_sha256(shapes_checkpoint("classifier"))


def test_shapes_i3d_in_memory_model_and_fvd():
    from magicvideo.models.classifier import ShapesI3D

    torch.manual_seed(0)
    model = ShapesI3D(["shape", "color"], [["circle", "square"], ["red", "green", "blue"]], width=0.1)
    ex = ShapesI3DExtractor(model=model)
    assert ex.identity()["weights_sha256"].startswith("unhashed") and ex.heads == {"shape": ["circle", "square"],
                                                                                    "color": ["red", "green", "blue"]}
    preds = ex.predict(videos(2))
    assert len(preds) == 2 and preds[0]["shape"] in ("circle", "square") and preds[0]["color"] in ("red", "green", "blue")
    r = compute_fvd(videos(6, seed=1), videos(6, seed=2), extractor=ex, batch_size=4)
    assert r.protocol == "fvd_shapes_i3d" and r.n_fake == r.n_real == 6 and np.isfinite(r.value) and r.value >= 0
    same = compute_fvd(videos(6, seed=1), videos(6, seed=1), extractor=ex)
    assert same.value == pytest.approx(0, abs=1e-3)


def test_clip_image_features_are_the_projected_frame_embeddings(clip_image):
    v = videos(2, t=3)
    f = clip_image(v)
    assert f.shape == (6, clip_image.num_features) == (6, 64) and f.dtype == torch.float32
    assert torch.equal(f, clip_image(v))
    frames = v.numpy().reshape(6, 64, 64, 3)
    px = clip_image.processor(images=list(frames), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = clip_image.model.get_image_features(pixel_values=px)
    direct = out if isinstance(out, torch.Tensor) else out.pooler_output
    assert torch.allclose(f, direct, atol=1e-5)
    assert not torch.allclose(f.norm(dim=-1), torch.ones(6))              # FID features: not normalised
    assert clip_image.identity()["weights_sha256"] == weights.file_sha256(shapes_checkpoint("clip"))
    r = compute_fid(videos(4, t=4, seed=1), videos(4, t=4, seed=2), extractor=clip_image)
    assert r.protocol == "fid_clip_frames" and r.n_fake == r.n_real == 16 and r.value > 0


def test_attribute_accuracy_by_hand():
    classes = {"shape": ["circle", "square", "triangle"], "color": ["red", "green"], "speed": ["slow", "fast"]}
    requested = [dict(shape="circle", color="red", speed="slow"), dict(shape="square", color="red", speed="fast"),
                 dict(shape="circle", color="green", speed="fast"), dict(shape="triangle", color="red", speed="slow")]
    predicted = [dict(shape="circle", color="red", speed="fast"), dict(shape="square", color="green", speed="fast"),
                 dict(shape="triangle", color="green", speed="fast"), dict(shape="triangle", color="red", speed="slow")]
    acc = attribute_accuracy(predicted, requested, classes)
    assert acc.accuracy == {"shape": 0.75, "color": 0.75, "speed": 0.75}
    assert acc.chance == pytest.approx({"shape": 1 / 3, "color": 0.5, "speed": 0.5})
    assert acc.mean == pytest.approx(0.75) and acc.mean_chance == pytest.approx((1 / 3 + 0.5 + 0.5) / 3)
    assert acc.all == 0.25 and acc.all_chance == pytest.approx(1 / 12)     # only the last clip is right throughout
    assert acc.per_sample[0] == {"shape": True, "color": True, "speed": False}
    m = acc.metrics()
    assert m["attr_acc/shape"] == 0.75 and m["attr_chance/color"] == 0.5 and m["attr_acc/all"] == 0.25
    # a head the prompts do not state is not scored; the prompts' other keys are ignored
    acc2 = attribute_accuracy(predicted, [{**r, "fps": "8"} for r in requested], {**classes, "motion": ["up", "down"]})
    assert set(acc2.accuracy) == {"shape", "color", "speed"}
    with pytest.raises(ValueError, match="not among the classifier's"):
        attribute_accuracy(predicted[:1], [dict(shape="hexagon", color="red", speed="slow")], classes)
    with pytest.raises(ValueError, match="3 predictions for 4"):
        attribute_accuracy(predicted[:3], requested, classes)


def test_committed_classifier_scores_real_test_clips_well_above_chance(shapes_i3d, shapes_test):
    clips, requested = shapes_test
    acc, predicted = score_attributes([clips[:12], clips[12:]], requested, shapes_i3d)
    assert acc.n == len(predicted) == 24
    # report.json: colour 1.00 (chance 0.17), background 1.00 (0.33) on the 256 test clips
    assert acc.accuracy["color"] >= 0.9 and acc.accuracy["background"] >= 0.9
    assert acc.mean > acc.mean_chance + 0.25


def test_committed_pipeline_loads_and_generates():
    from magicvideo.pipeline import MagicVideoPipeline

    pipe = MagicVideoPipeline.from_pretrained(shapes_checkpoint("pipeline"))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(["a red circle moving left on a black background"], seed=[0], num_inference_steps=2, fps=8,
               output_type="uint8").frames
    assert out.shape == (1, 16, 64, 64, 3) and out.dtype == np.uint8 and out.std() > 0


def test_missing_weights_name_the_path_and_the_config_key(tmp_path, monkeypatch):
    for var in ("MAGICVIDEO_SHAPES_CLASSIFIER", "MAGICVIDEO_FID_CLIP_PATH"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingWeightsError, match=r"not found at .*nope.*`metrics\.fvd\.weights`"):
        build_extractor("shapes_i3d", tmp_path / "nope")
    with pytest.raises(MissingWeightsError, match=r"not found at .*nope.*`metrics\.fid\.weights`.*MAGICVIDEO_FID_CLIP_PATH"):
        CLIPImageExtractor(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match=r"half/diffusion_pytorch_model\.safetensors"):
        build_extractor("shapes_i3d", tmp_path / "half")
    # the environment variable, then the committed default; a missing default is named too
    monkeypatch.setenv("MAGICVIDEO_SHAPES_CLASSIFIER", str(tmp_path / "from_env"))
    with pytest.raises(MissingWeightsError, match="from_env"):
        build_extractor("shapes_i3d")
    monkeypatch.delenv("MAGICVIDEO_SHAPES_CLASSIFIER")
    gone = dataclasses.replace(weights.SHAPES_CLASSIFIER, default=tmp_path / "checkpoints/shapes/classifier")
    with pytest.raises(MissingWeightsError, match=r"checkpoints/shapes/classifier.*`metrics\.fvd\.weights`"):
        ShapesI3DExtractor(spec=gone)

