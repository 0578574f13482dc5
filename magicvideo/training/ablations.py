"""The paper's ablation variants (Fig. 7) trained on the shapes benchmark (issue 6, point 6).

Each variant changes one thing of the key-frame model and trains it with the recipe's budgets and
seed; everything upstream of the key-frame model (data, image VAE, CLIP pair, T2I U-Net, VideoVAE)
is shared with a finished base chain (``magicvideo train shapes BASE``), so the variants differ in
exactly the ablated component:

========================  =============================================  ==========================
variant                   change                                         paper
========================  =============================================  ==========================
``full``                  none: the base chain's own ``BASE/pipeline``   MagicVideo
``no_adaptor``            ``model.use_adaptor: false``                   w/o adaptor (eq. 1)
``bidirectional``         ``model.temporal_attention: bidirectional``    bidirectional T-Attn
``no_temporal``           ``model.temporal_attention: none``             w/o T-Attn (eq. 4)
``no_pretraining``        ``stages.pretrain.steps: 0``, its steps added  w/o unsupervised pre-train
                          to ``stages.finetune.steps``
========================  =============================================  ==========================

Every variant gets the same key-frame budget: the same number of optimisation steps on the same
clips (:func:`keyframe_budget`). The variant without pre-training spends the pre-training steps on
text-conditioned fine-tuning, so that it is not also a variant with half the training.

A variant trains its ``pretrain`` and ``finetune`` stages in ``BASE/ablations/<variant>``, whose
``data``, ``t2i`` and upstream ``runs/<stage>`` are relative symbolic links into BASE; its
``pipeline/`` is what the ablations evaluation loads. A re-run reuses finished stages and resumes
an interrupted one (:class:`~magicvideo.training.shapes.ShapesChain`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from magicvideo.configs import apply_overrides
from magicvideo.training.shapes import STAGES, ShapesChain, ShapesRecipe, load_shapes_recipe

def _stage_value(recipe: ShapesRecipe, stage: str, key: str) -> int:
    """A stage's `key` (steps, batch_size) as its training config will have it: the recipe's, else
    the training config's default."""
    from magicvideo.training.config import TrainConfig

    return int(getattr(recipe.stages, stage).get(key, TrainConfig.model_fields[key].default))


def _no_pretraining(recipe: ShapesRecipe) -> dict[str, Any]:
    pre, fin = (_stage_value(recipe, s, "batch_size") for s in OWN)
    if pre != fin:
        raise ValueError(f"no_pretraining moves the pre-training steps to fine-tuning, which needs equal batch sizes "
                         f"(stages.pretrain.batch_size {pre}, stages.finetune.batch_size {fin})")  # fmt: skip
    return {"stages.pretrain.steps": 0,
            "stages.finetune.steps": sum(_stage_value(recipe, s, "steps") for s in OWN)}  # fmt: skip


#: variant -> dotted recipe overrides, or a function of the base recipe giving them (``full`` is the
#: base chain itself)
VARIANTS: dict[str, dict[str, Any] | Callable[[ShapesRecipe], dict[str, Any]]] = {
    "full": {},
    "no_adaptor": {"model.use_adaptor": False},
    "bidirectional": {"model.temporal_attention": "bidirectional"},
    "no_temporal": {"model.temporal_attention": "none"},
    "no_pretraining": _no_pretraining,
}
#: the labels of the paper's Fig. 7 (the eval flow's ``ablation`` label of each checkpoint)
LABELS = {
    "full": "full",
    "no_adaptor": "adaptor off",
    "bidirectional": "bidirectional attention",
    "no_temporal": "temporal attention off",
    "no_pretraining": "no unsupervised pre-training",
}
#: the stages a variant shares with the base chain, and those it trains itself
SHARED = ("image_vae", "clip", "t2i", "videovae")
OWN = ("pretrain", "finetune")
#: what the "full" variant trains or reuses: the generator up to its interpolation stage (not the
#: super-resolution stage, which the variants do not change, nor the classifier, an evaluator)
FULL_STAGES = tuple(s for s in STAGES if s not in ("upsample", "classifier"))


def variant_dir(base: str | Path, variant: str, replicate: int | None = None) -> Path:
    """Where a variant trains (``full``: the base chain itself). With `replicate` (a seed): the
    variant's key-frame stages retrained at that seed, ``BASE/ablations/seed<k>/<variant>``
    (``full`` included), on the base chain's shared upstream models."""
    _check_variant(variant)
    if replicate is not None:
        return Path(base) / "ablations" / f"seed{int(replicate)}" / variant
    return Path(base) if variant == "full" else Path(base) / "ablations" / variant


def variant_pipeline(base: str | Path, variant: str, replicate: int | None = None) -> Path:
    """The variant's ``MagicVideoPipeline`` folder (what the ablations evaluation loads)."""
    return variant_dir(base, variant, replicate) / "pipeline"


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown ablation variant {variant!r}; variants are {', '.join(VARIANTS)}")


def variant_recipe(recipe: str | Path | ShapesRecipe, variant: str, seed: int | None = None) -> ShapesRecipe:
    """The recipe with the variant's overrides (and `seed`, when given)."""
    _check_variant(variant)
    base = recipe if isinstance(recipe, ShapesRecipe) else load_shapes_recipe(recipe)
    overrides = VARIANTS[variant]
    if callable(overrides):
        overrides = overrides(base)
    data = apply_overrides(base.model_dump(mode="json"), overrides, source=f"ablation variant {variant}")
    out = ShapesRecipe.model_validate(data)
    return out if seed is None else out.model_copy(update={"seed": seed})


def keyframe_budget(recipe: ShapesRecipe) -> dict[str, int]:
    """The key-frame model's training budget in a recipe: optimisation steps and clips seen, over
    its own stages (pre-training and fine-tuning)."""
    steps = {s: _stage_value(recipe, s, "steps") for s in OWN}
    return {"steps": sum(steps.values()), "clips": sum(n * _stage_value(recipe, s, "batch_size") for s, n in steps.items())}


def link_shared(base: str | Path, out: str | Path) -> None:
    """Relative links ``out/{data,t2i,runs/<shared stage>}`` -> BASE's (refuses an unfinished base)."""
    base, out = Path(base).resolve(), Path(out)
    missing = [s for s in SHARED if not (base / "runs" / s / "done.json").is_file()]
    if missing or not (base / "data" / "shapes.json").is_file():
        raise FileNotFoundError(f"{base} has no finished {', '.join(missing) or 'data'} stage(s); train the base chain "
                                f"first: magicvideo train shapes {base} --stages {','.join(SHARED)}")  # fmt: skip
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for rel in ("data", "t2i", *(f"runs/{s}" for s in SHARED)):
        link, target = out / rel, base / rel
        if link.is_symlink() or link.exists():
            if link.resolve() != target.resolve():
                raise ValueError(f"{link} exists and is not a link to {target}; use another base folder")
            continue
        os.symlink(os.path.relpath(target, link.parent.resolve()), link)


def train_variant(base: str | Path, variant: str, recipe: str | Path | ShapesRecipe = "default", seed: int | None = None,
                  steps_scale: float = 1.0, device: str | None = None, progress: bool = True,
                  log: Callable[[str], None] = lambda line: None, replicate: bool = False) -> dict[str, Any]:  # fmt: skip
    """Train one variant (see the module docstring) and return its chain report. ``full`` runs
    (or reuses) the base chain's own key-frame stages.

    replicate: train the variant's key-frame stages again at `seed` (required) into
    :func:`variant_dir` ``(base, variant, seed)``, ``full`` included, on the base chain's shared
    upstream models: the seeds of a multi-seed ablation (``train-ablations --seeds``) vary the
    key-frame training (its new layers' initialisation, noise, timesteps and batches), not the
    benchmark or the upstream models."""
    if replicate and seed is None:
        raise ValueError("a replicate needs its seed")
    out = variant_dir(base, variant, seed if replicate else None)
    rec = variant_recipe(recipe, variant, None if replicate else seed)
    if replicate:  # the benchmark and upstream models stay the base chain's; the key-frame stages get `seed`
        data = apply_overrides(rec.model_dump(mode="json"), {f"stages.{s}.seed": int(seed) for s in OWN},
                               source=f"replicate seed {seed}")  # fmt: skip
        rec = ShapesRecipe.model_validate(data)
    if variant != "full" or replicate:
        link_shared(base, out)
    stages = OWN if variant != "full" or replicate else FULL_STAGES
    report = ShapesChain(out, rec, steps_scale, device, progress, log).run(stages)
    return {**report, "variant": variant, "label": LABELS[variant], "seed": seed,
            "pipeline": str(variant_pipeline(base, variant, seed if replicate else None))}
