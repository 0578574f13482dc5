"""Named Fréchet-distance protocols: which extractor, frames, resize, sample counts, covariance.

A benchmark config names one of these (``protocol: fvd2048_16f``); each cites the implementation
whose numbers it reproduces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FrechetProtocol:
    """How one published FVD/FID is computed."""

    name: str
    metric: str                  # "fvd" or "fid"
    extractor: str               # a name of evaluation.extractors.EXTRACTORS
    num_frames: int | None       # frames per clip required (None: any >= the extractor's minimum)
    num_real: int | None         # reference samples the published numbers use (None: all)
    num_fake: int | None         # generated samples the published numbers use (None: all)
    resize: str                  # frame protocol before the extractor (evaluation.preprocess)
    unbiased_cov: bool           # covariance / (n-1) (True) or / n (False)
    reference: str               # whose convention this is

    def as_dict(self) -> dict:
        return asdict(self)


PROTOCOLS: dict[str, FrechetProtocol] = {
    p.name: p
    for p in (
        FrechetProtocol(
            "fvd2048_16f", "fvd", "i3d_stylegan_v_torchscript", 16, 2048, 2048, "none", False,
            "StyleGAN-V src/metrics/metric_main.py fvd2048_16f: i3d_torchscript.pt, uint8, rescale/resize "
            "in the detector, biased covariance, sqrtm Fréchet distance",
        ),
        FrechetProtocol(
            "fvd_videogpt", "fvd", "i3d_pytorch", 16, None, None, "short_side_crop", True,
            "VideoGPT videogpt/fvd (also TATS, common_metrics_on_video_quality 'videogpt'): "
            "i3d_pretrained_400.pt, short side 224 + centre crop, [-1, 1], logits mean over time, "
            "unbiased covariance",
        ),
        FrechetProtocol(
            "fid_frames", "fid", "inception_v3_fid", None, None, None, "none", True,
            "pytorch-fid / torch-fidelity FID over every frame: pool3 2048-d, TF1 resize to 299, "
            "unbiased covariance (np.cov)",
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
DEFAULT_PROTOCOL = {"i3d_pytorch": "fvd_videogpt", "i3d_stylegan_v_torchscript": "fvd2048_16f",
                    "inception_v3_fid": "fid_frames", "shapes_i3d": "fvd_shapes_i3d", "clip_image": "fid_clip_frames"}


def get_protocol(protocol: str | FrechetProtocol) -> FrechetProtocol:
    """A protocol by name (or pass one through)."""
    if isinstance(protocol, FrechetProtocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})") from None
