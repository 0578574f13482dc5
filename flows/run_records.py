"""What an eval run records, built as plain dicts (no MLflow here): the child run's tags, params and
metrics, the summary row, ``results.json``, the per-sample records, and the provenance of the code
and machine. :func:`flows.eval_flow.track_task` hands them to MLflow (:mod:`flows.tracking`).
"""

from __future__ import annotations

import json
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from flows.config import EvalConfig, flatten
from flows.store import sample_path
from flows.tracking import PARENT_TAG

METRICS = ("fvd", "fid")
#: packages whose versions every run records (issue 19.4)
VERSIONED = ("torch", "diffusers", "transformers", "prefect", "ray", "mlflow")
#: the value of clips/s when every sample of the run was already on disk (nothing was timed)
CACHED = "cached"


# ------------------------------------------------------------------------------------- provenance
@lru_cache(maxsize=1)
def code_version(root: str | None = None) -> dict[str, str]:
    """``git_commit`` and ``git_dirty`` ("true"/"false") of the repository holding this package
    (``"unknown"`` outside a git checkout, or without git)."""
    root = root or str(Path(__file__).resolve().parents[1])

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[f"version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"version.{name}"] = "not installed"
    return out


def device_name(device: str) -> str:
    """``"NVIDIA H200"`` for a CUDA device, else the CPU (``"cpu (x86_64)"``)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.machine() or 'unknown'})"


def provenance(metrics_device: str) -> dict[str, str]:
    """Tags of every run: code version (``mlflow.source.git.commit``, which MLflow's UI shows, and
    ``git_dirty``), package versions, and the device of the metrics (the eval flow adds
    ``generation_device`` once its actors are up: :func:`devices_tag`)."""
    code = code_version()
    return {"mlflow.source.git.commit": code["git_commit"], "git_dirty": code["git_dirty"], **package_versions(),
            "metrics_device": device_name(metrics_device)}


def devices_tag(names: list[str]) -> str:
    """``"NVIDIA H200 x8"``, ``"cpu (x86_64) x2"``: the generation actors' devices, counted."""
    return ", ".join(f"{d} x{names.count(d)}" for d in sorted(set(names))) or "unknown"


# ------------------------------------------------------------------------------- a checkpoint's run
def child_tags(ckpt: dict, cfg: EvalConfig, parent_id: str, flow_run_id: str | None, report) -> dict[str, str]:
    tags = {PARENT_TAG: parent_id, "benchmark": cfg.benchmark, "checkpoint": ckpt["path"],
            "checkpoint_id": ckpt["id"], "checkpoint_label": ckpt["label"],
            "step_known": str(ckpt["step"] is not None).lower(), "prefect_flow_run_id": str(flow_run_id),
            "mlflow.runName": f"{ckpt['label']} / {cfg.benchmark}",
            "generation": CACHED if report.generated == 0 else "generated"}
    if ckpt.get("ablation"):
        tags["ablation"] = ckpt["ablation"]
    if ckpt.get("ablation_seed") is not None:
        tags["ablation_seed"] = str(ckpt["ablation_seed"])
    return tags


def child_params(ckpt: dict, cfg: EvalConfig, items, refs: dict, results: dict) -> dict[str, str]:
    """MLflow parameters of one checkpoint's run: the config with the checkpoint's own sampler
    (``ckpt["sampler"]``: a distilled student's steps and guidance), where it is, and what scored it."""
    if ckpt.get("sampler") is not None:
        cfg = cfg.model_copy(update={"sampler": ckpt["sampler"]})
    params = flatten(cfg.model_dump(exclude={"checkpoints"}))
    params.update({"checkpoint.path": ckpt["path"], "checkpoint.id": ckpt["id"], "checkpoint.step": str(ckpt["step"]),
                   "num_prompts": str(len({it.prompt_id for it in items})), "num_samples": str(len(items))})
    for m, r in refs.items():
        params[f"{m}.extractor_identity"] = json.dumps(r["extractor"].identity(), sort_keys=True)
    if results.get("clipsim") is not None:
        params["clipsim.weights_sha256"] = results["clipsim"]["weights_sha256"]
    return params


def child_metrics(report, timings: dict, results: dict) -> dict[str, float]:
    """MLflow metrics of one checkpoint's run. The generation speed only when this run generated
    something: a run that found every sample on disk timed nothing (its tag ``generation`` says
    ``cached``), and a 0 clips/s would read as a failure."""
    mets: dict = {"samples_generated": report.generated, "samples_skipped": report.skipped,
                  "actor_deaths": report.actor_deaths}
    if report.generated:
        mets.update({"clips_per_s": report.clips_per_s, "steady_clips_per_s": report.steady_clips_per_s,
                     "first_batch_s": report.first_batch_s})
    mets.update({f"time_{k}_s": v for k, v in timings.items()})
    if results.get("attributes") is not None:
        mets.update(results["attributes"]["accuracy"].metrics())
    if results.get("clipsim") is not None:
        mets["clipsim"] = results["clipsim"]["value"]
    for m, r in frechet_results(results).items():
        mets[m] = r["value"]
        for k in ("ci_low", "ci_high"):
            if k in r:
                mets[f"{m}_{k}"] = r[k]
        if "value_debiased" in r:  # the interval's centre: the population distance, bias-corrected
            mets[f"{m}_debiased"] = r["value_debiased"]
    return mets


def frechet_results(results: dict) -> dict:
    return {m: r for m, r in results.items() if m in METRICS}


def summary_row(ckpt: dict, cfg: EvalConfig, run_id: str, mets: dict, results: dict) -> dict:
    """The flow's return value for one checkpoint (and the parent run's results.json row)."""
    sampler = ckpt.get("sampler") or cfg.sampler
    row = {"checkpoint": ckpt["label"], "variant": ckpt.get("ablation") or ckpt["label"], "step": ckpt["step"],
           "benchmark": cfg.benchmark, "run_id": run_id, "ablation": ckpt.get("ablation"),
           "steps": sampler.num_inference_steps, "guidance": sampler.guidance_scale}
    if ckpt.get("ablation_seed") is not None:
        row["ablation_seed"] = ckpt["ablation_seed"]
    for m, r in frechet_results(results).items():
        if "features_file" in r:  # per-sample features: the ablation table's paired differences
            row[f"{m}_features_file"] = r["features_file"]
    row.update({k: v for k, v in mets.items() if k not in row})
    row.setdefault("clips_per_s", CACHED)
    return row


def results_document(ckpt: dict, cfg: EvalConfig, mets: dict, results: dict, flow_run_id: str | None) -> dict:
    """The child run's ``results.json``."""
    doc = {"benchmark": cfg.benchmark, "checkpoint": ckpt, "step": ckpt["step"], "metrics": mets,
           "frechet": {m: {k: v for k, v in r.items() if k != "replicates"} for m, r in frechet_results(results).items()},
           "prefect_flow_run_id": str(flow_run_id)}
    if results.get("attributes") is not None:
        doc["attributes"] = results["attributes"]["accuracy"].as_dict()
    if results.get("clipsim") is not None:
        doc["clipsim"] = {k: v for k, v in results["clipsim"].items() if k != "per_sample"}
    return doc


def per_sample_records(ckpt: dict, cfg: EvalConfig, items, report, results: dict) -> list[dict]:
    """One record per sample (``samples.jsonl``): its address, prompt, seed, path, whether this run
    generated it, and its per-clip metric values."""
    recs = [{**it.as_dict(), "checkpoint_id": ckpt["id"], "path": str(sample_path(cfg.output_root, it.address)),
             **{k: v for k, v in report.records.get(it.address, {}).items() if k in ("generated", "seconds")}}
            for it in items]
    attrs, clip = results.get("attributes"), results.get("clipsim")
    if attrs is not None:
        for rec, it, pred, ok in zip(recs, items, attrs["predicted"], attrs["accuracy"].per_sample):
            rec.update(requested=attrs["requested"][it.prompt_id], predicted=pred, attr_correct=ok)
    if clip is not None:
        for rec, value in zip(recs, clip["per_sample"]):
            rec["clipsim"] = value
    return recs
