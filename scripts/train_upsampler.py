"""Train the x4 super-resolution model (paper 3.4) with the shapes recipe's ``upsample`` stage, on
the frames of a high-resolution shapes benchmark, and write it as a standalone SR checkpoint.

    python scripts/train_upsampler.py OUT --data DIR [--no-augmentation] [--set KEY=VALUE ...]
        [--pipeline checkpoints/shapes/pipeline] [--recipe default] [--steps-scale 1] [--device cuda]

``--data`` is a shapes benchmark rendered at the recipe's size x ``scale_factor`` (``magicvideo data
shapes DIR --size 256`` for the default recipe's 64 px frames); when DIR does not exist it is
rendered there from the recipe's benchmark spec (same seed and clips as the 64 px one, so its test
clips are the 256 px references of ``benchmarks/bench_upsampler.py``). ``--set`` overrides keys of
the stage's training config (``--set steps=500 --set upsampler.crop=96``); ``--no-augmentation``
is ``--set upsampler.noise_augmentation=false``, the issue's ablation (same budget, seed and draws).

Writes ``OUT/runs/upsample`` (the training run: checkpoints, ``train_log.jsonl``; a rerun resumes),
``OUT/upsampler`` (the EMA weights in float16, the committed storage: what ``magicvideo upsample
--checkpoint`` and ``bench_upsampler.py --checkpoint`` read) and, with ``--pipeline``, ``OUT/pipeline``
(a copy of that pipeline with ``upsampler/`` added, for ``magicvideo generate --stages
keyframes,upsample``). Prints the stage's summary as JSON. Commit the model with
``cp -r OUT/upsampler checkpoints/shapes/pipeline/upsampler`` and the pipeline's
``model_index.json`` entry (``OUT/pipeline/model_index.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, required=True,
                    help="a high-resolution shapes benchmark (rendered there from the recipe when missing)")
    ap.add_argument("--no-augmentation", action="store_true", help="train without noise-conditioning augmentation")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the upsample stage's training config; repeatable")
    ap.add_argument("--pipeline", type=Path, help="also write OUT/pipeline: a copy of this pipeline with upsampler/")
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--steps-scale", type=float, default=1.0)
    ap.add_argument("--device")
    a = ap.parse_args(argv)

    import torch

    from magicvideo.models import UpsamplerUNet
    from magicvideo.pipeline import add_upsampler
    from magicvideo.training.config import parse_override
    from magicvideo.training.shapes import UPSAMPLER_STORAGE_DTYPE, ShapesChain, load_shapes_recipe
    from magicvideo.training.upsampler import build_upsampler_trainer

    overrides = {f"stages.upsample.{k}": v for k, v in (parse_override(o) for o in a.overrides)}
    if a.no_augmentation:
        overrides["stages.upsample.upsampler.noise_augmentation"] = False
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    chain = ShapesChain(out, load_shapes_recipe(a.recipe, overrides), a.steps_scale, a.device, progress=False, log=print)
    cfg = chain.stage_config("upsample")
    if cfg is None:
        raise SystemExit(f"the recipe {a.recipe!r} has no upsample stage (stages.upsample.steps: 0)")
    data = a.data.resolve()
    link = chain.hr_data_dir  # OUT/data_hr -> DIR, where the stage config's data.csv points
    if link.is_symlink() or link.exists():
        if link.resolve() != data:
            raise SystemExit(f"{link} exists and is not {data}; use another OUT")
    else:
        data.mkdir(parents=True, exist_ok=True)
        os.symlink(data, link)
    if not (data / "train.csv").is_file():
        chain.hr_data(cfg.upsampler.scale_factor)  # the recipe's benchmark at scale_factor x its size
    summary = chain._fit(build_upsampler_trainer(cfg))
    model = UpsamplerUNet.from_pretrained(chain.final_weights(cfg, "upsampler"), torch_dtype=UPSAMPLER_STORAGE_DTYPE)
    shutil.rmtree(out / "upsampler", ignore_errors=True)
    model.save_pretrained(out / "upsampler")
    if a.pipeline:
        shutil.rmtree(out / "pipeline", ignore_errors=True)
        shutil.copytree(a.pipeline, out / "pipeline")
        add_upsampler(out / "pipeline", model)
    size = sum(p.stat().st_size for p in (out / "upsampler").iterdir())
    summary = {**summary, "upsampler": str(out / "upsampler"), "upsampler_bytes": size,
               "noise_augmentation": cfg.upsampler.noise_augmentation, "data": str(data),
               "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}  # fmt: skip
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
