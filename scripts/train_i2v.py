"""Train Magic 1-For-1's image-to-video model (and, optionally, the text-to-image U-Net that makes
its first frame) for an existing key-frame pipeline, on rendered shapes clips, and write a copy of
the pipeline that holds them.

    python scripts/train_i2v.py OUT [--pipeline checkpoints/shapes/pipeline] [--data DIR]
        [--steps 500] [--batch-size 64] [--max-context 4] [--t2i-steps 0] [--t2i-batch-size 256]

``--steps 0 --t2i-steps N`` trains only the T2I U-Net for the pipeline (its ``i2v/`` is kept).

- ``i2v``: :class:`~magicvideo.models.ImageToVideoUNet` from the pipeline's key-frame U-Net
  (:mod:`magicvideo.training.i2v`), with the shapes recipe's ``finetune`` stage settings (clips,
  lr, EMA, condition dropout) but ``--steps`` x ``--batch-size``; conditioned on the pipeline's own
  ``image_encoder``.
- ``t2i_unet`` (``--t2i-steps`` > 0): a ``UNet2DConditionModel`` trained as the recipe's ``t2i`` stage
  (:mod:`magicvideo.training.t2i`) with the pipeline's VAE and text encoder. The committed pipeline
  has none (the chain's ``OUT/t2i`` was not committed); without it magic141 takes the key-frame
  model's frame 0 (exactly an image model under directed attention).

``--data`` is a rendered shapes benchmark with training clips (``magicvideo data shapes DIR``;
default: render the recipe's into ``OUT/data``). Writes ``OUT/runs/{i2v,t2i}`` (resumable) and
``OUT/pipeline`` (the input pipeline + ``i2v/`` in float16 [+ ``t2i_unet/`` in float16]); prints a
JSON summary. Timing (H200): the key-frame model trains at ~0.4 s/step at batch 64
(overhead-bound), so ``--steps 500 --batch-size 64`` is ~4 minutes with setup; the recipe's t2i
stage ran 1,200 x 256 frames in 160 s, so ``--t2i-steps 600`` adds ~1.5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--pipeline", type=Path, default=Path("checkpoints/shapes/pipeline"))
    ap.add_argument("--data", type=Path, help="a rendered shapes benchmark with train.csv (default: render into OUT/data)")
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-context", type=int, default=4, help="most conditioning frames per training clip")
    ap.add_argument("--t2i-steps", type=int, default=0, help="also train the T2I U-Net this many steps (0: no)")
    ap.add_argument("--t2i-batch-size", type=int, default=256)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override, e.g. data.train=8 (a CPU smoke run)")
    ap.add_argument("--device")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.steps < 0 or a.batch_size < 1 or a.t2i_steps < 0 or a.steps + a.t2i_steps == 0:
        ap.error("--batch-size must be >= 1, --steps and --t2i-steps >= 0, and one of them > 0")

    import torch

    from magicvideo.models import ImageToVideoUNet
    from magicvideo.pipeline import add_i2v
    from magicvideo.training.i2v import build_i2v_trainer
    from magicvideo.training.shapes import INTERPOLATION_STORAGE_DTYPE, ShapesChain, load_shapes_recipe

    t_start = time.perf_counter()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from magicvideo.training.config import parse_override

    recipe = load_shapes_recipe(a.recipe, dict(parse_override(x) for x in a.set) or None)
    chain = ShapesChain(out, recipe, 1.0, a.device, progress=not a.no_progress, log=print)
    if a.data is not None and not chain.data_dir.exists():
        os.symlink(a.data.resolve(), chain.data_dir)
    chain.data()  # renders the recipe's benchmark unless OUT/data holds it already
    summary: dict = {}
    pipeline = out / "pipeline"
    shutil.rmtree(pipeline, ignore_errors=True)
    shutil.copytree(a.pipeline, pipeline)

    if a.t2i_steps:
        summary["t2i"] = train_t2i(chain, a, pipeline)

    if not a.steps:  # --steps 0: only the T2I U-Net (the pipeline's own i2v/, if any, is kept)
        summary.update(pipeline=str(pipeline), seconds=round(time.perf_counter() - t_start, 1))
        print(json.dumps(summary, indent=1, default=str))
        return 0
    cfg = chain.stage_config("finetune", weights="random", conditioning="text", init_unet=str(a.pipeline.resolve()),
                             out_dir=str(chain.run_dir("i2v")))  # fmt: skip
    cfg = cfg.model_copy(update={"steps": a.steps, "batch_size": a.batch_size, "out_dir": str(chain.run_dir("i2v"))})
    trainer = build_i2v_trainer(cfg, max_context=a.max_context)
    summary["i2v"] = chain._fit(trainer)
    model = ImageToVideoUNet.from_pretrained(chain.final_weights(cfg, "i2v"))
    add_i2v(pipeline, model.to(dtype=INTERPOLATION_STORAGE_DTYPE))  # the pipeline's own image_encoder stays
    summary.update(pipeline=str(pipeline), seconds=round(time.perf_counter() - t_start, 1),
                   device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
    print(json.dumps(summary, indent=1, default=str))
    return 0


def train_t2i(chain, a, pipeline: Path) -> dict:
    """The recipe's t2i stage with the pipeline's frozen VAE and text encoder; writes ``t2i_unet/``."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from magicvideo.pipeline import MagicVideoPipeline, add_i2v
    from magicvideo.training.shapes import INTERPOLATION_STORAGE_DTYPE
    from magicvideo.training.t2i import T2ITrainer
    from magicvideo.training.vae import frame_dataset

    cfg = chain.stage_config("t2i")
    cfg = cfg.model_copy(update={"steps": a.t2i_steps, "batch_size": a.t2i_batch_size, "out_dir": str(chain.run_dir("t2i"))})
    pipe = MagicVideoPipeline.from_pretrained(a.pipeline)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        unet = UNet2DConditionModel(**cfg.resolved_model().unet.model_dump())
    trainer = T2ITrainer(cfg, frame_dataset(cfg), unet, pipe.vae, DDPMScheduler.from_config(pipe.scheduler.config),
                         pipe.tokenizer, pipe.text_encoder)  # fmt: skip
    summary = chain._fit(trainer)
    trained = UNet2DConditionModel.from_pretrained(chain.final_weights(cfg, "unet"))
    add_i2v(pipeline, t2i_unet=trained.to(dtype=INTERPOLATION_STORAGE_DTYPE))
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
