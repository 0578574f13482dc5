"""The Fig. 7 table over several training runs of each ablation variant: the rows of several
``benchmarks/ablations_shapes.py --json`` files (one file per training seed, each variant paired
against the same seed's ``full`` on the same prompts and sample seeds) joined into one table,
summarised per variant over the runs, charted, and optionally logged to MLflow.

    python benchmarks/ablation_seeds.py RUN.json[=LABEL] ... [--json ROWS] [--summary SUMMARY]
        [--plot PNG] [--mlflow EXPERIMENT] [--tracking-uri URI]

Each input file is one training run of every variant (LABEL names it in the rows' ``run``; default:
the file's stem). Writes

- ``--json``: a list of rows, one per variant and run, each with ``variant`` (full, no_adaptor, ...),
  ``label`` (the paper's name), ``seed`` (the training seed), ``run`` and every metric of the input,
  the paired differences against that run's ``full`` included (``paired/fvd_diff`` with its 95%
  interval ``paired/fvd_low/high`` and permutation p-value, and the same for the attribute mean and
  pixel change);
- ``--summary``: per variant over the runs, mean / sd / min / max and a 95% t interval of the mean
  (:func:`evaluation.seeds.seed_summary`) of FVD, FID, attribute mean, pixel change ratio and the
  paired differences, and ``runs_paired_fvd_above_0`` / ``_below_0``: how many runs' own paired
  FVD interval lies wholly above / below 0;
- ``--plot``: bars at the mean over runs, whiskers +-1 sd, each run's value as a dot;

and prints the summary as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: metrics summarised over runs: (row key, column title, format)
SUMMARY = [("fvd", "FVD", ".1f"), ("fid", "FID", ".2f"), ("attr_acc/mean", "attribute mean", ".3f"),
           ("temporal/pixel_change_ratio", "pixel change (x real)", ".2f"),
           ("paired/fvd_diff", "FVD - full", "+.1f"), ("paired/attr_mean_diff", "attribute mean - full", "+.3f")]  # fmt: skip


def load_runs(specs: list[str]) -> list[dict]:
    """The rows of every ``FILE[=LABEL]``, normalised: ``variant`` is the variant's key (old files
    carry the key in ``variant``, newer ones its label, with the key in ``key``), ``label`` the
    paper's name, ``run`` the file's label."""
    from magicvideo.training.ablations import LABELS

    by_label = {v: k for k, v in LABELS.items()}
    rows = []
    for spec in specs:
        path, _, label = spec.partition("=")
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read ablation rows from {path}: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) and "variant" in r for r in data):
            raise SystemExit(f"{path} is not a list of ablation rows (benchmarks/ablations_shapes.py --json)")
        for r in data:
            key = r.get("key") or by_label.get(r["variant"], r["variant"])
            if key not in LABELS:
                continue  # another pipeline scored beside the variants (e.g. the committed one)
            out = {k: v for k, v in r.items() if k not in ("key", "variant_label")}
            rows.append({**out, "variant": key, "label": LABELS[key], "run": label or Path(path).stem})
    runs = list(dict.fromkeys(r["run"] for r in rows))
    for run in runs:
        if not any(r["run"] == run and r["variant"] == "full" for r in rows):
            raise SystemExit(f"run {run!r} has no 'full' row: its variants are paired against it")
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    from evaluation.seeds import seed_summary

    summary = seed_summary(rows, [m for m, _, _ in SUMMARY], seed_key="run")
    for s in summary:
        mine = [r for r in rows if r["variant"] == s["variant"]]
        s["label"] = mine[0]["label"]
        s["runs_paired_fvd_above_0"] = sum(1 for r in mine if r.get("paired/fvd_low", float("nan")) > 0)
        s["runs_paired_fvd_below_0"] = sum(1 for r in mine if r.get("paired/fvd_high", float("nan")) < 0)
    return summary


def markdown(summary: list[dict]) -> str:
    head = "| variant | runs | " + " | ".join(t for _, t, _ in SUMMARY) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(SUMMARY)]
    for s in summary:
        cells = []
        for m, _, f in SUMMARY:
            if f"{m}/mean" not in s:
                cells.append("")
                continue
            cell = f"{s[f'{m}/mean']:{f}} ± {s[f'{m}/std']:{f.lstrip('+')}}"
            if m.startswith("paired/") and not math.isnan(s[f"{m}/ci_low"]):
                cell += f" [{s[f'{m}/ci_low']:{f}}, {s[f'{m}/ci_high']:{f}}]"
            cells.append(cell)
        lines.append(f"| {s['label']} | {s['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(summary: list[dict]):
    from flows.plots import ablation_seed_bars  # plotting only: no Prefect or Ray needed

    return ablation_seed_bars([{**s, "variant": s["label"]} for s in summary], ["fvd", "attr_acc/mean", "paired/fvd_diff"],
                              "Ablations on shapes: mean and spread over training runs")  # fmt: skip


def log_to_mlflow(rows: list[dict], summary: list[dict], experiment: str, uri: str | None) -> str:
    """One MLflow run: per variant the mean over runs of each summarised metric (``<variant>/<m>/mean``
    and its interval), the rows, the summary and the chart as artifacts. Returns the run id."""
    from flows import tracking

    c = tracking.client(tracking.tracking_uri(uri))
    runs = list(dict.fromkeys(r["run"] for r in rows))
    run = c.create_run(tracking.experiment_id(c, experiment), run_name=f"ablations-{len(runs)}runs")
    rid = run.info.run_id
    tracking.log_params(c, rid, {"runs": ",".join(runs), "variants": ",".join(s["variant"] for s in summary),
                                 "clips": rows[0].get("clips"), "sampler": json.dumps(rows[0].get("sampler"))})  # fmt: skip
    metrics = {f"{s['variant']}/{m}/{k}": s[f"{m}/{k}"] for s in summary for m, _, _ in SUMMARY
               for k in ("mean", "std", "ci_low", "ci_high") if f"{m}/{k}" in s and not math.isnan(s[f"{m}/{k}"])}
    tracking.log_metrics(c, rid, metrics, step=0)
    tracking.log_json(c, rid, rows, "ablations.json")
    tracking.log_json(c, rid, summary, "ablations_seeds.json")
    tracking.log_figure(c, rid, chart(summary), "ablations_seeds.png")
    c.set_terminated(rid)
    return rid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN.json[=LABEL]")
    ap.add_argument("--json", help="write the joined rows here")
    ap.add_argument("--summary", help="write the per-variant summary here")
    ap.add_argument("--plot", help="write the chart here (PNG)")
    ap.add_argument("--mlflow", metavar="EXPERIMENT", help="log rows, summary and chart as a run of this experiment")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    args = ap.parse_args(argv)
    rows = load_runs(args.runs)
    summary = summarise(rows)
    print(markdown(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary, indent=1))
    if args.plot:
        chart(summary).savefig(args.plot, dpi=120)
    if args.mlflow:
        print(f"MLflow run {log_to_mlflow(rows, summary, args.mlflow, args.tracking_uri)} in experiment {args.mlflow!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
