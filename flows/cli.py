"""``magicvideo eval`` / ``compare`` / ``sweep`` (entry points in pyproject.toml).

``eval`` runs the same ``eval`` flow a deployment runs, with no server: a temporary Prefect server
for the command's length (unless ``PREFECT_API_URL`` is set), a local Ray (or ``--ray-address``),
SQLite MLflow in the working directory (or ``MLFLOW_TRACKING_URI`` / ``--tracking-uri``), all
started side by side before the flow (:mod:`flows.services`).
"""

from __future__ import annotations

import json

from magicvideo.configs import apply_overrides


def _benchmarks() -> str:
    from magicvideo.configs import CONFIG_ROOT

    return ", ".join(sorted(p.stem for p in (CONFIG_ROOT / "benchmarks").glob("*.yaml"))) or "none"


def add_eval(sub) -> None:
    from magicvideo.validate import non_negative_float, non_negative_int, positive_int

    p = sub.add_parser("eval", help="evaluate checkpoints on a benchmark (Prefect flow, Ray, MLflow)",
                       description="Evaluate checkpoints on a benchmark. Everything that can be checked without "
                                   "services (config names, dataset folder, prompt files, checkpoint folders) is "
                                   "checked first.")
    p.add_argument("benchmark", help=f"configs/benchmarks/<name>.yaml or a YAML path; available: {_benchmarks()}")
    p.add_argument("--checkpoint", action="append",
                   help="saved pipeline folder (repeatable); default: the config's checkpoints, and on the shapes "
                        "benchmark the committed checkpoints/shapes/pipeline")
    p.add_argument("--config", help="configs/eval/<name>.yaml (default: the benchmark's name, if present)")
    p.add_argument("--root", help="benchmark dataset folder (default: the benchmark config's root or its env var)")
    p.add_argument("--samples-per-prompt", type=positive_int, help="clips per prompt (default: the config's, 1)")
    p.add_argument("--seed", type=non_negative_int, help="run seed (default: the config's, 0)")
    p.add_argument("--limit", type=positive_int, help="first N prompts (smoke run)")
    p.add_argument("--steps", type=positive_int, help="denoising steps (default: the config's, 25)")
    p.add_argument("--guidance-scale", type=non_negative_float,
                   help="classifier-free guidance scale, 1 = off (default: the config's, 7.5)")
    p.add_argument("--scheduler", help="ddim, dpm++, euler, euler_a, pndm, ddpm, unipc (default: the config's, ddim)")
    p.add_argument("--stages", help="cascade stages to generate and score, each in its own MLflow child run: "
                                    "keyframes, keyframes,interpolate, keyframes,upsample or keyframes,interpolate,"
                                    "upsample (default: the config's sampler.stages, keyframes)")
    p.add_argument("--output-root", help="samples, features, statistics (default: the config's, outputs/eval)")
    p.add_argument("--ray-address", help="'auto' or ray://host:10001 (default: a local Ray)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="any config key, e.g. --set metrics.bootstrap=0 --set metrics.fid=null")
    p.set_defaults(func=run_eval)


def _overrides(args) -> dict:
    o: dict = {}
    if args.root:
        o["benchmark_root"] = args.root
    sampler = {k: v for k, v in (("num_inference_steps", args.steps), ("guidance_scale", args.guidance_scale),
                                 ("scheduler", args.scheduler), ("stages", args.stages)) if v is not None}
    if sampler:
        o["sampler"] = sampler
    if args.tracking_uri:
        o["tracking"] = {"uri": args.tracking_uri}
    return parse_sets(args.set, o)


def parse_sets(items: list[str], into: dict | None = None) -> dict:
    """``--set KEY=JSON`` items set into the nested overrides `into` (a value that is not JSON
    stays a string)."""
    sets = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            sets[key] = json.loads(raw)
        except json.JSONDecodeError:
            sets[key] = raw
    return apply_overrides({} if into is None else into, sets, source="--set")


def run_eval(args) -> int:
    from flows.validate import validate_eval

    params = dict(benchmark=args.benchmark, checkpoints=args.checkpoint, config=args.config,
                  samples_per_prompt=args.samples_per_prompt, seed=args.seed, limit=args.limit,
                  output_root=args.output_root, ray_address=args.ray_address, overrides=_overrides(args))
    # every mistake that can be found without services fails here, in one line, before anything starts
    cfg = validate_eval(params)
    import logging

    from flows import reaper
    from flows.tracking import tracking_uri
    from magicvideo.cli import configure_logging, interrupt_on_sigterm, interrupt_signal, log_path

    log = logging.getLogger("flows.cli")
    # SIGTERM unwinds like Ctrl-C: the actors, Ray and the server stop, the runs are marked KILLED
    interrupt_on_sigterm()
    stale = reaper.stale_runs()  # runs killed earlier: settled once the services are up
    record = reaper.RunRecord(tracking_uri=tracking_uri(cfg.tracking.uri), experiment=cfg.tracking.experiment,
                              output_root=cfg.output_root, log=str(log_path() or "")).start()
    try:
        import prefect  # noqa: F401 - configures logging at import: route it again (tracebacks to the log file)

        configure_logging()
        from flows.services import starting_services

        with starting_services(args.ray_address, warm=cfg) as services:
            from flows.eval_flow import eval_flow  # its imports (Prefect, torch, MLflow) while the services start
        try:
            with services.prefect():
                for info in stale:
                    reaper.settle(info, log)
                hooks = [record.flow_hook, lambda *_: interrupt_on_sigterm()]  # Prefect's own SIGTERM handler off
                try:
                    rows = eval_flow.with_options(on_running=hooks)(**params)
                except KeyboardInterrupt:  # SIGINT, or SIGTERM: the runs KILLED, noting which (issue 19.2)
                    reaper.settle_interrupted(record.info, interrupt_signal(), log)
                    raise
        finally:
            services.stop_ray()
    finally:
        record.finish()
    _print_rows(rows)
    if rows:  # the last lines: the MLflow run, how to open it, the output folder (issue 19.4)
        print(rows[0]["where"])
    return 0


def _print_rows(rows) -> None:
    """The results, one column per checkpoint (and stage, after the key frames) and one row per metric
    (95% intervals beside FVD and FID; CLIPSIM; each attribute's accuracy beside its chance level; the
    temporal ratios to real clips), narrow enough for 80 columns."""
    from rich.console import Console
    from rich.table import Table

    def cell(r, m):
        if not isinstance(r.get(m), float):
            return "-" if r.get(m) is None else str(r[m])
        ci = f" [{r[f'{m}_ci_low']:.2f}, {r[f'{m}_ci_high']:.2f}]" if f"{m}_ci_low" in r else ""
        return f"{r[m]:.3f}{ci}"

    attrs = list(dict.fromkeys(k.split("/", 1)[1] for r in rows for k in r if k.startswith("attr_acc/")))
    lines = [("step", "step"), ("fvd", "FVD [95% CI]"), ("fid", "FID [95% CI]"),
             ("clipsim", "CLIPSIM (higher better)")]
    lines += [(f"attr_acc/{a}", f"attribute acc. {a}") for a in attrs]
    lines += [("temporal/pixel_change_ratio", "pixel change / real"),
              ("temporal/frame_change_ratio", "frame change / real"), ("clips_per_s", "clips/s")]
    heads = [str(r["checkpoint"]) + (f" ({r['stage']})" if r.get("stage", "keyframes") != "keyframes" else "")
             for r in rows]
    t = Table("", *heads, *(["chance"] if attrs else []))
    for key, label in lines:
        if any(key in r for r in rows):
            chance = next((r[key.replace("attr_acc/", "attr_chance/")] for r in rows if key.startswith("attr_acc/")
                           and key.replace("attr_acc/", "attr_chance/") in r), None)
            t.add_row(label, *[cell(r, key) for r in rows], *([f"{chance:.3f}" if chance is not None else ""]
                                                              if attrs else []))
    Console().print(t)


def add_compare(sub) -> None:
    from magicvideo.validate import positive_int

    p = sub.add_parser("compare", help="checkpoint x metric tables from MLflow, metric-vs-step plots")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--experiment", default="magicvideo-eval", help="MLflow experiment of the eval runs")
    p.add_argument("--benchmark", action="append", help=f"only these benchmarks (repeatable; known: {_benchmarks()})")
    p.add_argument("--plots", default="compare_plots", help="folder for <benchmark>_<metric>.png")
    p.add_argument("--baseline", metavar="LABEL",
                   help="checkpoint the others are compared with, paired over prompts "
                        "(default: the first, lowest step)")
    p.add_argument("--replicates", type=positive_int, default=200, help="bootstrap replicates of each paired difference")
    p.add_argument("--permutations", type=positive_int, default=199,
                   help="swaps of the paired permutation test (p-values down to 1/(N+1))")
    p.add_argument("--no-paired", action="store_true", help="only the tables, no paired differences")
    p.set_defaults(func=run_compare)


def run_compare(args) -> int:
    from flows.compare import compare

    tables = compare(args.tracking_uri, args.experiment, args.plots, args.benchmark)
    if not tables:
        print("no finished eval runs found")
        return 1
    for bench, table in tables.items():
        print(f"\n== {bench}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not args.no_paired:
        _print_paired(args)
    print("\nFVD, FID: lower is better; CLIPSIM, attr_acc: higher is better")
    print(f"\nplots in {args.plots}/")
    return 0


def _print_paired(args) -> None:
    """Each checkpoint minus the baseline, per metric: difference, interval, paired permutation p-value."""
    import os

    from flows.compare import paired_differences

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded artifact otherwise
    try:
        diffs = paired_differences(args.tracking_uri, args.experiment, args.benchmark, args.baseline,
                                   num_replicates=args.replicates, num_permutations=args.permutations)
    except ValueError as exc:  # an unknown --baseline
        print(f"\nno paired differences: {exc}")
        return
    for bench, table in diffs.items():
        base = table["baseline"].iloc[0]
        print(f"\n== {bench}: difference vs {base} (checkpoint - baseline, paired over the same prompts and seeds; "
              "95% bootstrap interval; p: paired permutation test; FVD/FID reference: the cached Gaussian, held fixed)")
        for _, r in table.iterrows():
            if isinstance(r.get("diff"), float) and r["diff"] == r["diff"]:
                note = "; ".join(n for n in str(r.get("note") or "").split("; ") if n and "held fixed" not in n)
                print(f"  {r['checkpoint']:<20} {r['metric']:<14} {r['value']:10.4f} vs {r['baseline_value']:10.4f}  "
                      f"diff {r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]  p={r['p_value']:.3g}  "
                      f"({int(r['prompts'])} prompts){'  ' + note if note else ''}")
            else:
                print(f"  {r['checkpoint']:<20} {r.get('metric') if isinstance(r.get('metric'), str) else '':<14} "
                      f"{r['note']}")


def add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="evaluate every new checkpoint of a folder (what the nightly deployment runs)")
    p.add_argument("watch_dir", help="folder searched for saved pipeline folders (4 levels down)")
    p.add_argument("--benchmark", action="append", help=f"benchmark to run (repeatable; default shapes; known: {_benchmarks()})")
    p.add_argument("--config", help="configs/eval/<name>.yaml (default: the benchmark's name, if present)")
    p.set_defaults(func=lambda a: print(__import__("flows.eval_flow", fromlist=["x"]).sweep_flow(
        watch_dir=a.watch_dir, benchmarks=a.benchmark, config=a.config)) or 0)
