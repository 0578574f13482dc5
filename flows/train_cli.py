"""``magicvideo train-ablations`` (entry point in pyproject.toml): the ``train-ablations`` flow
(:mod:`flows.train_flow`) with no server, as ``magicvideo eval`` runs the eval flow."""

from __future__ import annotations


def add_train_ablations(sub) -> None:
    p = sub.add_parser("train-ablations", help="train the shapes chain and the ablation variants (Fig. 7), then "
                       "evaluate them (Prefect flow, Ray, MLflow)")  # fmt: skip
    p.add_argument("out", help="the chain's folder (variants in OUT/ablations/<variant>)")
    p.add_argument("--recipe", default="default", help="configs/train/shapes/<name>.yaml or a YAML path")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="the one seed of the chain and every variant")
    seeds.add_argument("--seeds", help="several training seeds, e.g. 0,1,2: the chain at the first, every variant's "
                       "key-frame stages at each (mean and spread over seeds, paired differences per seed)")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's steps (smoke: 0.01)")
    p.add_argument("--variants", help="comma-separated subset of full,no_adaptor,bidirectional,no_temporal,no_pretraining")
    p.add_argument("--device", help="training device of every stage (default: each stage's, auto)")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--limit", type=int, help="evaluate on the first N prompts")
    p.add_argument("--ray-address", help="'auto' or ray://host:10001 (default: a local Ray)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="an eval config key, e.g. --set ray.num_cpus_per_actor=2 --set sampler.num_inference_steps=20")
    p.set_defaults(func=run_train_ablations)


def _seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--seeds takes comma-separated integers, got {text!r}") from None


def run_train_ablations(args) -> int:
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.cli import parse_sets
    from flows.services import starting_services

    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    with starting_services(args.ray_address) as services:
        from flows.train_flow import train_ablations_flow  # imported while the services start
    try:
        with services.prefect():
            result = train_ablations_flow(
                out=args.out, recipe=args.recipe, seed=args.seed, steps_scale=args.steps_scale, variants=variants,
                device=args.device, evaluate=not args.no_eval, limit=args.limit, ray_address=args.ray_address,
                eval_overrides=parse_sets(args.set) or None, seeds=_seeds(args.seeds))
    finally:
        services.stop_ray()
    for variant, report in result["train"].items():
        stages = {k: v.get("loss") for k, v in report["stages"].items() if k in ("pretrain", "finetune")}
        print(f"{variant:16s} final losses {stages}")
    if result["eval"]:
        from flows.cli import _print_rows

        _print_rows(result["eval"])
    return 0
