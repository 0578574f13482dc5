"""CLIPSIM with a tiny random CLIP saved to a temporary folder."""

import json

import numpy as np
import pytest
import torch

from evaluation import CLIPSimScorer, MissingWeightsError, compute_clipsim


def byte_chars():
    """GPT-2 / CLIP byte-to-unicode alphabet (256 symbols)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    root = tmp_path_factory.mktemp("clip")
    chars = byte_chars()
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    (root / "tok").mkdir()
    (root / "tok" / "vocab.json").write_text(json.dumps(vocab))
    (root / "tok" / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(root / "tok")
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    eos = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(root / "clip")
    processor.save_pretrained(root / "clip")
    return root / "clip"


def test_clipsim_is_mean_frame_cosine(clip_dir):
    scorer = CLIPSimScorer(clip_dir)
    v = torch.randint(0, 256, (2, 3, 40, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    prompts = ["a red circle moving left", "a blue square"]
    scores = scorer(v, prompts)
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1)
    # by hand: the model's own embeddings, normalised, cosine per frame, mean over frames
    model, proc = scorer.model, scorer.processor
    with torch.no_grad():
        for i in range(2):
            tok = proc(text=[prompts[i]], return_tensors="pt", padding=True)
            t = model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                      pixel_values=proc(images=list(v[i].numpy()), return_tensors="pt")["pixel_values"])
            te = t.text_embeds / t.text_embeds.norm(dim=-1, keepdim=True)
            ie = t.image_embeds / t.image_embeds.norm(dim=-1, keepdim=True)
            assert scores[i] == pytest.approx(float((ie @ te.T).mean()), abs=1e-5)
    mean, per_clip = compute_clipsim(v, prompts, scorer=scorer, batch_size=1)
    np.testing.assert_allclose(per_clip, scores, atol=1e-6)
    assert mean == pytest.approx(scores.mean())
    with pytest.raises(ValueError, match="one prompt per clip"):
        scorer(v, prompts[:1])


def test_missing_clip_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("MAGICVIDEO_CLIP_PATH", str(tmp_path / "nothing"))
    with pytest.raises(MissingWeightsError) as e:
        CLIPSimScorer()
    for part in ("clip-vit-base-patch32", "MAGICVIDEO_CLIP_PATH", "nothing"):
        assert part in str(e.value)


def test_long_prompt_is_truncated_to_the_text_tower(clip_dir):
    """Prompts are cut to the text tower's positions (32 in the shapes CLIP, 77 in CLIP ViT-B/32), not
    to a fixed 77 that a shorter tower cannot take."""
    from magicvideo.checkpoints import shapes_checkpoint

    v = torch.randint(0, 256, (1, 2, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    long = " ".join(["a red circle moving left"] * 20)  # over 77 tokens
    for scorer in (CLIPSimScorer(clip_dir), CLIPSimScorer(shapes_checkpoint("clip"))):
        assert np.isfinite(scorer(v, [long])).all()
