"""Locating local weight files: nothing is downloaded, a missing file gives one clear error."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from magicvideo.checkpoints import shapes_checkpoint


class MissingWeightsError(FileNotFoundError):
    """A feature extractor's weight file (or folder) is not where the configuration points."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where one extractor's weights usually come from and how a user points to them."""

    what: str          # human name of the network, e.g. "FVD I3D (pytorch-i3d state dict)"
    filename: str      # the file's usual name
    source: str        # where it is usually obtained
    config_key: str    # key of the eval config (configs/eval/*.yaml, `--set`) that holds the path
    env_var: str       # environment variable that holds the path
    default: Path | None = None  # used when neither the config nor the environment gives a path
    required: tuple[str, ...] = ()  # files a weights *folder* must hold


I3D_STATE_DICT = WeightsSpec(
    what="FVD I3D (Inception-I3D, Kinetics-400, pytorch-i3d state dict)",
    filename="i3d_pretrained_400.pt",
    source="VideoGPT's FVD release (wilson1yan/VideoGPT, also shipped by TATS and common_metrics_on_video_quality)",
    config_key="metrics.fvd.weights",
    env_var="MAGICVIDEO_I3D_WEIGHTS",
)
I3D_TORCHSCRIPT = WeightsSpec(
    what="FVD I3D (StyleGAN-V TorchScript detector)",
    filename="i3d_torchscript.pt",
    source="StyleGAN-V's metrics (universome/stylegan-v, src/metrics/frechet_video_distance.py: detector_url)",
    config_key="metrics.fvd.weights",
    env_var="MAGICVIDEO_I3D_TORCHSCRIPT",
)
INCEPTION = WeightsSpec(
    what="FID Inception-v3 (pt_inception-2015-12-05, pytorch-fid / torch-fidelity layout)",
    filename="pt_inception-2015-12-05-6726825d.pth",
    source="pytorch-fid's release 'fid_weights' (mseitzer/pytorch-fid), same file as torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth",
    config_key="metrics.fid.weights",
    env_var="MAGICVIDEO_INCEPTION_WEIGHTS",
)
CLIP = WeightsSpec(
    what="CLIPSIM CLIP ViT-B/32 (transformers folder)",
    filename="clip-vit-base-patch32/",
    source="the Hugging Face model openai/clip-vit-base-patch32, saved with save_pretrained",
    config_key="metrics.clipsim.weights",
    env_var="MAGICVIDEO_CLIP_PATH",
    required=("config.json",),
)
SHAPES_CLASSIFIER = WeightsSpec(
    what="shapes FVD / attribute classifier (ShapesI3D folder: config.json + diffusion_pytorch_model.safetensors)",
    filename="checkpoints/shapes/classifier/",
    source="this repository (committed), or `magicvideo train shapes OUT --stages classifier` (OUT/classifier)",
    config_key="metrics.fvd.weights",
    env_var="MAGICVIDEO_SHAPES_CLASSIFIER",
    default=shapes_checkpoint("classifier"),
    required=("config.json", "diffusion_pytorch_model.safetensors"),
)
SHAPES_CLIP = WeightsSpec(
    what="FID frame encoder: CLIP image tower (transformers CLIPModel + CLIPProcessor folder)",
    filename="checkpoints/shapes/clip/",
    source="this repository (committed: the shapes CLIP pair), or `magicvideo train shapes OUT --stages clip` "
    "(OUT/clip); any CLIP folder saved with save_pretrained works",
    config_key="metrics.fid.weights",
    env_var="MAGICVIDEO_FID_CLIP_PATH",
    default=shapes_checkpoint("clip"),
    required=("config.json", "model.safetensors", "processor_config.json"),
)


def resolve_weights(path: str | os.PathLike | None, spec: WeightsSpec, *, directory: bool = False) -> Path:
    """The weights path: ``path`` if given, else ``$spec.env_var``, else ``spec.default``; raise one
    clear error if it is missing (a folder also when one of ``spec.required`` is missing in it)."""
    raw = path if path is not None else os.environ.get(spec.env_var) or spec.default
    if raw is None or str(raw) == "":
        raise MissingWeightsError(_message(spec, None))
    p = Path(raw).expanduser()
    ok = p.is_dir() if directory else p.is_file()
    if not ok:
        raise MissingWeightsError(_message(spec, p))
    for name in spec.required if directory else ():
        if not (p / name).is_file():
            raise MissingWeightsError(_message(spec, p / name))
    return p


def _message(spec: WeightsSpec, path: Path | None) -> str:
    where = f"not found at {path}" if path is not None else "no path given"
    key = f"the eval config key `{spec.config_key}` or " if spec.config_key else ""
    return (
        f"{spec.what}: {spec.filename} {where}. It is usually obtained from {spec.source}; nothing is "
        f"downloaded. Point to it with {key}the environment variable {spec.env_var}."
    )


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (or of a folder's files, in sorted order); memoised by path, size, mtime."""
    p = Path(path)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    st = [(q.stat().st_size, q.stat().st_mtime_ns) for q in files]
    key = (str(p.resolve()), sum(s for s, _ in st), max((m for _, m in st), default=0))
    if key not in _HASHES:
        h = hashlib.sha256()
        for q in files:
            if p.is_dir():
                h.update(str(q.relative_to(p)).encode())
            with open(q, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def load_state_dict(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)`` on the CPU, with one error naming the file when it is not a
    state dict PyTorch's restricted unpickler can read (a truncated download, another format)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{path}: not a PyTorch state dict that torch.load(weights_only=True) can read "
                         f"({type(exc).__name__}: {first})") from exc
