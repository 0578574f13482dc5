"""Feature extractors for FVD and FID: load local weights, preprocess uint8 videos, run in a precision mode.

Every extractor takes uint8 videos ``[B, T, H, W, 3]`` and returns float32 features ``[N, d]`` on
the CPU (one row per clip for the I3Ds, one per frame for Inception and CLIP), and describes itself
by ``identity()`` -- name, weights hash and preprocessing -- for the reference-statistics cache.
``EXTRACTORS`` maps each ``name`` (the eval config's ``metrics.fvd/fid.extractor``) to its class;
``build_extractor`` makes one from a name and a weights path.

The two extractors of the synthetic shapes domain, where Kinetics I3D and ImageNet Inception have
never seen a frame (and cannot be downloaded here), use this project's own committed models:
``shapes_i3d`` (FVD: the ``ShapesI3D`` classifier's pooled features, ``checkpoints/shapes/classifier``)
and ``clip_image`` (FID: a CLIP image tower's projected embedding, ``checkpoints/shapes/clip``).

Precision modes (``precision=``):
- ``"fp32"``: float32 with TF32 off for matmuls *and* cuDNN convolutions (PyTorch's default leaves
  cuDNN TF32 on); the references' numbers -- use it for reported metrics unless a faster mode was
  shown to agree (BENCHMARKS.md, "Metrics").
- ``"tf32"``: float32 storage, TF32 tensor cores.
- ``"bf16"`` / ``"fp16"``: autocast.
``channels_last=True`` stores activations channels-last (``channels_last_3d`` for I3D);
``fuse_bn=True`` folds batch norm into the convolutions.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

from . import preprocess, weights
from .clipsim import CLIPEncoder
from .i3d import MIN_FRAMES, InceptionI3d, load_i3d
from .inception import InceptionV3FID, load_inception

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


@contextlib.contextmanager
def precision_mode(precision: str, device_type: str):
    """Set TF32 flags and autocast for one extraction call, restoring the previous flags after."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        if precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            with torch.autocast(device_type, dtype=dtype):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


def _model_and_hash(model, weights_path, spec: weights.WeightsSpec, load, directory: bool = False):
    """``(model, weights sha256)``: `model` as given (tests: an in-memory model, unhashed), else
    ``load(path)`` of the weights file or folder that `weights_path` / `spec` resolve to."""
    if model is not None:
        return model, "unhashed:in-memory-model"
    path = weights.resolve_weights(weights_path, spec, directory=directory)
    return load(path), weights.file_sha256(path)


class I3DExtractor:
    """FVD features from Inception-I3D with pytorch-i3d's ``i3d_pretrained_400.pt`` (VideoGPT convention).

    Args:
        weights_path: the state dict; default ``$MAGICVIDEO_I3D_WEIGHTS``.
        device: torch device.
        precision: one of ``PRECISIONS`` (``"fp32"`` = TF32 off, reference parity).
        channels_last: channels_last_3d activations.
        fuse_bn: fold batch norm into the convolutions.
        resize: frame resize protocol (``preprocess.RESIZE_MODES``); VideoGPT's is ``"short_side_crop"``.
        bn_eps: batch-norm epsilon (1e-5 for VideoGPT's file).
        model: an already built ``InceptionI3d`` (tests use random weights); skips loading.
    """

    name = "i3d_pytorch"
    num_features = 400

    def __init__(self, weights_path=None, device="cpu", precision="fp32", channels_last=False, fuse_bn=False,
                 resize="short_side_crop", bn_eps=1e-5, model: InceptionI3d | None = None):
        self.device, self.precision, self.resize = torch.device(device), precision, resize
        model, self.weights_sha256 = _model_and_hash(model, weights_path, weights.I3D_STATE_DICT,
                                                     lambda path: load_i3d(path, device=self.device, bn_eps=bn_eps))
        model = model.eval().requires_grad_(False).to(self.device)
        if fuse_bn:
            model.fuse_batchnorm_()
        self.channels_last = channels_last
        self.model = model.to(memory_format=torch.channels_last_3d) if channels_last else model

    def identity(self) -> dict:
        """What determines the features (for cache keys)."""
        return {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize,
                "input": "float [-1,1] [B,3,T,224,224]", "features": "logits mean over time"}

    @torch.no_grad()
    def __call__(self, videos) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B, 400]`` (CPU)."""
        videos = preprocess.as_videos(videos)
        preprocess.check_frames(videos, min_frames=MIN_FRAMES)
        x = preprocess.i3d_input(videos, self.resize, device=self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with precision_mode(self.precision, self.device.type):
            return self.model(x).float().cpu()


class StyleGANVI3DExtractor:
    """FVD features from StyleGAN-V's ``i3d_torchscript.pt``, called exactly as StyleGAN-V does.

    StyleGAN-V (``src/metrics/frechet_video_distance.py``, ``metric_utils.py``): ``torch.jit.load``,
    input uint8 ``[B, 3, T, H, W]`` (clips ``[B, T, C, H, W]`` permuted), single channels repeated to
    three, ``detector(x, rescale=True, resize=True, return_features=True)``: the detector maps
    [0, 255] to [-1, 1] and resizes to 224x224 itself, and returns the 400 pre-softmax features.
    Its ``fvd2048_16f`` uses 2,048 real and 2,048 generated 16-frame clips and the biased covariance.

    Args:
        weights_path: the TorchScript file; default ``$MAGICVIDEO_I3D_TORCHSCRIPT``.
        device: torch device.
        resize: optional resize before the detector (``"none"``, StyleGAN-V's own, by default).
        precision: ``"fp32"`` (TF32 off) or ``"tf32"``; a scripted graph ignores autocast.
    """

    name = "i3d_stylegan_v_torchscript"
    num_features = 400
    detector_kwargs = dict(rescale=True, resize=True, return_features=True)

    def __init__(self, weights_path=None, device="cpu", resize="none", precision="fp32"):
        path = weights.resolve_weights(weights_path, weights.I3D_TORCHSCRIPT)
        self.weights_sha256 = weights.file_sha256(path)
        self.device, self.resize, self.precision = torch.device(device), resize, precision
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; the reference file is one
            warnings.simplefilter("ignore", DeprecationWarning)
            self.detector = torch.jit.load(str(path), map_location=self.device).eval()

    def identity(self) -> dict:
        return {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize,
                "detector_kwargs": self.detector_kwargs}

    @torch.no_grad()
    def __call__(self, videos) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B, 400]`` (CPU)."""
        videos = preprocess.as_videos(videos)
        preprocess.check_frames(videos, min_frames=MIN_FRAMES)
        x = preprocess.stylegan_i3d_input(videos, self.resize, device=self.device)
        with precision_mode(self.precision, self.device.type):
            return self.detector(x, **self.detector_kwargs).float().cpu()


class InceptionExtractor:
    """FID pool3 features (2048-d) of every frame, Inception-v3 ``pt_inception-2015-12-05``.

    Args:
        weights_path: the state dict; default ``$MAGICVIDEO_INCEPTION_WEIGHTS``.
        device: torch device.
        convention: ``"torch-fidelity"`` (TF1 resize, default) or ``"pytorch-fid"``; see ``inception``.
        precision: one of ``PRECISIONS``.
        resize: frame protocol before the network's own resize to 299 (``"none"`` or ``"center_crop"``).
        channels_last: channels-last activations.
        model: an already built ``InceptionV3FID`` (tests); skips loading.
    """

    name = "inception_v3_fid"
    num_features = 2048

    def __init__(self, weights_path=None, device="cpu", convention="torch-fidelity", precision="fp32",
                 resize="none", channels_last=False, model: InceptionV3FID | None = None):
        self.device, self.precision, self.resize = torch.device(device), precision, resize
        model, self.weights_sha256 = _model_and_hash(
            model, weights_path, weights.INCEPTION, lambda path: load_inception(path, device=self.device, convention=convention))
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.convention = self.model.convention
        self.num_features = getattr(self.model, "num_features", 2048)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def identity(self) -> dict:
        return {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize,
                "convention": self.convention, "features": "pool3 2048"}

    @torch.no_grad()
    def images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images ``[N, 3, H, W]`` -> float32 ``[N, 2048]`` (CPU)."""
        x = self.model.normalize(images.to(self.device))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with precision_mode(self.precision, self.device.type):
            return self.model.features(x).float().cpu()

    def __call__(self, videos) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B*T, 2048]``, one row per frame (CPU)."""
        return self.images(preprocess.inception_input(videos, self.resize, device=self.device))


class ShapesI3DExtractor:
    """FVD features of the shapes domain: the pooled features of this project's ``ShapesI3D``
    classifier (``magicvideo.training.classifier``; I3D at width 0.25 with attribute heads).

    Clips go through the classifier's own ``prepare`` (its first ``num_frames`` frames, shorter side
    to its ``sample_size`` + centre crop, [-1, 1]): the input it was trained on. Numbers are only
    comparable between runs with the same classifier (the weights hash is in ``identity()``), never
    with Kinetics-I3D FVDs.

    Args:
        weights_path: the classifier folder (``save_pretrained``); default ``$MAGICVIDEO_SHAPES_CLASSIFIER``,
            else the committed ``checkpoints/shapes/classifier``.
        device: torch device.
        precision: one of ``PRECISIONS``.
        model: an already built ``ShapesI3D`` (tests); skips loading.
        spec: the weights description used in errors (the attribute scorer passes its own config key).
    """

    name = "shapes_i3d"

    def __init__(self, weights_path=None, device="cpu", precision="fp32", model=None,
                 spec: weights.WeightsSpec = weights.SHAPES_CLASSIFIER):
        from magicvideo.training.classifier import ShapesI3D

        self.device, self.precision = torch.device(device), precision
        model, self.weights_sha256 = _model_and_hash(model, weights_path, spec, ShapesI3D.from_pretrained, directory=True)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.num_features = self.model.feature_dim
        self.heads = self.model.heads

    def identity(self) -> dict:
        c = self.model.config
        return {"extractor": self.name, "weights_sha256": self.weights_sha256,
                "input": f"ShapesI3D.prepare: first {c.num_frames} frames, short side {c.sample_size} + centre crop, "
                         "[-1,1]", "features": f"pooled Mixed_5c {self.num_features}"}

    def _input(self, videos) -> torch.Tensor:
        videos = preprocess.as_videos(videos)
        preprocess.check_frames(videos, min_frames=self.model.config.num_frames)
        return self.model.prepare(videos)

    @torch.no_grad()
    def __call__(self, videos) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B, feature_dim]`` (CPU)."""
        x = self._input(videos)
        with precision_mode(self.precision, self.device.type):
            return self.model.features(x).float().cpu()

    @torch.no_grad()
    def predict(self, videos) -> list[dict[str, str]]:
        """Each clip's predicted attribute values (names), e.g. ``{"shape": "circle", "color": "red", ...}``."""
        x = self._input(videos)
        with precision_mode(self.precision, self.device.type):
            idx = {k: v.cpu().tolist() for k, v in self.model.predict(x).items()}
        return [{k: self.heads[k][idx[k][i]] for k in idx} for i in range(x.shape[0])]


class CLIPImageExtractor(CLIPEncoder):
    """FID features from a CLIP image tower: the projected (not normalised) image embedding of every
    frame, frames through the folder's own ``CLIPProcessor`` (as clean-fid's ``clip_vit_b_32`` mode and
    Kynkäänniemi et al. 2023's FID_CLIP use ``encode_image``). For the shapes domain the committed
    CLIP pair (64-d embeddings, trained on shapes frames and captions).

    Args:
        weights_path: the CLIP folder; default ``$MAGICVIDEO_FID_CLIP_PATH``, else the committed
            ``checkpoints/shapes/clip``.
        device: torch device.
        precision: one of ``PRECISIONS``.
        frame_batch: frames per encoder call.
    """

    name = "clip_image"

    def __init__(self, weights_path=None, device="cpu", precision="fp32", frame_batch: int = 512):
        super().__init__(weights_path, weights.SHAPES_CLIP, device=device, frame_batch=frame_batch)
        self.precision = precision
        self.num_features = self.model.config.projection_dim
        ip = self.processor.image_processor
        self._input = {"size": dict(ip.size), "crop_size": dict(ip.crop_size), "resample": int(ip.resample),
                       "mean": list(ip.image_mean), "std": list(ip.image_std)}

    def identity(self) -> dict:
        return {"extractor": self.name, "weights_sha256": self.weights_sha256,
                "input": {"processor": "CLIPProcessor", **self._input},
                "features": f"projected image embedding {self.num_features}, not normalised"}

    def __call__(self, videos) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B*T, d]``, one row per frame (CPU)."""
        v = preprocess.as_videos(videos).cpu().numpy()
        with precision_mode(self.precision, self.device.type):
            return self.image_embeddings(v.reshape(-1, *v.shape[2:]), normalize=False).cpu()


EXTRACTORS = {c.name: c for c in (I3DExtractor, StyleGANVI3DExtractor, InceptionExtractor, ShapesI3DExtractor,
                                  CLIPImageExtractor)}


def build_extractor(name: str, weights_path=None, device="cpu", precision="fp32"):
    """The extractor ``name`` (a key of ``EXTRACTORS``) with its local weights (default: its
    environment variable, or the committed model for the shapes extractors)."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    return EXTRACTORS[name](weights_path, device=device, precision=precision)


def torchmetrics_fid(extractor: InceptionExtractor):
    """torchmetrics' ``FrechetInceptionDistance`` around our Inception (a cross-check and drop-in).

    ``antialias=False`` is pinned: it only affects torchmetrics' built-in extractor (whose default,
    True, departs from the TF1 resize of the original FID); ours resizes as ``extractor.convention``
    says. ``normalize=False``: inputs are uint8. torchmetrics' covariance is unbiased (n-1).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    module = _InceptionModule(extractor)
    return FrechetInceptionDistance(feature=module, normalize=False, antialias=False, reset_real_features=False)


class _InceptionModule(torch.nn.Module):
    def __init__(self, extractor: InceptionExtractor):
        super().__init__()
        self.extractor = extractor
        self.num_features = extractor.num_features

    def forward(self, images):
        return self.extractor.images(images)


def describe_weights(path: str | Path) -> str:
    """Short id of a weight file for logs: name and first 12 hex digits of its SHA-256."""
    return f"{Path(path).name}@{weights.file_sha256(path)[:12]}"
