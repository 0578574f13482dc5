"""The eval flow by cascade stage (``sampler.stages``): what each stage's samples are, and what its
MLflow child run records beyond :mod:`flows.run_records`' checkpoint run.

A checkpoint evaluated with ``stages: [keyframes, interpolate, upsample]`` is generated once, through
the whole chain (:func:`flows.cascade.run_cascade`), and scored once per stage, each stage in its own
child run (tag ``stage``, the chain in ``stages``) and its own row of the result table. A stage's
samples are addressed with the identity of the stages up to it (``cascade_identity(folder, chain)``,
which is the child run's ``checkpoint_id``) and its own sampler settings
(:func:`flows.config.stage_sampler`), so key-frame samples, and their child run's tags, are the same
whatever stages follow; the default ``[keyframes]`` writes the samples and logs what the flow logged
before stages existed, plus the tags ``stage`` and ``stages`` and each sample's key-frame latents
(:func:`flows.store.latents_path`), from which a later stage starts.

The generation report is the chain's: its wall time (``time_generation_s``, ``clips_per_s``) is
shared by the stages' runs; ``samples_generated`` counts the samples of that stage that this run
wrote, and each sample's own ``seconds`` (``samples.jsonl``) is that stage's actor time per clip. A
later stage's run also logs ``keyframes_recomputed``: clips whose key frames had to be generated
again because their latents were not stored (a store from before latents were kept).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from flows.store import CascadeItem, SampleItem, checkpoint_id, plan_cascade
from magicvideo.stages import INTERPOLATION_FACTOR, stage_chains


@dataclass
class StagePlan:
    """A checkpoint's samples by stage."""

    chains: dict[str, tuple[str, ...]]    # stage -> the stages up to it
    ids: dict[str, str]                   # stage -> checkpoint identity of its chain (its samples' checkpoint)
    items: dict[str, list[SampleItem]]    # stage -> its samples, in manifest order
    jobs: list[CascadeItem]               # what the actors generate (one per clip, every stage's address)
    sampler: dict                         # the actors' sampler settings (the whole chain's)


def plan(path: str, records, cfg, sampler=None) -> StagePlan:
    """The samples of every stage of ``cfg.sampler.stages`` for the checkpoint folder ``path``, sampled
    with ``sampler`` (the checkpoint's own, :func:`flows.config.checkpoint_sampler`; default
    ``cfg.sampler``)."""
    from flows.config import stage_sampler

    sampler = cfg.sampler if sampler is None else sampler
    chains = stage_chains(cfg.sampler.stages)
    ids = {s: checkpoint_id(path, c) for s, c in chains.items()}
    samplers = {s: stage_sampler(sampler, c) for s, c in chains.items()}
    items, jobs = plan_cascade(records, ids, samplers, cfg.samples_per_prompt, cfg.seed)
    return StagePlan(chains, ids, items, jobs, samplers[list(chains)[-1]])


def stage_report(report, p: StagePlan, stage: str):
    """The chain's ``GenerationReport`` as seen by one stage: its samples written by this run, its
    per-sample records (by the stage's addresses); time and actor deaths are the chain's."""
    records, generated, recomputed = {}, 0, 0
    for job, item in zip(p.jobs, p.items[stage]):
        rec = report.records.get(job.address)
        if rec is None:
            continue
        written = stage in rec.get("stages_written", [])
        generated += written
        recomputed += "keyframes" in rec.get("stages_run", []) and "keyframes" not in rec.get("stages_written", [])
        records[item.address] = {**rec, "address": item.address, "generated": written,
                                 "seconds": rec.get("stage_seconds", {}).get(stage, 0.0)}
    return dataclasses.replace(report, generated=generated, skipped=len(p.items[stage]) - generated,
                               records=records, keyframes_recomputed=recomputed if stage != "keyframes" else 0)


def stage_checkpoint(ckpt: dict, p: StagePlan, stage: str) -> dict:
    """The checkpoint dict a stage's run logs: its ``id`` is the identity of the stages up to ``stage``."""
    return {**ckpt, "id": p.ids[stage]}


def stage_tags(ckpt: dict, cfg, stage: str, chain) -> dict[str, str]:
    """Tags a stage's run adds: ``stage``, ``stages`` (its chain); a later stage's run name says it."""
    tags = {"stage": stage, "stages": ",".join(chain)}
    if stage != "keyframes":
        tags["mlflow.runName"] = f"{ckpt['label']} / {cfg.benchmark} / {stage}"
    return tags


def stage_metrics(stage: str, report, results: dict) -> dict[str, float]:
    """Metrics a stage's run adds: temporal consistency (``temporal/...``) where measured; the upsample
    stage's bicubic baseline (``<metric>_bicubic``); a later stage's ``keyframes_recomputed``."""
    out = dict(results["temporal"].metrics()) if results.get("temporal") is not None else {}
    for m, r in (results.get("bicubic") or {}).items():  # the upsample stage's baseline
        out[f"{m}_bicubic"] = r["value"]
    if stage != "keyframes":
        out["keyframes_recomputed"] = report.keyframes_recomputed
    return out


def clip_fps(cfg, chain) -> float:
    """The frame rate of a chain's clips (the key frames' nu, x4 after interpolation)."""
    return cfg.sampler.fps * (INTERPOLATION_FACTOR if "interpolate" in chain else 1)


def attribute_step(chain) -> int:
    """Every how many frames the attribute classifier reads a chain's clips: it was trained on clips at
    the key frames' rate, so an interpolated clip is read at every 4th frame (its key frames' times)."""
    return INTERPOLATION_FACTOR if "interpolate" in chain else 1
