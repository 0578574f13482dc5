"""``magicvideo compare``: checkpoints x metrics per benchmark from MLflow, and metric-vs-step plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flows import plots, tracking

COLUMNS = ["fvd", "fvd_ci_low", "fvd_ci_high", "fid", "fid_ci_low", "fid_ci_high", "attr_acc/mean", "clips_per_s"]


def compare(uri: str | None = None, experiment: str = "magicvideo-eval", plot_dir: str | Path | None = None,
            benchmarks: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """``{benchmark: table}``: the latest finished child run per (checkpoint id, ablation), by step."""
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri(uri))
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    if runs.empty or "tags.checkpoint_id" not in runs:
        return {}
    runs = runs[runs["tags.checkpoint_id"].notna()]
    out = {}
    for bench, df in runs.groupby("tags.benchmark"):
        if benchmarks and bench not in benchmarks:
            continue
        keys = ["tags.checkpoint_id"] + (["tags.ablation"] if "tags.ablation" in df else [])
        df = df.drop_duplicates(keys, keep="first")  # newest run of each checkpoint
        step = pd.to_numeric(df["params.checkpoint.step"], errors="coerce")
        table = pd.DataFrame({"checkpoint": df["tags.checkpoint_label"], "step": step})
        if "tags.ablation" in df:
            table["ablation"] = df["tags.ablation"]
        for c in COLUMNS:
            if f"metrics.{c}" in df:
                table[c] = df[f"metrics.{c}"]
        table = table.sort_values(["step", "checkpoint"], na_position="last").reset_index(drop=True)
        out[bench] = table
        if plot_dir is not None:
            Path(plot_dir).mkdir(parents=True, exist_ok=True)
            rows = table.to_dict("records")
            for m in ("fvd", "fid"):
                if m in table and table[m].notna().any():
                    fig = plots.metric_vs_step(rows, m, f"{bench}: {m.upper()} vs training step")
                    fig.savefig(Path(plot_dir) / f"{bench}_{m}.png", dpi=100, bbox_inches="tight")
                    plots.plt.close(fig)
    return out
