"""The shapes CLIP pair: a small transformers ``CLIPModel`` trained contrastively on captions and
frames (Radford et al. 2021), with the project's local BPE tokenizer over the shapes vocabulary.

Its text tower conditions generation (the U-Net reads the text encoder's last hidden states, so
``text_encoder.hidden_size == unet.cross_attention_dim``), and its image tower gives the
pre-training's condition (3.1.3: the projected image embedding of each frame replaces the text,
so ``text_encoder.projection_dim == unet.cross_attention_dim`` too). Both are checked when the
trainer is built.

Objective (:func:`info_nce`): CLIP's symmetric InfoNCE over a batch of (caption, frame) pairs,
logits = cosine similarity x a learnt scale ``exp(logit_scale)`` (1 / temperature; initialised to
1 / ``clip.init_temperature`` and clamped at ``clip.max_logit_scale``, as CLIP does). Captions of
other clips in the batch are negatives even when they name the same attributes (the shapes
vocabulary is small, so a batch holds such near-duplicates; CLIP accepts the same noise on web
data). Frames go through :func:`magicvideo.conditioning.clip_preprocess`, exactly as
:class:`~magicvideo.conditioning.ImageEmbedder` feeds them at pre-training time.

:func:`export_clip` writes the standard folders: ``text_encoder/`` (``CLIPTextModel``),
``tokenizer/``, ``image_encoder/`` (``CLIPVisionModelWithProjection``) and ``clip/`` (the whole
``CLIPModel`` + ``CLIPProcessor``, what :class:`evaluation.clipsim.CLIPSimScorer` loads).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from magicvideo.training.config import TrainConfig
from magicvideo.training.trainer import Trainer


def info_nce(text: torch.Tensor, image: torch.Tensor, logit_scale: torch.Tensor, max_scale: float = 100.0) -> torch.Tensor:
    """CLIP's symmetric contrastive loss of paired embeddings ``(B, d)`` (any norm; normalised
    here); pair ``i`` is the positive of row and column ``i``."""
    text = F.normalize(text.float(), dim=-1)
    image = F.normalize(image.float(), dim=-1)
    scale = logit_scale.float().exp().clamp(max=max_scale)
    logits = scale * text @ image.T
    labels = torch.arange(len(text), device=text.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def clip_config(cfg: TrainConfig, tokenizer):
    """The ``CLIPConfig``: the model config's ``text_encoder`` as text tower, ``clip`` as vision
    tower, ``text_encoder.projection_dim`` as the joint space; checks the widths against the U-Net."""
    from transformers import CLIPConfig

    mc, c = cfg.resolved_model(), cfg.clip
    t = mc.text_encoder
    cross = mc.unet.cross_attention_dim
    widths = (("hidden_size", t.hidden_size), ("projection_dim", t.projection_dim))
    bad = [f"model.text_encoder.{k} = {v}" for k, v in widths if v != cross]
    if bad:
        raise ValueError(f"{'; '.join(bad)}: must equal model.unet.cross_attention_dim = {cross} (the U-Net attends to "
                         "text hidden states and, in pre-training, to projected image embeddings)")  # fmt: skip
    if c.image_size % c.patch_size:
        raise ValueError(f"clip.image_size {c.image_size} is not a multiple of clip.patch_size {c.patch_size}")
    text = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, **t.model_dump(exclude={"vocabulary"}))  # fmt: skip
    vision = dict(c.model_dump(exclude={"init_temperature", "max_logit_scale"}), projection_dim=t.projection_dim,
                  hidden_act=t.hidden_act)  # fmt: skip
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=t.projection_dim,
                      logit_scale_init_value=math.log(1 / c.init_temperature))  # fmt: skip


def _embeds(out) -> torch.Tensor:
    # transformers < 5 returns the projected tensor; 5.x a model output whose pooler_output it is
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class CLIPPairTrainer(Trainer):
    """Trains a ``CLIPModel`` (both towers, projections and the logit scale) on (caption, frame) pairs.

    Args:
        cfg: training config (``stage: clip``).
        dataset: items with ``video`` ``(1, 3, H, W)`` in [-1, 1] and ``caption``.
        model: the ``CLIPModel``.
        tokenizer: its ``CLIPTokenizer`` (the local shapes BPE vocabulary).
        device: overrides ``cfg.device``.
    """

    model_name = "clip"

    def __init__(self, cfg: TrainConfig, dataset, model, tokenizer, device: str | torch.device | None = None):
        super().__init__(cfg, device)
        self.dataset, self.model, self.tokenizer = dataset, model.to(self.device), tokenizer
        self.setup()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def load_model_weights(self, folder: Path) -> None:
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(Path(folder) / "model.safetensors"))

    def embed(self, captions: list[str], frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text and image embeddings ``(B, d)`` (not normalised); frames ``(B, 3, H, W)`` in [-1, 1]."""
        from magicvideo.conditioning import clip_preprocess

        ids = self.tokenizer(list(captions), padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)  # fmt: skip
        pixels = clip_preprocess((frames.to(self.device) + 1) / 2, self.model.config.vision_config.image_size)
        return _embeds(self.model.get_text_features(input_ids=ids)), _embeds(self.model.get_image_features(pixel_values=pixels))

    def loss(self, batch: dict) -> torch.Tensor:
        frames = batch["video"]
        frames = frames[:, 0] if frames.ndim == 5 else frames
        text, image = self.embed(batch["caption"], frames)
        return info_nce(text, image, self.model.logit_scale, self.cfg.clip.max_logit_scale)


def build_clip_trainer(cfg: TrainConfig, dataset=None, device: str | torch.device | None = None) -> CLIPPairTrainer:
    """A new ``CLIPModel`` (seeded by ``seed``) with the local tokenizer over
    ``model.text_encoder.vocabulary``, on single frames of ``data.csv`` unless `dataset` is given."""
    from transformers import CLIPModel

    from magicvideo.build import build_text_encoder
    from magicvideo.training.vae import frame_dataset

    if cfg.stage != "clip":
        raise ValueError(f"stage: expected 'clip', got {cfg.stage!r}")
    mc = cfg.resolved_model()
    tokenizer, _ = build_text_encoder(mc)
    config = clip_config(cfg, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CLIPModel(config)
    return CLIPPairTrainer(cfg, dataset if dataset is not None else frame_dataset(cfg), model, tokenizer, device=device)


def export_clip(model, vocabulary: list[str], folder: str | Path) -> dict[str, Path]:
    """Write `model`'s towers as standard folders under `folder`: ``text_encoder/``
    (``CLIPTextModel``), ``tokenizer/`` (local BPE over `vocabulary`), ``image_encoder/``
    (``CLIPVisionModelWithProjection``) and ``clip/`` (``CLIPModel`` + ``CLIPProcessor``)."""
    from transformers import (CLIPImageProcessor, CLIPProcessor, CLIPTextModel, CLIPTokenizer,
                              CLIPVisionModelWithProjection)  # fmt: skip

    from magicvideo.conditioning import CLIP_MEAN, CLIP_STD, write_clip_tokenizer

    folder = Path(folder)
    cfg = model.config
    model = model.to("cpu").eval()
    tok_dir = write_clip_tokenizer(folder / "tokenizer", vocabulary, max_length=cfg.text_config.max_position_embeddings)
    text = CLIPTextModel(cfg.text_config)
    # transformers 5's CLIPTextModel holds the text transformer's modules itself (4.x: .text_model)
    getattr(text, "text_model", text).load_state_dict(model.text_model.state_dict())
    text.save_pretrained(folder / "text_encoder")
    vcfg = cfg.vision_config
    vcfg.projection_dim = cfg.projection_dim
    vision = CLIPVisionModelWithProjection(vcfg)
    vision.vision_model.load_state_dict(model.vision_model.state_dict())
    vision.visual_projection.load_state_dict(model.visual_projection.state_dict())
    vision.save_pretrained(folder / "image_encoder")
    model.save_pretrained(folder / "clip")
    side = vcfg.image_size
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                           image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)),
        tokenizer=CLIPTokenizer.from_pretrained(tok_dir),
    )  # fmt: skip
    processor.save_pretrained(folder / "clip")
    return {k: folder / k for k in ("text_encoder", "tokenizer", "image_encoder", "clip")}
