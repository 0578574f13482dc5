"""Train the frame-interpolation model (paper 3.2) for an existing key-frame pipeline, with the
shapes recipe's ``interpolation`` stage, and write a copy of the pipeline that holds it.

    python scripts/train_interpolation.py OUT [--pipeline checkpoints/shapes/pipeline]
        [--image-encoder checkpoints/shapes/clip] [--data DIR] [--recipe default] [--steps-scale 1]

``magicvideo train shapes OUT --stages interpolation`` does the same inside a chain folder it
trained itself (it needs the chain's ``runs/finetune`` and ``t2i/image_encoder``); this script
starts from a pipeline folder instead, e.g. the committed one, whose chain is not in the
repository. ``--data`` is a rendered shapes benchmark with training clips (``magicvideo data shapes
DIR``; default: render the recipe's into ``OUT/data``). Writes ``OUT/runs/interpolation`` (the
training run, resumable) and ``OUT/pipeline`` (the key-frame pipeline + ``interpolation/`` +
``image_encoder/``); prints the stage's summary as JSON.
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
    ap.add_argument("--pipeline", type=Path, default=Path("checkpoints/shapes/pipeline"))
    ap.add_argument("--image-encoder", type=Path, default=Path("checkpoints/shapes/clip"),
                    help="a CLIP vision (or whole CLIP) model folder whose projection width is the U-Net's cross-attention width")
    ap.add_argument("--data", type=Path, help="a rendered shapes benchmark with train.csv (default: render into OUT/data)")
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--steps-scale", type=float, default=1.0)
    ap.add_argument("--device")
    ap.add_argument("--residual", action="store_true",
                    help="denoise the correction to the key frames' latent blend (interpolation_residual; the recipe's value otherwise)")
    a = ap.parse_args(argv)

    import torch
    from transformers import CLIPVisionModelWithProjection

    from magicvideo.models import InterpolationUNet
    from magicvideo.pipeline import add_interpolation
    from magicvideo.training.interpolation import build_interpolation_trainer
    from magicvideo.training.shapes import INTERPOLATION_STORAGE_DTYPE, ShapesChain, load_shapes_recipe

    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    chain = ShapesChain(out, load_shapes_recipe(a.recipe), a.steps_scale, a.device, progress=False, log=print)
    if a.data is not None and not chain.data_dir.exists():
        os.symlink(a.data.resolve(), chain.data_dir)
    chain.data()  # renders the recipe's benchmark unless OUT/data holds it already
    cfg = chain.stage_config("interpolation", weights="random", conditioning="image", init_unet=str(a.pipeline.resolve()),
                             image_encoder=str(a.image_encoder.resolve()),
                             **({"interpolation_residual": True} if a.residual else {}))  # fmt: skip
    if cfg is None:
        raise SystemExit(f"the recipe {a.recipe!r} has no interpolation stage (stages.interpolation.steps: 0)")
    summary = chain._fit(build_interpolation_trainer(cfg))
    pipeline = out / "pipeline"
    shutil.rmtree(pipeline, ignore_errors=True)
    shutil.copytree(a.pipeline, pipeline)
    model = InterpolationUNet.from_pretrained(chain.final_weights(cfg, "interpolation"))
    encoder = CLIPVisionModelWithProjection.from_pretrained(a.image_encoder)
    add_interpolation(pipeline, model.to(dtype=INTERPOLATION_STORAGE_DTYPE), encoder)
    summary = {**summary, "pipeline": str(pipeline), "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
