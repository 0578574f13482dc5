"""`magicvideo train keyframe`, `magicvideo train videovae` and `magicvideo train shapes`."""

from __future__ import annotations

import argparse


def add_train(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the key-frame model (3.1.3) or the VideoVAE decoder (3.3)")
    sub = p.add_subparsers(dest="train_command", metavar="TRAIN_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
    for name, stage, help_ in (
        ("keyframe", "keyframe", "key-frame U-Net, eq. 6 (text, or image embeddings for unsupervised pre-training)"),
        ("videovae", "videovae", "the VideoVAE decoder's temporal layers, image VAE frozen"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--config", required=True, help="configs/train/<name>.yaml or a YAML path")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (dotted path, YAML value), e.g. --set optim.lr=1e-3; repeatable")
        s.add_argument("--steps", type=int, help="shortcut for --set steps=N")
        s.add_argument("--out-dir", help="shortcut for --set out_dir=DIR")
        s.add_argument("--csv", help="shortcut for --set data.csv=FILE")
        s.add_argument("--device", help="shortcut for --set device=DEV")
        s.add_argument("--no-progress", action="store_true", help="no progress bar (the JSONL log is still written)")
        s.set_defaults(func=_train, stage=stage)
    s = sub.add_parser("shapes", help="every 'shapes' model in order (data, VAE, CLIP, T2I, VideoVAE, pre-training, "
                       "fine-tuning, classifier) from one recipe and seed")  # fmt: skip
    s.add_argument("out", help="output folder (data/, runs/, t2i/, pipeline/, classifier/, clip/, report.json)")
    s.add_argument("--recipe", default="default", help="configs/train/shapes/<name>.yaml or a YAML path (default: default)")
    s.add_argument("--seed", type=int, help="the one seed (benchmark, initialisation, noise, batches); default: the recipe's")
    s.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's steps and warmup (e.g. 0.01)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set stages.t2i.batch_size=32; repeatable")
    s.add_argument("--stages", help="comma-separated subset of image_vae,clip,t2i,videovae,pretrain,finetune,interpolation,"
                   "upsample,classifier (data: the benchmark alone)")
    s.add_argument("--device", help="device of every stage (default: each stage's, auto)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=_train_shapes)
    s = sub.add_parser("ablation", help="one of the paper's ablation variants (Fig. 7) on top of a finished shapes chain")
    s.add_argument("base", help="the folder of `magicvideo train shapes` (its data, VAE, CLIP, T2I and VideoVAE are reused)")
    s.add_argument("variant", help="full | no_adaptor | bidirectional | no_temporal | no_pretraining")
    s.add_argument("--recipe", default="default", help="the base chain's recipe (default: default)")
    s.add_argument("--seed", type=int, help="the one seed (default: the recipe's)")
    s.add_argument("--replicate", type=int, metavar="SEED",
                   help="retrain the variant's key-frame stages (full included) at SEED into "
                        "BASE/ablations/seed<SEED>/<variant>, on BASE's benchmark and upstream models")
    s.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's steps and warmup")
    s.add_argument("--device", help="device of every stage (default: auto)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=_train_ablation)


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magicvideo.training.config import load_train_config, parse_override
    from magicvideo.training.keyframe import build_keyframe_trainer
    from magicvideo.training.videovae import build_videovae_trainer

    overrides = dict(parse_override(o) for o in args.overrides)
    for key, value in (("steps", args.steps), ("out_dir", args.out_dir), ("data.csv", args.csv), ("device", args.device)):
        if value is not None:
            overrides[key] = value
    cfg = load_train_config(args.config, overrides)
    if cfg.stage != args.stage:
        raise ValueError(f"--config {args.config}: stage is {cfg.stage!r}; use `magicvideo train {cfg.stage}`")
    console = Console(stderr=True)
    build = build_keyframe_trainer if cfg.stage == "keyframe" else build_videovae_trainer
    trainer = build(cfg)
    n = sum(p.numel() for p in trainer.params)
    console.print(f"{cfg.stage}: {n:,} trainable parameters on {trainer.device}, {cfg.steps} steps of "
                  f"{cfg.batch_size}x{cfg.grad_accum} clips -> {cfg.out_dir}")  # fmt: skip
    summary = trainer.train(progress=not args.no_progress)
    if cfg.stage == "keyframe" and cfg.conditioning == "text":
        trainer.save_pipeline(cfg.out_path / "final" / "pipeline")
    console.print(f"done: step {summary['steps']}, loss {summary['loss']}, {summary['seconds']:.1f} s; "
                  f"log {cfg.out_path / 'train_log.jsonl'}, weights {cfg.out_path / 'final'}")  # fmt: skip
    return 0


def _train_shapes(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from magicvideo.training.config import parse_override
    from magicvideo.training.shapes import STAGES, load_shapes_recipe, train_shapes

    console = Console(stderr=True)
    recipe = load_shapes_recipe(args.recipe, dict(parse_override(o) for o in args.overrides))
    # `--stages data` renders the benchmark alone (the data stage always runs first, reusing a finished one)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip() not in ("", "data")) if args.stages else STAGES
    report = train_shapes(args.out, recipe, seed=args.seed, steps_scale=args.steps_scale, device=args.device,
                          progress=not args.no_progress, stages=stages, log=console.print)  # fmt: skip
    table = Table("stage", "steps", "final loss", "seconds", "parameters", title=f"shapes models -> {args.out}")
    for name, s in report["stages"].items():
        loss = s.get("loss")
        table.add_row(name, str(s.get("steps", s.get("skipped", "-"))), "-" if loss is None else f"{loss:.4f}",
                      str(s.get("seconds", "reused" if s.get("reused") else "-")),
                      f"{s['trainable_parameters']:,}" if "trainable_parameters" in s else "-")  # fmt: skip
    console.print(table)
    acc = report["stages"].get("classifier", {}).get("test_accuracy")
    if acc:
        chance = report["stages"]["classifier"]["chance"]
        console.print("classifier test accuracy: " + ", ".join(f"{k} {v:.2f} (chance {chance[k]:.2f})" for k, v in acc.items()))
    sizes = report["sizes"]
    console.print("sizes: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()) + f"; report {args.out}/report.json")
    return 0


def _train_ablation(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magicvideo.training.ablations import train_variant

    console = Console(stderr=True)
    if args.replicate is not None:  # the base chain's own seed stays the recipe's (or --seed)
        from magicvideo.training.shapes import load_shapes_recipe

        recipe = load_shapes_recipe(args.recipe)
        if args.seed is not None:
            recipe = recipe.model_copy(update={"seed": args.seed})
        report = train_variant(args.base, args.variant, recipe, seed=args.replicate, steps_scale=args.steps_scale,
                               device=args.device, progress=not args.no_progress, log=console.print, replicate=True)  # fmt: skip
    else:
        report = train_variant(args.base, args.variant, args.recipe, seed=args.seed, steps_scale=args.steps_scale,
                               device=args.device, progress=not args.no_progress, log=console.print)  # fmt: skip
    stages = ", ".join(f"{k} {v.get('seconds', 'reused' if v.get('reused') else '-')} s"
                       for k, v in report["stages"].items() if k in ("pretrain", "finetune"))  # fmt: skip
    console.print(f"{args.variant} ({report['label']}): {stages}; pipeline {report['pipeline']}")
    return 0
