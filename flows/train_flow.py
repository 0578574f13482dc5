"""The ``train-ablations`` flow (issue 6, point 6): the shapes models and the paper's ablation
variants (Fig. 7), trained with identical budgets and seeds, then evaluated side by side.

Stages, one Prefect task each (never one per training step):

1. ``train-base``: the whole shapes chain (``magicvideo train shapes OUT``): data, image VAE, CLIP
   pair, T2I U-Net, VideoVAE, the full key-frame model and the classifier. A finished stage is
   reused, an interrupted one resumes (:class:`magicvideo.training.shapes.ShapesChain`).
2. ``train-variants``: each ablation variant's key-frame stages on top of the base
   (:mod:`magicvideo.training.ablations`), one Ray task per variant, so a cluster with several
   GPUs trains them side by side (``num_gpus=1`` each where the cluster has GPUs; CPU tasks
   otherwise). Ray workers only write their own training folders; the flow process reads the
   reports.
3. ``eval`` (a subflow): :func:`flows.eval_flow.eval_flow` on the shapes benchmark rendered by the
   base chain, every variant's pipeline a checkpoint with its Fig. 7 label, so the eval flow
   produces the ablations table and bar chart and the MLflow runs.

    magicvideo train-ablations OUT [--recipe default] [--seed 0 | --seeds 0,1,2] [--variants ...] [--limit N]

With ``--seeds 0,1,2`` the base chain trains at the first seed and every variant, ``full``
included, trains its key-frame stages once more at each other seed (``OUT/ablations/seed<k>/<variant>``,
on the base chain's benchmark and upstream models: the seeds vary the key-frame training, the
component the ablation is about). The eval then scores every (variant, seed) on the same prompts and
sample seeds; the ablation table has a row per variant and seed, each variant's paired difference
from the same seed's ``full``, and ``ablations_seeds.json`` / ``ablations_seeds.png`` the mean and
spread over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import RaySettings
from flows.eval_flow import _logger, eval_flow
from flows.ray_cluster import ensure_ray
from magicvideo.training.ablations import LABELS, OWN, VARIANTS, train_variant, variant_pipeline
from magicvideo.training.shapes import ShapesRecipe, load_shapes_recipe, train_shapes


def _remote(fn):
    """`fn` as a Ray task on one GPU where the cluster has GPUs, else on one CPU."""
    import ray

    gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    return ray.remote(num_gpus=gpus, num_cpus=1)(fn)


def _stage_seconds(report: dict, stages=None) -> dict:
    """stage -> seconds (or 'reused') of a chain report, for the log."""
    return {k: v.get("seconds", "reused" if v.get("reused") else "-") for k, v in report["stages"].items()
            if stages is None or k in stages}  # fmt: skip


@task(name="train-base", cache_policy=NO_CACHE)
def train_base_task(out: str, recipe: ShapesRecipe, seed: int, steps_scale: float, device: str | None) -> dict:
    """The whole chain in a Ray task (a GPU where the cluster has one)."""
    import ray

    report = ray.get(_remote(train_shapes).remote(out, recipe, seed=seed, steps_scale=steps_scale, device=device,
                                                  progress=False))  # fmt: skip
    _logger().info("base chain: %s", _stage_seconds(report))
    return report


@task(name="train-variants", cache_policy=NO_CACHE)
def train_variants_task(out: str, variants: list[str], recipe: ShapesRecipe, seed: int, steps_scale: float,
                        device: str | None) -> dict[str, dict]:  # fmt: skip
    """Every variant but ``full`` (the base chain's own model) as one Ray task each, side by side."""
    fn = _remote(train_variant)
    pending = {v: fn.remote(out, v, recipe, seed=seed, steps_scale=steps_scale, device=device, progress=False)
               for v in variants if v != "full"}  # fmt: skip
    reports = _gather(pending, "ablation variant(s)")
    for v, r in reports.items():
        _logger().info("%s: %s", v, _stage_seconds(r, OWN))
    return reports


@task(name="train-replicates", cache_policy=NO_CACHE)
def train_replicates_task(out: str, variants: list[str], recipe: ShapesRecipe, seeds: list[int], steps_scale: float,
                          device: str | None) -> dict[str, dict]:  # fmt: skip
    """Every variant, ``full`` included, retrained at each of `seeds` (one Ray task each, side by side)."""
    fn = _remote(train_variant)
    pending = {f"{v}@{s}": fn.remote(out, v, recipe, seed=s, steps_scale=steps_scale, device=device, progress=False,
                                     replicate=True) for s in seeds for v in variants}  # fmt: skip
    return _gather(pending, "ablation replicate(s)")


def _gather(pending: dict, what: str) -> dict:
    """``ray.get`` of every pending task; every failure is collected, then raised once."""
    import ray

    reports, failed = {}, {}
    for key, ref in pending.items():
        try:
            reports[key] = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - collect every task's failure, then raise once
            failed[key] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    if failed:
        raise RuntimeError(f"{what} failed: " + "; ".join(f"{k}: {e}" for k, e in failed.items()))
    return reports


@flow(name="train-ablations", log_prints=True)
def train_ablations_flow(out: str = "outputs/shapes_train", recipe: str = "default", seed: int = 0,
                         steps_scale: float = 1.0, variants: list[str] | None = None, device: str | None = None,
                         recipe_overrides: dict | None = None, evaluate: bool = True, eval_config: str = "shapes",
                         limit: int | None = None, ray_address: str | None = None,
                         eval_overrides: dict | None = None, seeds: list[int] | None = None) -> dict:  # fmt: skip
    """Train the shapes chain and the ablation variants into `out`, then evaluate them.

    Args:
        out: the chain's folder (variants go to ``out/ablations/<variant>``).
        recipe, seed, steps_scale, device, recipe_overrides: as ``magicvideo train shapes``
            (`recipe_overrides`: dotted recipe keys, applied to the base and every variant).
        variants: subset of ``full, no_adaptor, bidirectional, no_temporal, no_pretraining`` (default all).
        evaluate: run the eval flow on the variants afterwards.
        eval_config, limit, ray_address, eval_overrides: the eval flow's config name, prompt limit,
            Ray address and extra config keys (its ``benchmark_root`` defaults to ``out/data``).
        seeds: several training seeds (module docstring); the first is the base chain's (`seed` is
            then ignored).
    Returns ``{"train": {variant or "variant@seed": report}, "eval": rows}``.
    """
    variants = list(variants or VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; variants are {', '.join(VARIANTS)}")
    seeds = list(dict.fromkeys(int(s) for s in seeds)) if seeds else [seed]
    seed, extra = seeds[0], seeds[1:]
    out = str(Path(out).resolve())
    rec = load_shapes_recipe(recipe, recipe_overrides)
    started = ensure_ray(RaySettings(address=ray_address))
    try:
        base = train_base_task(out, rec, seed, steps_scale, device)
        reports = {"full": base, **train_variants_task(out, variants, rec, seed, steps_scale, device)}
        if extra:  # the replicates share the base chain's benchmark and upstream models (its seed)
            reports.update(train_replicates_task(out, variants, rec.model_copy(update={"seed": seed}), extra,
                                                 steps_scale, device))  # fmt: skip
    finally:
        if started:
            import ray

            ray.shutdown()
    train = {v: reports[v] for v in variants}
    train.update({f"{v}@{s}": reports[f"{v}@{s}"] for s in extra for v in variants})
    Path(out, "ablations").mkdir(parents=True, exist_ok=True)
    Path(out, "ablations", "train_reports.json").write_text(json.dumps(train, indent=1))
    rows: list[dict] = []
    if evaluate:
        one = not extra
        checkpoints = [{"path": str(variant_pipeline(out, v, None if s == seed else s)),
                        "label": v if one else f"{v}@seed{s}", "ablation": LABELS[v],
                        "ablation_seed": None if one else s} for s in seeds for v in variants]  # fmt: skip
        overrides = {"benchmark_root": str(Path(out) / "data"), **(eval_overrides or {})}
        rows = eval_flow(benchmark="shapes", checkpoints=checkpoints, config=eval_config, limit=limit,
                         seed=seed, ray_address=ray_address, overrides=overrides)  # fmt: skip
    return {"train": train, "eval": rows}
