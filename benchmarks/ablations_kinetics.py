"""FVD of saved ablation clips under two networks: the committed shapes classifier and DeepMind's
Kinetics-400 I3D (the real FVD network, ``fvd_tfhub``), and whether the two rank the runs alike
(issue 12, point 10).

The clips come from ``benchmarks/ablations_shapes.py --save-clips DIR`` (``DIR/<run>.npz``, uint8
``clips`` [N, 16, 64, 64, 3] at 8 fps, the first N shapes test prompts); the reference is the shapes
test split read as the benchmark's protocol reads it (16 frames at 8 fps). Both networks see the same
clips. Runs on a CPU (the Kinetics I3D upsamples every frame to 224x224).

    python benchmarks/ablations_kinetics.py DIR --data SHAPES_DATA [--json F] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", help="DIR/<run>.npz, as ablations_shapes.py --save-clips writes")
    ap.add_argument("--data", required=True, help="the rendered shapes benchmark (its TestVideo/ and annotations)")
    ap.add_argument("--runs", help="comma-separated run names (default: every .npz of DIR)")
    ap.add_argument("--limit", type=int, help="first N clips of each run and of the reference")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()

    from scipy.stats import kendalltau, spearmanr

    from evaluation.extractors import build_extractor
    from evaluation.metrics import compute_fvd, extract_stats
    from evaluation.protocols import DEFAULT_PROTOCOL, for_protocol, get_protocol
    from magicvideo.data import load_benchmark

    root = Path(args.clips)
    names = args.runs.split(",") if args.runs else sorted(p.stem for p in root.glob("*.npz"))
    bench = load_benchmark("shapes", root=args.data)
    real = np.stack([c.frames for c in bench.reference_clips()])[: args.limit]
    extractors = {"kinetics400_i3d": build_extractor("i3d_kinetics400"), "shapes_i3d": build_extractor("shapes_i3d")}
    print(f"{len(real)} reference clips; runs: {', '.join(names)}")
    real_stats = {}  # the reference's features, once per network (as the eval flow caches them)
    for key, ext in extractors.items():
        p = get_protocol(DEFAULT_PROTOCOL[ext.name])
        real_stats[key] = extract_stats(real, for_protocol(ext, p), keep_features=args.bootstrap > 0,
                                        num_frames=p.num_frames)  # fmt: skip
    rows = []
    for name in names:
        fake = np.load(root / f"{name}.npz")["clips"][: args.limit]
        row = {"run": name, "clips": len(fake)}
        for key, ext in extractors.items():
            t0 = time.perf_counter()
            r = compute_fvd(fake, extractor=ext, real_stats=real_stats[key], bootstrap=args.bootstrap)
            b = r.bootstrap
            row.update({f"fvd_{key}": r.value, f"fvd_{key}_low": b.low if b else float("nan"),
                        f"fvd_{key}_high": b.high if b else float("nan"), f"fvd_{key}_protocol": r.protocol,
                        f"seconds_{key}": round(time.perf_counter() - t0, 1)})  # fmt: skip
        rows.append(row)
        print(f"{name:28s} FVD Kinetics I3D {row['fvd_kinetics400_i3d']:8.2f} "
              f"[{row['fvd_kinetics400_i3d_low']:.2f}, {row['fvd_kinetics400_i3d_high']:.2f}]   shapes I3D "
              f"{row['fvd_shapes_i3d']:8.2f} [{row['fvd_shapes_i3d_low']:.2f}, {row['fvd_shapes_i3d_high']:.2f}]",
              flush=True)  # fmt: skip
    summary = {}
    if len(rows) >= 3:
        a = [r["fvd_kinetics400_i3d"] for r in rows]
        b = [r["fvd_shapes_i3d"] for r in rows]
        summary = {"spearman": float(spearmanr(a, b).statistic), "kendall_tau": float(kendalltau(a, b).statistic),
                   "order_kinetics": [r["run"] for r in sorted(rows, key=lambda r: r["fvd_kinetics400_i3d"])],
                   "order_shapes": [r["run"] for r in sorted(rows, key=lambda r: r["fvd_shapes_i3d"])]}  # fmt: skip
        print(f"rank agreement over {len(rows)} runs: Spearman {summary['spearman']:.3f}, Kendall tau "
              f"{summary['kendall_tau']:.3f}\n  best to worst, Kinetics I3D: {', '.join(summary['order_kinetics'])}\n"
              f"  best to worst, shapes I3D:   {', '.join(summary['order_shapes'])}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "rank_agreement": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
