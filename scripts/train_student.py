"""Distil the key-frame model into a few-step student with classifier-free guidance folded in (DMD2,
:mod:`magicvideo.training.distill`), and write the student as a complete pipeline folder.

    python scripts/train_student.py OUT [--teacher checkpoints/shapes/pipeline] [--data DIR]
        [--steps 300] [--max-seconds 480] [--batch-size 32] [--student-steps 4] [--guidance 7.5] ...

Data: DMD2 needs prompts only. ``--data DIR`` reads the captions of a rendered shapes benchmark's
``DIR/train.csv`` (``magicvideo data shapes DIR``); without it, the captions of the default benchmark's
2,000 training clips (seed ``--data-seed``) are made without rendering anything (the same captions).

Writes ``OUT/run/`` (``train_log.jsonl``, ``checkpoint.pt``: a re-run with the same settings resumes)
and ``OUT/student/`` (the pipeline: the teacher's VAE, text encoder, tokenizer and DDIM scheduler as
they are, the student U-Net in fp16, ``distillation.json``); prints the run's summary as JSON. Sample
it like any pipeline: ``magicvideo generate --pipeline OUT/student --steps 4 --guidance 1 ...``.

On one H200 (estimate: each generator update is ~35 small U-Net passes, bound by per-op overhead like
the key-frame training, ~1.6 s) 300 generator updates take about 8 minutes; ``--max-seconds`` stops
earlier and still writes the student (``distillation.json`` records the updates done).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _positive_int(s: str) -> int:
    v = int(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def _positive_float(s: str) -> float:
    v = float(s)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {s}")
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--teacher", type=Path, default=Path("checkpoints/shapes/pipeline"), help="the key-frame pipeline folder")
    ap.add_argument("--data", type=Path, help="a rendered shapes benchmark (its train.csv captions)")
    ap.add_argument("--data-seed", type=int, default=0, help="without --data: the benchmark seed of the captions")
    ap.add_argument("--student", type=Path, help="where the student pipeline goes (default OUT/student)")
    ap.add_argument("--steps", type=_positive_int, default=300, help="generator updates")
    ap.add_argument("--max-seconds", type=_positive_float, help="stop after this much training (and still save)")
    ap.add_argument("--batch-size", type=_positive_int, default=32)
    ap.add_argument("--student-steps", type=_positive_int, default=4)
    ap.add_argument("--guidance", type=float, default=7.5, help="the teacher's CFG scale, folded into the student")
    ap.add_argument("--fake-updates", type=_positive_int, default=5, help="fake-score updates per generator update")
    ap.add_argument("--lr", type=_positive_float, default=5e-5)
    ap.add_argument("--fake-lr", type=_positive_float, default=5e-5)
    ap.add_argument("--regression-weight", type=float, default=0.25, help="0: no teacher ODE pairs")
    ap.add_argument("--regression-pairs", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=_positive_int, default=50)
    ap.add_argument("--device")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)

    import torch

    from magicvideo.training.distill import DistillConfig, DistillTrainer, load_teacher, shapes_prompts

    cfg = DistillConfig(steps=a.steps, max_seconds=a.max_seconds, batch_size=a.batch_size, student_steps=a.student_steps,
                        guidance=a.guidance, fake_updates=a.fake_updates, lr=a.lr, fake_lr=a.fake_lr,
                        regression_weight=a.regression_weight, regression_pairs=a.regression_pairs, seed=a.seed,
                        checkpoint_every=a.checkpoint_every)  # fmt: skip
    teacher = load_teacher(a.teacher)
    prompts = shapes_prompts(a.data, seed=a.data_seed)
    trainer = DistillTrainer(cfg, teacher, prompts, a.out / "run", device=a.device)
    summary = trainer.train(progress=not a.no_progress)
    summary["device"] = torch.cuda.get_device_name() if trainer.device.type == "cuda" else "cpu"
    summary["prompts"] = len(prompts)
    folder = trainer.save_student(a.student or a.out / "student", a.teacher, summary)
    print(json.dumps({**summary, "student": str(folder), "timesteps": trainer.timesteps}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
