"""CLIPSIM: mean over frames of the cosine similarity between CLIP text and image embeddings.

Convention (Wu et al., GODIVA 2021; reported by MagicVideo, Make-A-Video, ...): for a clip with
prompt ``y`` and frames ``x_1..x_T``, ``CLIPSIM = 1/T sum_t cos(E_text(y), E_image(x_t))`` with CLIP
ViT-B/32 projected embeddings; the benchmark value is the mean over clips. Raw cosine: no factor
100 and no clipping at 0 (CLIPScore's ``2.5 * max(cos, 0)`` is a different metric). Frames go
through the folder's ``CLIPProcessor`` (shorter side to 224, bicubic, centre crop, CLIP mean/std),
prompts through its tokenizer, truncated to 77 tokens (the text tower's length: 32 for the shapes CLIP).
"""

from __future__ import annotations

import numpy as np
import torch

from . import preprocess, weights


def _embedding(out) -> torch.Tensor:
    # transformers < 5 returns the projected tensor; 5.x a model output whose pooler_output it is
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class CLIPEncoder:
    """A local CLIP folder (``CLIPModel`` + ``CLIPProcessor``, ``save_pretrained`` layout): text and
    frame embeddings. Shared by CLIPSIM and the CLIP frame extractor of FID (``CLIPImageExtractor``).

    Args:
        path: the folder; default ``$spec.env_var``, else ``spec.default``.
        spec: which weights these are (error messages: the config key, the environment variable).
        device: torch device.
        frame_batch: frames per image-encoder call.
    """

    def __init__(self, path=None, spec: weights.WeightsSpec = weights.CLIP, device="cpu", frame_batch: int = 256):
        from transformers import CLIPModel, CLIPProcessor

        folder = weights.resolve_weights(path, spec, directory=True)
        self.device, self.frame_batch = torch.device(device), frame_batch
        self.model = CLIPModel.from_pretrained(folder).eval().requires_grad_(False).to(self.device)
        self.processor = CLIPProcessor.from_pretrained(folder)
        self.weights_sha256 = weights.file_sha256(folder)

    @torch.no_grad()
    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings ``[len(prompts), d]``; prompts truncated to the text tower's length
        (77 tokens for CLIP ViT-B/32, 32 for the shapes CLIP)."""
        max_length = self.model.config.text_config.max_position_embeddings
        tok = self.processor(text=list(prompts), return_tensors="pt", padding=True, truncation=True,
                             max_length=max_length)
        tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
        e = _embedding(self.model.get_text_features(**tok)).float()
        return e / e.norm(dim=-1, keepdim=True)

    @torch.no_grad()
    def image_embeddings(self, frames: np.ndarray, normalize: bool = True) -> torch.Tensor:
        """Projected image embeddings ``[N, d]`` of uint8 frames ``[N, H, W, 3]`` (unit norm unless
        ``normalize=False``), each frame through the folder's ``CLIPProcessor``."""
        out = []
        for i in range(0, len(frames), self.frame_batch):
            px = self.processor(images=list(frames[i : i + self.frame_batch]), return_tensors="pt")["pixel_values"]
            e = _embedding(self.model.get_image_features(pixel_values=px.to(self.device))).float()
            out.append(e / e.norm(dim=-1, keepdim=True) if normalize else e)
        return torch.cat(out)


class CLIPSimScorer(CLIPEncoder):
    """Per-clip CLIPSIM with a local CLIP folder (``CLIPModel`` + ``CLIPProcessor``, ``save_pretrained`` layout).

    Args:
        path: the folder; default ``$MAGICVIDEO_CLIP_PATH``.
        device: torch device.
        frame_batch: frames per image-encoder call.
    """

    name = "clipsim"

    def __init__(self, path=None, device="cpu", frame_batch: int = 256):
        super().__init__(path, weights.CLIP, device=device, frame_batch=frame_batch)

    def __call__(self, videos, prompts: list[str]) -> np.ndarray:
        """CLIPSIM of each clip ``[B]`` for uint8 videos ``[B, T, H, W, 3]`` and one prompt per clip."""
        v = preprocess.as_videos(videos).cpu().numpy()
        if len(prompts) != v.shape[0]:
            raise ValueError(f"need one prompt per clip: {v.shape[0]} clips, {len(prompts)} prompts")
        b, t = v.shape[:2]
        img = self.image_embeddings(v.reshape(b * t, *v.shape[2:])).reshape(b, t, -1)
        txt = self.text_embeddings(prompts)
        return (img * txt[:, None, :]).sum(-1).mean(1).double().cpu().numpy()
