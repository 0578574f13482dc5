"""Conditioning: CLIP text embeddings tau(y) (section 3.1) and CLIP image embeddings of frames
(the text substitute of unsupervised pre-training, 3.1.3, and the interpolation model's
condition, 3.2). Everything loads from local diffusers/transformers folders; nothing is
downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

# CLIP's image normalisation (OpenAI CLIP preprocessing).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _require(folder: Path, what: str, hint: str) -> Path:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found: {folder} ({hint})")
    return folder


def load_text_encoder(path: str | Path) -> tuple[CLIPTokenizer, CLIPTextModel]:
    """Tokenizer and CLIP text encoder from a diffusers-format SD 1.x folder
    (``PATH/tokenizer/{vocab.json,merges.txt}``, ``PATH/text_encoder/``)."""
    path = Path(path)
    hint = "a diffusers-format Stable Diffusion 1.x folder; set model.pretrained_2d or MAGICVIDEO_SD_PATH"
    _require(path, "model folder", hint)
    tok_dir = _require(path / "tokenizer", "tokenizer subfolder", hint)
    enc_dir = _require(path / "text_encoder", "text_encoder subfolder", hint)
    return CLIPTokenizer.from_pretrained(tok_dir), CLIPTextModel.from_pretrained(enc_dir)


@torch.no_grad()
def encode_prompts(
    tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompts: list[str], device: torch.device | str | None = None
) -> torch.Tensor:
    """tau(y): the text encoder's last hidden states ``(batch, max_length, hidden)``, as SD 1.x
    conditions its cross-attention (padding to the tokenizer's max length)."""
    ids = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    device = device or text_encoder.device
    return text_encoder(ids.to(device))[0]


def long_prompts(tokenizer: CLIPTokenizer, prompts: list[str]) -> list[int]:
    """Indices of the prompts longer than the tokenizer's ``model_max_length`` (77 for CLIP):
    :func:`encode_prompts` drops their tail, so the caller warns (once per run) and counts them."""
    limit = tokenizer.model_max_length
    ids = tokenizer(list(prompts), truncation=False, add_special_tokens=True, verbose=False).input_ids
    return [i for i, seq in enumerate(ids) if len(seq) > limit]


def clip_preprocess(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 or [0, 1] float frames ``(N, 3, H, W)`` -> CLIP input: bicubic resize of the shorter
    side to `size`, centre crop, CLIP mean/std normalisation (OpenAI CLIP's preprocessing, done
    in torch so it batches on the GPU)."""
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top : top + size, left : left + size]
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ImageEmbedder(nn.Module):
    """CLIP image embeddings of every frame, as conditioning tokens ``(batch, frames, dim)``.

    Section 3.1.3 replaces the text condition by "the embeddings of video frames" from CLIP's
    vision encoder during unsupervised pre-training; section 3.2 conditions the interpolation
    model on the CLIP embeddings of the two neighbouring key frames. The projected image
    embedding (CLIP's joint text-image space) is used, one token per frame. Its width must equal
    the U-Net's ``cross_attention_dim``, or a learned projection has to be added by the caller.
    """

    def __init__(self, vision: CLIPVisionModelWithProjection) -> None:
        super().__init__()
        self.vision = vision

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ImageEmbedder":
        path = Path(path)
        folder = path / "image_encoder" if (path / "image_encoder").is_dir() else path
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"CLIP vision weights not found at {folder} (a transformers CLIPVisionModelWithProjection "
                "folder, e.g. the image_encoder/ of an SD image-variation checkpoint; set model.image_encoder)"
            )
        return cls(CLIPVisionModelWithProjection.from_pretrained(folder))

    @property
    def dim(self) -> int:
        return self.vision.config.projection_dim

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames ``(batch, 3, frames, H, W)``, uint8 or float in [0, 1] -> ``(batch, frames, dim)``."""
        if frames.ndim != 5 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (batch, 3, frames, height, width), got {tuple(frames.shape)}")
        b, _, f, h, w = frames.shape
        flat = frames.transpose(1, 2).reshape(b * f, 3, h, w).to(self.vision.device)
        pixels = clip_preprocess(flat, self.vision.config.image_size).to(self.vision.dtype)
        return self.vision(pixel_values=pixels).image_embeds.view(b, f, -1)


# ---- a small local tokenizer for the tiny and shapes models ------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map (the base alphabet of byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_clip_tokenizer(folder: str | Path, words: list[str] = (), max_length: int = 77) -> Path:
    """Write a CLIP BPE tokenizer (``vocab.json`` + ``merges.txt``) whose merges make each of
    `words` one token; other text falls back to characters. The tiny and shapes models use it
    because no pre-trained vocabulary can be downloaded here; it is a real CLIPTokenizer folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = list(bytes_to_unicode().values())
    vocab: list[str] = alphabet + [c + "</w>" for c in alphabet]
    merges: list[tuple[str, str]] = []
    seen = set(vocab)
    for word in dict.fromkeys(w.lower() for w in words):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            merged = pair[0] + pair[1]
            if pair not in merges:
                merges.append(pair)
            if merged not in seen:
                seen.add(merged)
                vocab.append(merged)
            parts = [merged] + parts[2:]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": max_length, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                    "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})
    )  # fmt: skip
    return folder
