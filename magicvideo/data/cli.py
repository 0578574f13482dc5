"""`magicvideo data shapes` and `magicvideo data manifest`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_data(subparsers) -> None:
    from magicvideo.validate import non_negative_int, positive_int

    p = subparsers.add_parser("data", help="benchmarks and datasets: write the shapes benchmark, prompt manifests")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])

    s = sub.add_parser("shapes", help="write the synthetic 'shapes' benchmark (MSR-VTT layout + train CSV)")
    s.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    s.add_argument("--train", type=non_negative_int, help="training clips (default: configs/benchmarks/shapes.yaml, 2000)")
    s.add_argument("--test", type=positive_int, help="test clips (default 256)")
    s.add_argument("--size", type=positive_int, help="frame side in pixels, 16..256 (default 64)")
    s.add_argument("--seed", type=non_negative_int, help="generator seed (default 0)")
    s.add_argument("--workers", type=non_negative_int, default=None, help="processes (default: all CPUs)")
    s.add_argument("--config", default="shapes", help="benchmark config whose `generate` section gives the defaults")
    s.set_defaults(func=_shapes)

    m = sub.add_parser("manifest", help="write a benchmark's prompt manifest (JSONL) and check its reference videos")
    m.add_argument("benchmark", metavar="BENCHMARK", help="name in configs/benchmarks/ or a YAML path")
    m.add_argument("--root", type=Path, help="dataset folder (overrides the config's root and its environment variable)")
    m.add_argument("--out", type=Path, help="manifest file (default: print the summary only)")
    m.add_argument("--no-probe", action="store_true", help="only check that reference files exist, do not open them")
    m.add_argument("--limit", type=positive_int, help="keep only the first N prompts (a smoke run)")
    m.set_defaults(func=_manifest)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()
    )


def _shapes(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magicvideo.configs import validate_config
    from magicvideo.data.benchmarks import ShapesConfig, load_benchmark_config
    from magicvideo.data.shapes import ShapesSpec, write_shapes

    config = load_benchmark_config(args.config)
    if not isinstance(config, ShapesConfig):
        raise ValueError(f"--config {args.config}: not a shapes benchmark (kind {config.kind})")
    overrides = {k: v for k in ("train", "test", "size", "seed") if (v := getattr(args, k)) is not None}
    spec = validate_config({**config.generate.model_dump(), **overrides}, ShapesSpec, source="options")
    out = args.out_dir
    if out.exists() and any(out.iterdir()) and not (out / "shapes.json").exists() and not (out / "TestVideo").exists():
        raise ValueError(f"{out} exists and is not a shapes benchmark folder; choose an empty or new folder")
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("rendering + writing clips", total=spec.train + spec.test)
        summary = write_shapes(out, spec, workers=args.workers, progress=lambda n: bar.advance(task, n))
    dt = time.perf_counter() - t0
    n = spec.train + spec.test
    console.print(
        f"wrote {spec.train} train + {spec.test} test clips ({summary['counts']['frames']} frames, "
        f"{spec.size}x{spec.size}) to {out} in {dt:.1f} s ({n / dt:.0f} clips/s)"
    )
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from magicvideo.data.benchmarks import load_benchmark
    from magicvideo.data.records import Scan, write_manifest

    bench = load_benchmark(args.benchmark, root=args.root)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        bench.config.limit = args.limit
    console = Console()
    probe = bench.has_references and not args.no_probe
    prompts = bench.manifest()
    refs, skipped = bench.reference_videos()
    if probe and refs:
        with _progress() as bar:
            task = bar.add_task("probing reference videos", total=len(refs))
            refs = bench.probe(refs, skipped, progress=lambda done, total: bar.update(task, completed=done))
    scan = Scan(bench.name, prompts, refs, skipped)
    if args.out:
        write_manifest(args.out, scan.prompts)

    table = Table(title=f"benchmark {scan.benchmark} ({bench.root})")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("prompts", str(len(scan.prompts)))
    if bench.has_references:
        table.add_row("reference videos" + ("" if probe else " (files found, not opened)"), str(len(scan.references)))
        table.add_row("skipped", str(len(scan.skipped)))
        for reason, n in scan.skip_counts().items():
            table.add_row(f"  skipped: {reason}", str(n))
    console.print(table)
    for s in scan.skipped[:10]:
        console.print(f"  skipped {s.item}: {s.detail or s.reason}", highlight=False)
    if len(scan.skipped) > 10:
        console.print(f"  ... and {len(scan.skipped) - 10} more")
    if args.out:
        console.print(f"manifest: {args.out} ({len(scan.prompts)} records)")
    return 0
