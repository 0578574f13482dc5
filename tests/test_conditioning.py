"""Conditioning: local CLIP tokenizer, text encoding, CLIP image embeddings of frames."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection

from magicvideo.conditioning import ImageEmbedder, clip_preprocess, load_text_encoder, write_clip_tokenizer


def test_tokenizer_makes_listed_words_single_tokens(tmp_path):
    write_clip_tokenizer(tmp_path, ["red", "circle", "moving"], max_length=16)
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    ids = tok(["a red circle moving left"]).input_ids[0]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[:5] == ["<|startoftext|>", "a</w>", "red</w>", "circle</w>", "moving</w>"]
    assert tokens[-1] == "<|endoftext|>" and "l" in tokens  # unknown word falls back to characters
    assert tok.model_max_length == 16


def test_image_embedder_tokens_per_frame(tmp_path, tiny_pipeline_4f):
    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=32)
    CLIPVisionModelWithProjection(cfg).save_pretrained(tmp_path / "image_encoder")
    embedder = ImageEmbedder.from_pretrained(tmp_path)
    frames = torch.randint(0, 256, (2, 3, 4, 40, 48), dtype=torch.uint8)
    tokens = embedder(frames)
    assert tokens.shape == (2, 4, 32)
    one = embedder.vision(pixel_values=clip_preprocess(frames[1, :, 2][None], 32)).image_embeds
    torch.testing.assert_close(tokens[1, 2], one[0], atol=1e-5, rtol=1e-5)
    # the tokens condition the U-Net in place of text (unsupervised pre-training, section 3.1.3)
    out = tiny_pipeline_4f(prompt_embeds=tokens, negative_prompt_embeds=torch.zeros_like(tokens), seed=[0, 1],
                           num_inference_steps=1, output_type="latent").frames
    assert out.shape == (2, 4, 4, 8, 8)
    with pytest.raises(FileNotFoundError, match="CLIP vision weights not found"):
        ImageEmbedder.from_pretrained(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"\(batch, 3, frames, height, width\)"):
        embedder(frames[:, :, 0])


def test_clip_preprocess_crops_the_centre_and_normalises():
    x = torch.zeros(1, 3, 10, 20, dtype=torch.uint8)
    x[..., 5:15] = 255  # white centre band, exactly the centre crop after resizing 10x20 -> 8x16
    out = clip_preprocess(x, 8)
    assert out.shape == (1, 3, 8, 8)
    white = (1 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor([0.26862954, 0.26130258, 0.27577711])
    torch.testing.assert_close(out[0, :, 4, 4], white, atol=0.05, rtol=0)


def test_text_encoder_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_text_encoder(tmp_path / "nope")
    (tmp_path / "sd" / "tokenizer").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="text_encoder subfolder not found"):
        load_text_encoder(tmp_path / "sd")
