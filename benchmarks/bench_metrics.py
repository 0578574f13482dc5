"""GPU benchmark of the metric code: I3D clips/s by precision mode with the FVD change against parity,
Inception images/s with the FID change, Fréchet distance time at 2048-d against scipy's sqrtm.

Weights are random (nothing can be downloaded), with batch-norm statistics calibrated on the
synthetic clips so that activations keep a realistic scale through the network; the FVD/FID
differences between precision modes are measured on two synthetic clip distributions.

    python benchmarks/bench_metrics.py [--clips 512] [--out results.json]

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
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from evaluation.extractors import precision_mode  # noqa: E402
from evaluation.frechet import frechet_distance, frechet_distance_scipy_sqrtm, frechet_distance_torch  # noqa: E402
from evaluation.i3d import InceptionI3d  # noqa: E402
from evaluation.inception import InceptionV3FID  # noqa: E402
from evaluation.stats import FeatureStats  # noqa: E402


def synthetic_clips(n, t, size, seed, device, style):
    """Smooth moving blobs in [-1, 1], ``[n, 3, t, size, size]``; ``style`` shifts the distribution."""
    g = torch.Generator(device=device).manual_seed(seed)
    base = torch.randn(n, 3, 4, 14, 14, generator=g, device=device)
    if style == "fake":
        base = base * 1.3 + 0.2 * torch.randn(n, 3, 4, 14, 14, generator=g, device=device).sign()
    x = F.interpolate(base, size=(t, size, size), mode="trilinear", align_corners=False)
    x = x + 0.05 * torch.randn(n, 3, t, size, size, generator=g, device=device)
    return x.clamp(-1, 1)


@torch.no_grad()
def calibrate_bn(model, batch):
    """Set running BN statistics from one batch (cumulative average), then eval mode."""
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    model(batch) if not isinstance(model, InceptionV3FID) else model.features(batch)
    return model.eval()


def timed(fn, reps):
    if not torch.cuda.is_available():  # CPU smoke run
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return float(np.median(ts))
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return float(np.median(times))


def fd_of(fa, fb, unbiased=True):
    sa, sb = FeatureStats().update(fa), FeatureStats().update(fb)
    return frechet_distance(sa.mean(), sa.cov(unbiased), sb.mean(), sb.cov(unbiased))


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def bench_i3d(args, device, results):
    torch.manual_seed(0)
    base = InceptionI3d().to(device)
    calibrate_bn(base, synthetic_clips(32, 16, 224, 99, device, "real"))
    sets = [(synthetic_clips(args.clips, 16, 224, 10 * k + 1, device, "real"),
             synthetic_clips(args.clips, 16, 224, 10 * k + 2, device, "fake")) for k in range(args.seeds)]
    real = sets[0][0]
    bs = args.i3d_batch

    def features(model, clips, precision, cl):
        out = []
        with precision_mode(precision, DEV):
            for i in range(0, len(clips), bs):
                x = clips[i : i + bs]
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last_3d)
                out.append(model(x).float())
        return torch.cat(out)

    modes = [  # name, precision, channels_last_3d, fuse_bn, compile
        ("fp32 (TF32 off, parity)", "fp32", False, False, False),
        ("fp32 + fused BN + CL3d", "fp32", True, True, False),
        ("tf32", "tf32", False, False, False),
        ("tf32 + fused BN + CL3d", "tf32", True, True, False),
        ("bf16 + fused BN + CL3d", "bf16", True, True, False),
        ("fp16 + fused BN + CL3d", "fp16", True, True, False),
        ("tf32 + fused BN + CL3d + compile", "tf32", True, True, True),
        ("fp16 + fused BN + CL3d + compile", "fp16", True, True, True),
        ("bf16 + fused BN + CL3d + compile", "bf16", True, True, True),
    ]
    torch.backends.cudnn.benchmark = True
    ref_feats = None
    rows = []
    # float64 reference on a few clips: how far is fp32 parity itself from exact?
    m64 = copy.deepcopy(base).double()
    with torch.no_grad():
        f64 = m64(real[:8].double())
        f32 = features(base, real[:8], "fp32", False)
    results["i3d_fp32_vs_fp64_feature_rel_err"] = rel(f32, f64)
    del m64
    if args.i3d_modes:
        modes = [m for m in modes if m[0] in args.i3d_modes or m[0].startswith("fp32 (")]
    for name, precision, cl, fuse, comp in modes:
        if comp and (time.time() - T0 > args.budget_s or DEV == "cpu"):
            rows.append(dict(mode=name, skipped="time budget"))
            continue
        model = copy.deepcopy(base)
        if fuse:
            model.fuse_batchnorm_()
        if cl:
            model = model.to(memory_format=torch.channels_last_3d)
        if comp:
            torch._dynamo.reset()  # else a second compiled mode reuses the first one's autocast graph
            model = torch.compile(model)
        t_c = time.time()
        with torch.no_grad():
            feats = [(features(model, r, precision, cl), features(model, f, precision, cl)) for r, f in sets]
        first = time.time() - t_c
        x = real[:bs].contiguous(memory_format=torch.channels_last_3d) if cl else real[:bs]

        def step():
            with torch.no_grad(), precision_mode(precision, DEV):
                model(x)

        sec = timed(step, args.reps)
        fvds = [fd_of(ff, fr) for fr, ff in feats]
        if ref_feats is None:
            ref_feats, ref_fvds = feats, fvds
        diffs = [abs(a - b) / b for a, b in zip(fvds, ref_fvds)]
        errs = [rel(torch.cat(f), torch.cat(r)) for f, r in zip(feats, ref_feats)]
        row = dict(mode=name, clips_per_s=bs / sec, fvd=fvds[0], fvds=fvds, fvd_rel_diff=max(diffs),
                   fvd_rel_diffs=diffs, feature_rel_err=max(errs), first_pass_s=first)
        rows.append(row)
        print("i3d", row, flush=True)
        del model
        torch.cuda.empty_cache()
    results["i3d"] = rows


def bench_inception(args, device, results):
    torch.manual_seed(0)
    base = InceptionV3FID().to(device)
    g = torch.Generator(device=device).manual_seed(3)

    def images(n, style):
        x = torch.randn(n, 3, 16, 16, generator=g, device=device)
        if style == "fake":
            x = x * 1.3 + 0.3
        x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        return ((x.clamp(-2, 2) + 2) * 63.75).to(torch.uint8)

    calibrate_bn(base, base.normalize(images(64, "real")))
    real, fake = images(args.images, "real"), images(args.images, "fake")
    bs = args.inception_batch
    modes = [("fp32 (TF32 off, parity)", "fp32", False), ("tf32", "tf32", False),
             ("tf32 + channels_last", "tf32", True), ("bf16 + channels_last", "bf16", True),
             ("fp16 + channels_last", "fp16", True)]
    ref = None
    rows = []
    for name, precision, cl in modes:
        model = copy.deepcopy(base)
        if cl:
            model = model.to(memory_format=torch.channels_last)

        def run(imgs):
            x = model.normalize(imgs)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with precision_mode(precision, DEV):
                return model.features(x).float()

        with torch.no_grad():
            fr = torch.cat([run(real[i : i + bs]) for i in range(0, len(real), bs)])
            ff = torch.cat([run(fake[i : i + bs]) for i in range(0, len(fake), bs)])

        def step():
            with torch.no_grad():
                run(real[:bs])

        sec = timed(step, args.reps)
        fid = fd_of(ff, fr)
        if ref is None:
            ref, ref_fid = (fr, ff), fid
        row = dict(mode=name, images_per_s=bs / sec, fid=fid, fid_rel_diff=abs(fid - ref_fid) / ref_fid,
                   feature_rel_err=rel(torch.cat([fr, ff]), torch.cat(ref)))
        rows.append(row)
        print("inception", row, flush=True)
    results["inception"] = rows


def bench_frechet(args, device, results):
    rng = np.random.default_rng(0)
    d = args.dim
    a = rng.standard_normal((2 * d, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d))
    b = rng.standard_normal((2 * d, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)) + 0.1
    ga, gb = (a.mean(0), np.cov(a, rowvar=False)), (b.mean(0), np.cov(b, rowvar=False))
    rows = []
    for name, fn in (("eigh (numpy/scipy, CPU)", lambda: frechet_distance(*ga, *gb)),
                     ("eigh (torch float64, GPU)", lambda: frechet_distance_torch(*ga, *gb, device=device)),
                     ("scipy.linalg.sqrtm (reference)", lambda: frechet_distance_scipy_sqrtm(*ga, *gb))):
        fn() if "GPU" in name else None  # warm-up (cuSOLVER handles)
        reps = 1 if "sqrtm" in name else 3
        ts, vals = [], []
        for _ in range(reps):
            t = time.perf_counter()
            vals.append(fn())
            ts.append(time.perf_counter() - t)
        rows.append(dict(method=name, seconds=float(np.median(ts)), value=vals[0]))
        print("frechet", rows[-1], flush=True)
    ref = rows[-1]["value"]
    for r in rows:
        r["rel_diff_vs_sqrtm"] = abs(r["value"] - ref) / abs(ref)
    results["frechet"] = rows


def table(results):
    lines = [f"device: {results['device']}, torch {results['torch']}, cpu threads {results['threads']}", ""]
    lines.append(f"I3D 16x224x224, batch {results['args']['i3d_batch']}, {results['args']['clips']} clips/set, "
                 f"max over {results['args']['seeds']} set pair(s); "
                 f"fp32 vs fp64 feature rel err {results['i3d_fp32_vs_fp64_feature_rel_err']:.2e}")
    lines.append(f"| {'mode':34s} | clips/s | FVD rel diff | feature rel err |")
    for r in results.get("i3d", []):
        if "skipped" in r:
            lines.append(f"| {r['mode']:34s} | skipped ({r['skipped']}) |")
        else:
            lines.append(f"| {r['mode']:34s} | {r['clips_per_s']:7.0f} | {r['fvd_rel_diff']:12.2e} | {r['feature_rel_err']:15.2e} |")
    lines.append("")
    lines.append(f"Inception-v3 FID, 256x256 uint8 -> TF1 resize 299, batch {results['args']['inception_batch']}")
    lines.append(f"| {'mode':34s} | img/s   | FID rel diff | feature rel err |")
    for r in results.get("inception", []):
        lines.append(f"| {r['mode']:34s} | {r['images_per_s']:7.0f} | {r['fid_rel_diff']:12.2e} | {r['feature_rel_err']:15.2e} |")
    lines.append("")
    lines.append(f"Fréchet distance, {results['args']['dim']}-d")
    for r in results.get("frechet", []):
        lines.append(f"| {r['method']:34s} | {r['seconds']:7.2f} s | rel diff vs sqrtm {r['rel_diff_vs_sqrtm']:.1e} |")
    return "\n".join(lines)


T0 = time.time()
DEV = "cuda"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=512, help="clips per set (real, fake) for the FVD comparison")
    p.add_argument("--images", type=int, default=2560, help="images per set for the FID comparison")
    p.add_argument("--i3d-batch", type=int, default=32)
    p.add_argument("--seeds", type=int, default=1, help="synthetic (real, fake) set pairs; the table shows the max diff")
    p.add_argument("--i3d-modes", nargs="*", default=None, help="only these I3D mode names (default: all)")
    p.add_argument("--inception-batch", type=int, default=256)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--dim", type=int, default=2048, help="feature dimension of the Fréchet timing")
    p.add_argument("--budget-s", type=float, default=300, help="skip torch.compile modes after this many seconds")
    p.add_argument("--skip", nargs="*", default=[], choices=["i3d", "inception", "frechet"])
    p.add_argument("--out", default=None)
    p.add_argument("--smoke", action="store_true", help="allow a CPU run (use tiny sizes)")
    args = p.parse_args()
    p_cpu = not torch.cuda.is_available()
    if p_cpu and not args.smoke:
        sys.exit("bench_metrics needs a CUDA GPU (or --smoke for a tiny CPU run of the code paths)")
    device = torch.device("cpu" if p_cpu else "cuda")
    global DEV
    DEV = device.type
    results = dict(device="cpu" if p_cpu else torch.cuda.get_device_name(), torch=torch.__version__, python=platform.python_version(),
                   threads=torch.get_num_threads(), args=vars(args), date=time.strftime("%Y-%m-%d"))
    if "frechet" not in args.skip:
        bench_frechet(args, device, results)
    if "i3d" not in args.skip:
        bench_i3d(args, device, results)
    if "inception" not in args.skip:
        bench_inception(args, device, results)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
