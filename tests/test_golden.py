"""Golden outputs, as diffusers' tests keep them: fixed slices of the tiny U-Net's output, the
tiny pipeline's and the committed shapes pipeline's (``checkpoints/shapes/pipeline``), at fixed
seeds, against ``tests/golden/slices.json`` with a tolerance. A numerical change to the model or
the sampler then fails here instead of passing unnoticed.

After an intended numerical change, regenerate the slices (and say why in the commit):

    python -m tests.test_golden --regenerate
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden" / "slices.json"
SHAPES_PIPELINE = Path(__file__).resolve().parents[1] / "checkpoints" / "shapes" / "pipeline"
PROMPTS = ["a red circle moving left", "a blue square moving up"]
SHAPES_PROMPT = "a red circle moves left slowly on a black background"

#: |actual - expected| <= ATOL + RTOL * |expected| per value. Reruns on one machine are bit-identical
#: and other thread counts differ by < 1e-6 here; test_tolerance_catches_small_changes shows what
#: these tolerances catch.
ATOL, RTOL = 1e-4, 1e-4


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Add seeded noise to every weight. A fresh model zero-initialises its video additions
    (temporal attention outputs, the FPS embedding), which would then drop out of the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


def tiny_config(**update):
    from magicvideo.build import load_model_config

    return load_model_config("tiny").model_copy(update={"num_frames": 4, **update})


def unet_slice(cfg=None, edit=None) -> torch.Tensor:
    """The tiny U-Net (4 frames, every weight perturbed, then `edit`-ed): noise prediction at two
    timesteps and frame rates."""
    from magicvideo.build import build_unet

    torch.manual_seed(0)
    unet = _perturb(build_unet(cfg or tiny_config()).eval(), seed=1)
    if edit is not None:
        edit(unet)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 4, 8, 8, generator=g)
    text = torch.randn(2, 7, 32, generator=g)
    with torch.no_grad():
        out = unet(x, torch.tensor([10, 500]), encoder_hidden_states=text, fps=torch.tensor([4.0, 8.0])).sample
    return out[:, 0, :, -2:, -2:]  # every frame: the later ones see the earlier ones (directed attention)


def tiny_pipeline_slice() -> torch.Tensor:
    """The tiny pipeline (random weights, U-Net and VAE perturbed): 3 DDIM steps with CFG."""
    from magicvideo.build import build_pipeline

    pipe = build_pipeline(tiny_config(), weights="random", seed=0)
    _perturb(pipe.unet, seed=1)
    _perturb(pipe.vae, seed=2)
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(PROMPTS, seed=[3, 4], num_inference_steps=3, guidance_scale=4.0, output_type="pt").frames
    return frames[:, :, :, -2:, -2:]  # (2 clips, 3 channels, 4 frames, 2, 2)


def shapes_pipeline_slice() -> torch.Tensor:
    """The committed shapes pipeline: 3 DDIM steps with CFG, 16 frames."""
    from magicvideo.pipeline import MagicVideoPipeline

    pipe = MagicVideoPipeline.from_pretrained(SHAPES_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(SHAPES_PROMPT, seed=7, num_inference_steps=3, guidance_scale=7.5, output_type="pt").frames
    return frames[0, :, ::5, 12:24:4, 12:24:4]  # 3 channels x frames 0, 5, 10, 15 x 3 x 3, where the circle starts


SLICES = {"tiny_unet": unet_slice, "tiny_pipeline": tiny_pipeline_slice, "shapes_pipeline": shapes_pipeline_slice}


def assert_matches(name: str, actual: torch.Tensor) -> None:
    expected = json.loads(GOLDEN.read_text())[name]
    assert list(actual.shape) == expected["shape"], name
    torch.testing.assert_close(actual.flatten().double(), torch.tensor(expected["values"], dtype=torch.float64),
                               atol=ATOL, rtol=RTOL, msg=lambda m: f"{name} differs from {GOLDEN.name}: {m}\n"
                               "an intended change? regenerate: python -m tests.test_golden --regenerate")  # fmt: skip


@pytest.mark.parametrize("name", SLICES)
def test_golden_slice(name, one_thread):
    assert_matches(name, SLICES[name]())


def test_tolerance_catches_small_changes(one_thread):
    """The tolerance is tight enough to catch real changes: the temporal attention made
    bidirectional, or one temporal attention layer's output 1% larger, fails the golden slice."""

    def nudge(unet):
        with torch.no_grad():
            unet.down_blocks[0].attentions[0].transformer_blocks[0].attn_temp.to_out.weight.mul_(1.01)

    for changed in (unet_slice(tiny_config(temporal_attention="bidirectional")), unet_slice(edit=nudge)):
        with pytest.raises(AssertionError, match="tiny_unet differs"):
            assert_matches("tiny_unet", changed)


def regenerate() -> None:
    torch.set_num_threads(1)
    golden = {}
    for name, fn in SLICES.items():
        values = fn()
        golden[name] = {"shape": list(values.shape), "values": [round(v, 7) for v in values.flatten().tolist()]}
    GOLDEN.parent.mkdir(exist_ok=True)
    lines = [f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in golden.items()]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python -m tests.test_golden --regenerate")
    regenerate()
