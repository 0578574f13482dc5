"""The ablations table and Fig. 7-style chart on the shapes benchmark, from the library alone.

What ``magicvideo train-ablations`` computes through Prefect, Ray and MLflow, for a machine that has
none of them (the device tool's GPU): for each ablation variant's pipeline under a trained chain
(``magicvideo train shapes OUT`` + ``magicvideo train ablation OUT <variant>``, or
``scripts/gpu_train_shapes.sh``), generate one clip per shapes test prompt (each clip's seed from
the run seed and the prompt's index, so it does not depend on the batch), then

- FVD with the committed shapes classifier's features (``shapes_i3d``) against the test clips, with
  a 95% bootstrap interval,
- FID with the shapes CLIP image tower (``clip_image``) over every frame,
- attribute accuracy (shape, colour, background, motion, speed) by the same classifier,
- temporal consistency against the test clips (``evaluation.temporal``): the change between
  consecutive frames (pixels, and the CLIP image embedding) as a ratio to the real clips', and the
  stability of the classifier's per-frame shape / colour / background over each clip.

    python benchmarks/ablations_shapes.py OUT [--variants ...] [--pipeline NAME=DIR ...] [--limit 256]
        [--steps 25] [--json F] [--plot F] [--save-clips DIR]

``--replicate K`` scores the variants' key-frame models retrained at training seed K on the same chain
(``magicvideo train ablation OUT VARIANT --replicate K``), with the same sample seeds as seed 0's: the
rows of several seeds make the multi-seed table (``benchmarks/ablation_seeds.py``).

``--pipeline NAME=DIR`` scores any other saved pipeline beside the variants (e.g. the committed
``checkpoints/shapes/pipeline``, to compare a retrained chain with it); ``NAME=DIR:steps=4:guidance=1``
samples that one with its own steps and guidance instead of ``--steps`` / ``--guidance`` (a distilled
student beside its teacher: ``--variants "" --pipeline teacher25=P --pipeline teacher50=P:steps=50
--pipeline student4=S:steps=4:guidance=1``); ``:quantize=int8_weight_only`` (or ``int8_dynamic``) runs its
U-Net quantized (:mod:`magicvideo.quantize`), the FVD change of quantization as a paired difference
(``--pipeline fp=P --pipeline int8=P:quantize=int8_weight_only --baseline fp``); ``:noise_prior=A`` samples
its key frames under PYoCo's mixed noise prior with that alpha (:mod:`magicvideo.noise_prior`; default
``--noise-prior``, else the model's own). ``--save-clips DIR`` writes
every generated clip into ``DIR/<name>.npz`` (uint8 ``clips`` [N, 16, H, W, 3] at 8 fps, ``prompts``), to be
scored later by other extractors (the Kinetics-400 I3D on a CPU: ``benchmarks/ablations_kinetics.py``).

The classifier and CLIP come from ``OUT/classifier`` and ``OUT/clip`` (the chain's own) unless
``--classifier`` / ``--clip`` name other folders (the committed evaluators, to compare chains).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the chain's folder (data/, pipeline/, classifier/, clip/, ablations/)")
    ap.add_argument("--variants", default="full,no_adaptor,bidirectional,no_temporal,no_pretraining")
    ap.add_argument("--pipeline", action="append", default=[], metavar="NAME=DIR[:steps=N][:guidance=G][:quantize=MODE][:noise_prior=A]",
                    help="also score this saved pipeline under NAME, optionally with its own steps / guidance (repeatable)")
    ap.add_argument("--classifier", help="the shapes classifier folder (default: OUT/classifier)")
    ap.add_argument("--clip", help="the CLIP folder for FID and frame change (default: OUT/clip)")
    ap.add_argument("--save-clips", help="write the generated clips here, DIR/<name>.npz (uint8, lossless)")
    ap.add_argument("--save-limit", type=int, help="save only the first N clips of each run")
    ap.add_argument("--features", help="write every run's FVD features and per-clip scores here (.npz)")
    ap.add_argument("--guidance-rescale", type=float, default=0.0, help="CFG rescale phi (Lin et al. 2023)")
    ap.add_argument("--noise-prior", type=float, help="sample the key frames with this mixed noise prior alpha "
                    "(magicvideo.noise_prior; default: each model's own)")
    ap.add_argument("--limit", type=int, default=256, help="test prompts (default: all 256)")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps")
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="the sample seeds' base (and the bootstrap's)")
    ap.add_argument("--replicate", type=int, metavar="SEED",
                    help="score the variants retrained at SEED (train ablation --replicate SEED: "
                         "OUT/ablations/seed<SEED>/<variant>, full included); rows carry seed SEED. The sample "
                         "seeds stay --seed's, so every training seed is scored on the same prompts and noise")
    ap.add_argument("--baseline", default="full", help="the run the others are paired against (a variant or --pipeline NAME)")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--plot", help="write the Fig. 7-style chart here (PNG)")
    args = ap.parse_args()

    from evaluation.attributes import attribute_accuracy
    from evaluation.extractors import build_extractor
    from evaluation.clipsim import CLIPEncoder
    from evaluation.metrics import compute_fid, compute_fvd, extract_stats
    from evaluation.paired import paired_frechet_difference, paired_mean_difference
    from evaluation.protocols import DEFAULT_PROTOCOL, for_protocol, get_protocol
    from evaluation.temporal import pixel_change
    from evaluation.temporal import temporal_consistency
    from magicvideo.data import load_benchmark
    from magicvideo.pipeline import MagicVideoPipeline
    from magicvideo.training.ablations import LABELS, variant_pipeline

    out = Path(args.out)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    bench = load_benchmark("shapes", root=out / "data")
    records = bench.manifest()[: args.limit]
    real = np.stack([c.frames for c in bench.reference_clips()])
    fvd_x = build_extractor("shapes_i3d", args.classifier or out / "classifier", device=dev)
    fid_x = build_extractor("clip_image", args.clip or out / "clip", device=dev)
    classes = fvd_x.heads
    clip_enc = CLIPEncoder(args.clip or out / "clip", device=dev)
    real_tc = real[: args.limit]
    fvd_protocol = get_protocol(DEFAULT_PROTOCOL[fvd_x.name])
    fvd_features = for_protocol(fvd_x, fvd_protocol)

    def features(videos):
        return extract_stats(videos, fvd_features, keep_features=True, num_frames=fvd_protocol.num_frames).features()

    # the reference's statistics once for every run (compute_fvd / compute_fid would re-extract them per run)
    real_stats = extract_stats(real, fvd_features, keep_features=True, num_frames=fvd_protocol.num_frames)
    real_feats = real_stats.features()
    fid_protocol = get_protocol(DEFAULT_PROTOCOL[fid_x.name])
    real_fid_stats = extract_stats(real, for_protocol(fid_x, fid_protocol), batch_size=4,
                                   num_frames=fid_protocol.num_frames)  # fmt: skip
    per_run = {}  # variant -> FVD features and per-clip scores, for the paired differences against full
    print(f"{len(records)} prompts, {len(real)} reference clips, {dev}, {args.steps} DDIM steps, CFG {args.guidance}")
    rows = []
    default = {"steps": args.steps, "guidance": args.guidance}
    runs = [(LABELS[v.strip()], v.strip(), variant_pipeline(out, v.strip(), args.replicate), default)
            for v in args.variants.split(",") if v.strip()]
    for spec in args.pipeline:
        name, _, rest = spec.partition("=")
        path, *opts = rest.split(":")
        kinds = {"steps": int, "guidance": float, "quantize": str, "noise_prior": float}
        usage = f"--pipeline takes NAME=DIR[:steps=N][:guidance=G][:quantize=MODE][:noise_prior=A], got {spec!r}"
        try:
            sampler = {**default, **{k: kinds[k](v) for k, _, v in (o.partition("=") for o in opts)}}
        except (KeyError, ValueError):
            ap.error(usage)
        if not path or not name or not set(default) <= set(sampler) <= set(kinds):
            ap.error(usage)
        runs.append((name, name, Path(path), sampler))
    for label, variant, folder, sampler in runs:
        if not (folder / "model_index.json").is_file():
            print(f"{variant}: no pipeline at {folder}; skipped")
            continue
        pipe = MagicVideoPipeline.from_pretrained(folder).to(dev)
        pipe.set_progress_bar_config(disable=True)
        if sampler.get("quantize"):  # the U-Net's linear layers through torchao, as the eval flow's sampler.quantize
            from magicvideo.quantize import quantize_pipeline

            quantize_pipeline(pipe, sampler["quantize"])
        alpha = pipe.noise_prior(sampler.get("noise_prior", args.noise_prior))
        t0 = time.perf_counter()
        clips = []
        for i in range(0, len(records), args.batch_size):
            batch = records[i : i + args.batch_size]
            seeds = [args.seed * 1_000_003 + i + j for j in range(len(batch))]
            clips.append(pipe([r.prompt for r in batch], num_inference_steps=sampler["steps"], guidance_scale=sampler["guidance"],
                              guidance_rescale=args.guidance_rescale, noise_prior=alpha,
                              seed=seeds).frames)  # fmt: skip
        fake = np.concatenate(clips)
        gen_s = time.perf_counter() - t0
        fvd = compute_fvd(fake, extractor=fvd_x, real_stats=real_stats, bootstrap=args.bootstrap, seed=args.seed)
        fid = compute_fid(fake, extractor=fid_x, real_stats=real_fid_stats)
        acc = attribute_accuracy(fvd_x.predict(fake), [r.attributes for r in records], classes)
        tc = temporal_consistency(fake, real_tc, embed=clip_enc.image_embeddings, predict=fvd_x.predict)
        lo, hi = (fvd.bootstrap.low, fvd.bootstrap.high) if fvd.bootstrap is not None else (float("nan"),) * 2
        row = {"variant": label, "fvd": fvd.value, "fvd_ci_low": lo, "fvd_ci_high": hi, "fid": fid.value,
               **{k: v for k, v in acc.metrics().items() if k.startswith("attr_acc/")}, **tc.metrics(),
               "generation_s": gen_s, "clips": len(fake), "key": variant,
               "seed": args.seed if args.replicate is None else args.replicate, "sample_seed": args.seed,
               "sampler": {**sampler, "guidance_rescale": args.guidance_rescale,
                           "noise_prior": alpha}}  # fmt: skip
        per_run[variant] = {"fvd_features": features(fake),
                            "attr_correct": np.array([np.mean(list(c.values())) for c in acc.per_sample]),
                            "pixel_change": pixel_change(fake)}  # fmt: skip
        if args.save_clips:  # npz, not mp4: lossless, and no PyAV needed on a GPU machine
            Path(args.save_clips).mkdir(parents=True, exist_ok=True)
            np.savez_compressed(Path(args.save_clips) / f"{variant}.npz", clips=fake[: args.save_limit],
                                prompts=np.array([r.prompt for r in records][: args.save_limit]))  # fmt: skip
        rows.append(row)
        print(f"{label:30s} [{sampler['steps']} steps, CFG {sampler['guidance']:g}{', ' + sampler['quantize'] if sampler.get('quantize') else ''}{f', noise prior {alpha:g}' if alpha else ''}] FVD {fvd.value:8.2f} [{lo:.2f}, {hi:.2f}]  FID {fid.value:7.2f}  "
              f"attr acc mean {acc.mean:.3f} " + " ".join(f"{k} {v:.2f}" for k, v in acc.accuracy.items()) +
              f"  change x{tc.pixel_change_ratio:.2f} px, x{tc.frame_change_ratio:.2f} CLIP; stability "
              + " ".join(f"{k} {v:.2f}" for k, v in (tc.stability or {}).items()) + f"  ({gen_s:.1f} s)", flush=True)  # fmt: skip
        del pipe
    if args.baseline in per_run:  # paired differences against the baseline (full): same prompts, same sample seeds
        base = per_run[args.baseline]
        for row in rows:
            v = per_run[row["key"]]
            if row["key"] == args.baseline:
                continue
            d = paired_frechet_difference(v["fvd_features"], base["fvd_features"], ref_features=real_feats,
                                          num_replicates=args.bootstrap, seed=args.seed)  # fmt: skip
            row.update({"paired/fvd_diff": d.diff, "paired/fvd_low": d.low, "paired/fvd_high": d.high,
                        "paired/fvd_p": d.p_value})  # fmt: skip
            for name, key in (("attr_mean", "attr_correct"), ("pixel_change", "pixel_change")):
                m = paired_mean_difference(v[key], base[key], seed=args.seed)
                row.update({f"paired/{name}_diff": m.diff, f"paired/{name}_low": m.low, f"paired/{name}_high": m.high,
                            f"paired/{name}_p": m.p_value})  # fmt: skip
            print(f"{row['variant']:30s} - {args.baseline}: FVD {d.diff:+.2f} [{d.low:+.2f}, {d.high:+.2f}] p={d.p_value:.3f}; "
                  f"attr mean {row['paired/attr_mean_diff']:+.3f} [{row['paired/attr_mean_low']:+.3f}, "
                  f"{row['paired/attr_mean_high']:+.3f}] p={row['paired/attr_mean_p']:.3f}", flush=True)  # fmt: skip
    if args.features:
        np.savez_compressed(args.features, real_fvd_features=real_feats,
                            **{f"{k}/{n}": a for k, d in per_run.items() for n, a in d.items()})  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.plot and rows:
        import matplotlib

        matplotlib.use("Agg")
        from flows.plots import ablation_bars  # plotting only; no Prefect or Ray needed

        fig = ablation_bars(rows, ["fvd", "attr_acc/mean"], "Ablations on shapes")
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
