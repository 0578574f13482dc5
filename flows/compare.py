"""``magicvideo compare``: checkpoints x metrics per benchmark from MLflow, and metric-vs-step plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flows import plots, tracking

#: FVD, FID: lower is better; CLIPSIM, attribute accuracy: higher is better
COLUMNS = ["fvd", "fvd_ci_low", "fvd_ci_high", "fid", "fid_ci_low", "fid_ci_high", "clipsim", "attr_acc/mean",
           "clips_per_s"]


def _finished_checkpoint_runs(uri: str, experiment: str) -> pd.DataFrame | None:
    """The experiment's finished runs of a checkpoint (child runs), newest first; None when there are none."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    if runs.empty or "tags.checkpoint_id" not in runs:
        return None
    return runs[runs["tags.checkpoint_id"].notna()]


def _groups(runs: pd.DataFrame, benchmarks: list[str] | None):
    """``(key, benchmark, runs)`` per benchmark and cascade stage (tag ``stage``; runs without it are the
    key frames'): the key frames' key is the benchmark's name, a later stage's ``"<benchmark> [<stage>]"``,
    so that checkpoints are compared within one stage."""
    stage = runs["tags.stage"].fillna("keyframes") if "tags.stage" in runs else pd.Series("keyframes", index=runs.index)
    for (bench, st), df in runs.groupby([runs["tags.benchmark"], stage]):
        if not benchmarks or bench in benchmarks:
            yield (bench if st == "keyframes" else f"{bench} [{st}]"), bench, df


#: the sampler settings that make one checkpoint's runs different rows (a distilled student at 4 steps and
#: guidance 1 beside its teacher at 25 and 50 steps with CFG); runs logged without them are keyed as before
SAMPLER_PARAMS = {"params.sampler.scheduler": "scheduler", "params.sampler.num_inference_steps": "steps",
                  "params.sampler.guidance_scale": "guidance"}


def _run_keys(df: pd.DataFrame) -> list[str]:
    """What tells two rows of a table apart: checkpoint id, ablation label and the sampler settings."""
    return ["tags.checkpoint_id"] + [k for k in ("tags.ablation", *SAMPLER_PARAMS) if k in df]


def _labels(df: pd.DataFrame) -> pd.Series:
    """Checkpoint labels, with the steps and guidance appended where one label has runs of several samplers."""
    labels = df["tags.checkpoint_label"].astype(str)
    params = [k for k in SAMPLER_PARAMS if k in df]
    if not params:
        return labels
    sampler = df[params].astype(str).agg(", ".join, axis=1)
    several = sampler.groupby(labels).transform("nunique") > 1
    steps = df.get("params.sampler.num_inference_steps", pd.Series("?", index=df.index)).astype(str)
    cfg = df.get("params.sampler.guidance_scale", pd.Series("?", index=df.index)).astype(str)
    return labels.where(~several, labels + " @" + steps + " steps, cfg " + cfg)


def compare(uri: str | None = None, experiment: str = "magicvideo-eval", plot_dir: str | Path | None = None,
            benchmarks: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """``{benchmark: table}``: the latest finished child run per (checkpoint id, ablation, sampler settings), by
    step; a later cascade stage's runs in their own table, ``"<benchmark> [<stage>]"``. The sampler's steps and
    guidance are columns, so a few-step student and its teacher (evaluated in separate runs, each with its own
    ``sampler.num_inference_steps`` / ``guidance_scale``) are rows of one table."""
    runs = _finished_checkpoint_runs(tracking.tracking_uri(uri), experiment)
    if runs is None:
        return {}
    out = {}
    for bench, _, df in _groups(runs, benchmarks):
        df = df.drop_duplicates(_run_keys(df), keep="first")  # newest run of each checkpoint and sampler
        step = pd.to_numeric(df["params.checkpoint.step"], errors="coerce")
        table = pd.DataFrame({"checkpoint": _labels(df), "step": step})
        if "tags.ablation" in df:
            table["ablation"] = df["tags.ablation"]
        for param, col in SAMPLER_PARAMS.items():
            if param in df and col != "scheduler":
                table[col] = pd.to_numeric(df[param], errors="coerce")
        for c in COLUMNS:
            if f"metrics.{c}" in df:
                table[c] = df[f"metrics.{c}"]
        table = table.sort_values(["step", "checkpoint"], na_position="last").reset_index(drop=True)
        out[bench] = table
        # a metric-vs-step plot needs two checkpoints with a known step (a folder with no step, such as
        # the committed shapes pipeline, has none: the table shows it, a plot would be empty)
        stepped = table[table["step"].notna()]
        if plot_dir is not None and len(stepped) > 1:
            Path(plot_dir).mkdir(parents=True, exist_ok=True)
            rows = stepped.to_dict("records")
            for m in ("fvd", "fid", "clipsim"):
                if m in stepped and stepped[m].notna().sum() > 1:
                    fig = plots.metric_vs_step(rows, m, f"{bench}: {m.upper()} vs training step")
                    name = bench.replace(" [", "_").rstrip("]")
                    fig.savefig(Path(plot_dir) / f"{name}_{m}.png", dpi=100, bbox_inches="tight")
                    plots.plt.close(fig)
    return out


# ------------------------------------------------------------------- paired differences vs a baseline
#: metrics compared pairwise: Fréchet ones from the saved per-sample features (flows.metrics.save_features),
#: per-clip ones from each run's samples.jsonl
PAIRED_FRECHET = ("fvd", "fid")
PAIRED_PER_CLIP = ("clipsim", "attr_acc/mean")


def _latest_child_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The newest finished run per (checkpoint id, ablation, sampler), ordered as ``compare``'s table (step,
    label); ``tags.checkpoint_label`` made distinct where one checkpoint was run with several samplers."""
    df = runs.drop_duplicates(_run_keys(runs), keep="first").copy()
    df["tags.checkpoint_label"] = _labels(df)
    steps = df["params.checkpoint.step"] if "params.checkpoint.step" in df else pd.Series(None, index=df.index)
    df["_step"] = pd.to_numeric(steps, errors="coerce")
    return df.sort_values(["_step", "tags.checkpoint_label"], na_position="last").reset_index(drop=True)


def _run_artifacts(client, run_id: str, dst) -> dict:
    """``{"results": results.json or {}, "samples": [samples.jsonl rows]}`` of one child run."""
    import json

    out = {"results": {}, "samples": []}
    for name in ("results.json", "samples.jsonl"):
        try:
            local = Path(client.download_artifacts(run_id, name, str(dst)))
        except Exception:  # noqa: BLE001 - an older run without it: that comparison is skipped with a note
            continue
        text = local.read_text()
        if name == "results.json":
            out["results"] = json.loads(text)
        else:
            out["samples"] = [json.loads(line) for line in text.splitlines() if line.strip()]
    return out


def _sample_key(rec: dict) -> tuple:
    return rec["prompt_id"], int(rec["sample_index"]), int(rec["seed"])


def _frechet_rows(path_a, path_b, keys: list[tuple]) -> tuple:
    """Aligned feature rows of two saved feature files, prompt groups, the reference Gaussian, unbiased flag;
    or a string saying why they cannot be compared."""
    from flows.metrics import load_features

    try:
        fa, fb = load_features(path_a), load_features(path_b)
    except (FileNotFoundError, KeyError, OSError) as exc:
        return f"per-sample features not readable here ({exc})"
    for k in ("extractor_identity", "protocol", "reference_file", "rows_per_clip"):
        if fa[k] != fb[k]:
            return f"different {k.replace('_', ' ')}: not comparable"
    r = int(fa["rows_per_clip"])
    prompts = {p: i for i, p in enumerate(dict.fromkeys(k[0] for k in keys))}
    rows = []
    for f in (fa, fb):
        pos = {(p, int(i), int(s)): j for j, (p, i, s) in enumerate(zip(f["prompt_id"], f["sample_index"], f["seed"]))}
        if set(pos) != set(keys):
            return "the saved features are not of the same prompts and seeds"
        idx = np.concatenate([np.arange(pos[k] * r, (pos[k] + 1) * r) for k in keys])
        rows.append(f["features"][idx])
    groups = np.repeat([prompts[k[0]] for k in keys], r)
    return rows[0], rows[1], groups, (fa["ref_mean"], fa["ref_cov"]), bool(fa["unbiased_cov"])


def _per_clip(samples: list[dict], metric: str, keys: list[tuple]) -> np.ndarray | None:
    """Per-clip values of ``clipsim`` / ``attr_acc/mean`` (mean correctness over attributes) in ``keys`` order."""
    by_key = {_sample_key(s): s for s in samples}
    out = []
    for k in keys:
        s = by_key[k]
        if metric == "clipsim":
            v = s.get("clipsim")
        else:
            v = np.mean([float(x) for x in s["attr_correct"].values()]) if s.get("attr_correct") else None
        if v is None:
            return None
        out.append(float(v))
    return np.asarray(out)


def paired_differences(uri: str | None = None, experiment: str = "magicvideo-eval", benchmarks: list[str] | None = None,
                       baseline: str | None = None, *, num_replicates: int = 200, num_permutations: int = 199,
                       ci: float = 0.95, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``{benchmark: table}``: every checkpoint's metrics minus the baseline's, paired over prompts.

    The baseline is the first checkpoint of ``compare``'s table (lowest step) or the one labelled
    ``baseline``. A checkpoint evaluated on other prompts or seeds than the baseline gets a note, no
    numbers. FVD/FID: ``evaluation.paired_frechet_difference`` on the features saved by
    ``flows.metrics.save_features`` (reference: the run's cached Gaussian, held fixed; groups: prompts);
    CLIPSIM and attribute accuracy: ``evaluation.paired_mean_difference`` on samples.jsonl. ``diff`` is
    checkpoint - baseline (FVD, FID: lower is better; CLIPSIM, attribute accuracy: higher is better);
    ``p_value``: paired permutation test, ``num_permutations`` swaps (resolution 1 / (num_permutations + 1)).
    """
    import tempfile

    from mlflow.tracking import MlflowClient

    from evaluation.paired import paired_frechet_difference, paired_mean_difference

    uri = tracking.tracking_uri(uri)
    runs = _finished_checkpoint_runs(uri, experiment)
    if runs is None:
        return {}
    client = MlflowClient(uri)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for bench, _, df in _groups(runs, benchmarks):
            df = _latest_child_runs(df)
            labels = list(df["tags.checkpoint_label"])
            if len(df) < 2:
                continue
            if baseline is not None and baseline not in labels:
                raise ValueError(f"--baseline {baseline!r} is not a checkpoint of {bench!r}: {labels}")
            b_idx = labels.index(baseline) if baseline is not None else 0
            arts = [_run_artifacts(client, rid, Path(tmp) / rid) for rid in df["run_id"]]
            base = arts[b_idx]
            keys = [_sample_key(s) for s in base["samples"]]
            rows = []
            for i, (label, art) in enumerate(zip(labels, arts)):
                if i == b_idx:
                    continue
                row0 = {"checkpoint": label, "baseline": labels[b_idx]}
                if not keys or sorted(_sample_key(s) for s in art["samples"]) != sorted(keys):
                    rows.append({**row0, "note": "not evaluated on the same prompts and seeds as the baseline"})
                    continue
                for m in PAIRED_FRECHET:
                    fr_a, fr_b = art["results"].get("frechet", {}).get(m), base["results"].get("frechet", {}).get(m)
                    if fr_a is None or fr_b is None:
                        continue
                    values = {**row0, "metric": m, "value": fr_a.get("value"), "baseline_value": fr_b.get("value")}
                    if "features_file" not in fr_a or "features_file" not in fr_b:
                        rows.append({**values, "note": "no per-sample features saved (metrics.bootstrap=0 or an older run)"})
                        continue
                    got = _frechet_rows(fr_a["features_file"], fr_b["features_file"], keys)
                    if isinstance(got, str):
                        rows.append({**values, "note": got})
                        continue
                    fa, fb, groups, ref, ub = got
                    r = paired_frechet_difference(fa, fb, ref_gaussian=ref, groups=groups, unbiased=ub, ci=ci, seed=seed,
                                                  num_replicates=num_replicates, num_permutations=num_permutations)
                    rows.append({**row0, "metric": m, **_result_row(r)})
                for m in PAIRED_PER_CLIP:
                    va, vb = _per_clip(art["samples"], m, keys), _per_clip(base["samples"], m, keys)
                    if va is None or vb is None:
                        continue
                    groups = [k[0] for k in keys]
                    r = paired_mean_difference(va, vb, groups=groups, num_replicates=max(num_replicates, 2000),
                                               num_permutations=num_permutations, ci=ci, seed=seed)
                    rows.append({**row0, "metric": m, **_result_row(r)})
            if rows:
                out[bench] = pd.DataFrame(rows)
    return out


def _result_row(r) -> dict:
    return {"value": r.value_a, "baseline_value": r.value_b, "diff": r.diff, "ci_low": r.low, "ci_high": r.high,
            "p_value": r.p_value, "prompts": r.n, "note": "; ".join(r.notes)}
