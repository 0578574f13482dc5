"""The x4 super-resolution stage (paper 3.4, issue 14): speed at the paper's scale, quality on shapes.

``speed``: a random-weight :class:`~magicvideo.models.UpsamplerUNet` of a named size upsamples one
16-frame clip 256 -> 1024 (``--side 256``) with N DDIM steps, frame batches of ``--frame-batch``
(every value given is timed; the memory bound: spatial tiling is not implemented, a smaller frame
batch is the lever), next to the key-frame stage of a random ``--keyframe-config`` pipeline
(``sd15``: 16 frames at 256x256, 50 DDIM steps with CFG, as ``bench_interpolation.py`` times it;
or ``--keyframe-seconds`` to reuse a measured number). Seconds per clip (median of
``--repeats``), peak GPU memory, and the ratio SR / key frames (the issue's goal: at most 2). The
paper gives no SR architecture; the sizes (:data:`PRESETS`) are stand-ins: ``paper`` a 203 M
parameter pixel U-Net (128-1024 channels, SR3 / Imagen-like widths), ``efficient`` 51 M (Imagen's
"Efficient U-Net" idea: the capacity at low resolution), ``shapes`` the committed recipe's.

``quality``: the shapes test clips (the benchmark spec of ``configs/benchmarks/shapes.yaml``, rendered
without the codec) as 16 frames at 8 fps, at 64 px (the model's input) and 256 px (the
references: the same clips rendered at 4x). Inputs: ``real`` (the 64 px frames) and ``generated``
(clips of the committed key-frame pipeline ``--pipeline`` for the same clips' captions). Methods:
``bicubic`` and each ``--checkpoint NAME=DIR`` (at each ``--noise-levels`` value; default the
model's own default). Metrics, all at 256 px:

  * PSNR dB / SSIM against the 256 px references (real inputs only: generated clips have none);
    torchmetrics' functions, per frame, averaged (SSIM: gaussian window 11, sigma 1.5);
  * FID@256: frame FID (``fid_frames`` protocol: the TF FID Inception, every frame one sample)
    against the 256 px reference frames; with few clips it is biased upward, compare rows only;
  * input PSNR: PSNR of the output shrunk back x4 (antialiased bicubic, the training degradation)
    against its own 64 px input, i.e. how faithful the output is to what it upsampled.

Usage (repo root):
    python benchmarks/bench_upsampler.py speed --preset paper --steps 20 --dtype bf16 --frame-batch 16,4
    python benchmarks/bench_upsampler.py speed --preset paper --patch-size 4 --steps 20 --keyframe-seconds S
    python benchmarks/bench_upsampler.py quality --checkpoint aug=OUT/upsampler@0,20,60 --checkpoint noaug=OUT2/upsampler \\
        --json sr.json --plot sr.png --mlflow shapes-upsampler     # NAME=DIR@levels: that model's levels
    python benchmarks/bench_upsampler.py report sr.json --plot sr.png --mlflow shapes-upsampler   # chart / MLflow again
    python benchmarks/bench_upsampler.py speed --preset tiny --device cpu --steps 1 --frames 2 --side 32 \\
        --keyframe-config tiny --keyframe-steps 1 --repeats 1           # CPU smoke
    python benchmarks/bench_upsampler.py quality --checkpoint sr=DIR --clips 2 --steps 1 --gen-steps 1 \\
        --device cpu --no-fid                                            # CPU smoke
Prints a table; ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_interpolation import timed  # noqa: E402 - the same median-of-repeats timer, CUDA synchronised

#: SR model sizes for the speed run (UpsamplerUNet keys); every level convolutional, no attention
PRESETS = {
    "paper": {"block_out_channels": (128, 256, 512, 1024), "layers_per_block": 2, "norm_num_groups": 32},
    "efficient": {"block_out_channels": (64, 128, 256, 512), "layers_per_block": 2, "norm_num_groups": 32},
    "shapes": {"block_out_channels": (32, 48, 64, 96), "layers_per_block": 1, "norm_num_groups": 16},
    "tiny": {"block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4},
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    Console().print(t)


# ---- speed ------------------------------------------------------------------------------------


def speed(args) -> dict:
    from magicvideo.models import UpsamplerUNet
    from magicvideo.upsampling import upsample_clips

    device, dtype = args.device, DTYPES[args.dtype] if not args.device.startswith("cpu") else torch.float32
    torch.manual_seed(0)
    model = UpsamplerUNet(**PRESETS[args.preset], patch_size=args.patch_size).to(device, dtype).eval()
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    clip = torch.rand(1, 3, args.frames, args.side, args.side, device=device) * 2 - 1
    res = {"preset": args.preset, "patch_size": args.patch_size, "parameters": n_params, "device": device, "dtype": str(dtype).split(".")[-1],
           "steps": args.steps, "frames": args.frames, "side_in": args.side, "side_out": 4 * args.side, "runs": []}  # fmt: skip
    if device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name()
    for fb in args.frame_batch:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        run = lambda: upsample_clips(model, clip, [0], num_inference_steps=args.steps, frame_batch=fb)  # noqa: E731
        try:
            seconds = timed(run, device, args.repeats, args.warmup)
        except torch.OutOfMemoryError:
            res["runs"].append({"frame_batch": fb, "error": "out of memory"})
            continue
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
        res["runs"].append({"frame_batch": fb, "seconds_per_clip": seconds, "peak_memory_gib": peak})
    del model
    if args.keyframe_seconds is not None:
        res["keyframes_seconds_per_clip"], res["keyframes_source"] = args.keyframe_seconds, "given (--keyframe-seconds)"
    else:
        res["keyframes_seconds_per_clip"] = keyframe_seconds(args, device, dtype)
        res["keyframes_source"] = f"{args.keyframe_config}, {args.keyframe_steps} DDIM steps, CFG {args.guidance}"
    kf = res["keyframes_seconds_per_clip"]
    rows = []
    for r in res["runs"]:
        if "error" in r:
            rows.append([str(r["frame_batch"]), r["error"], "-", "-"])
            continue
        r["ratio_to_keyframes"] = r["seconds_per_clip"] / kf
        mem = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
        rows.append([str(r["frame_batch"]), f"{r['seconds_per_clip']:.2f}", mem, f"{r['ratio_to_keyframes']:.2f}"])
    table(f"SR '{args.preset}' patch {args.patch_size} ({n_params / 1e6:.2f} M parameters): {args.frames} frames {args.side} -> {4 * args.side}, "
          f"{args.steps} DDIM steps, {res['dtype']}, {device}",
          ["frame batch", "s per clip", "peak GiB", "x key-frame stage"], rows)  # fmt: skip
    print(f"key-frame stage: {kf:.2f} s per clip ({res['keyframes_source']})")
    return res


def keyframe_seconds(args, device: str, dtype: torch.dtype) -> float:
    """Seconds per clip of the key-frame stage of a random pipeline of `--keyframe-config`."""
    from magicvideo.build import build_pipeline, load_model_config

    cfg = load_model_config(args.keyframe_config)
    pipe = build_pipeline(cfg, weights="random", seed=0).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    run = lambda: pipe(["a red circle moving left"], seed=[0], num_inference_steps=args.keyframe_steps,  # noqa: E731
                       guidance_scale=args.guidance, output_type="latent")  # fmt: skip
    with torch.no_grad():
        seconds = timed(run, device, args.repeats, args.warmup)
    del pipe
    return seconds


# ---- quality ----------------------------------------------------------------------------------


def test_clips(n: int, frames: int = 16, fps: float = 8.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first `n` shapes test clips (the benchmark config's spec), `frames` frames at `fps`, at
    64 and 256 px: uint8 ``(n, frames, 64, 64, 3)``, ``(n, frames, 256, 256, 3)``, and captions."""
    from magicvideo.data.benchmarks import load_benchmark_config
    from magicvideo.data.shapes import render, sample_clip

    spec = load_benchmark_config("shapes").generate
    low, high, captions = [], [], []
    for i in range(n):
        clip = sample_clip(spec, "test", i)
        idx = np.minimum(np.round(np.arange(frames) * clip.fps / fps).astype(int), clip.num_frames - 1)
        low.append(render(clip, spec.size)[idx])
        high.append(render(clip, 4 * spec.size)[idx])
        captions.append(clip.captions()[0])
    return np.stack(low), np.stack(high), captions


def to_float(clips: np.ndarray, device) -> torch.Tensor:
    """uint8 ``(B, F, H, W, 3)`` -> float ``(B, 3, F, H, W)`` in [-1, 1]."""
    return torch.from_numpy(clips).to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(B, 3, F, H, W)`` in [-1, 1] -> uint8 ``(B, F, H, W, 3)``."""
    return ((frames.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()


def frame_scores(out: np.ndarray, ref: np.ndarray | None, inp: np.ndarray, device: str = "cpu") -> dict:
    """PSNR / SSIM of `out` against `ref` (when given) and the input PSNR, per frame, averaged.

    float32 on `device`, 16 frames at a time: torchmetrics' SSIM in float64 held ~330 MB per 256 px
    frame and took most of a quality run's time on the host (the 64-clip H200 run of 2026-12-02 spent
    15 minutes there without a row); float32 changes the scores by < 1e-5 (uint8 inputs)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    from magicvideo.models.upsampler import downsample

    flat = lambda a: torch.from_numpy(a).flatten(0, 1).permute(0, 3, 1, 2)  # noqa: E731  (uint8, host)
    o_all, i_all = flat(out), flat(inp)
    r_all = flat(ref) if ref is not None else None
    in_psnr, psnr, ssim = [], [], []
    for k in range(0, len(o_all), 16):
        o = o_all[k : k + 16].to(device).float()
        i = i_all[k : k + 16].to(device).float()
        in_psnr.append(peak_signal_noise_ratio(downsample(o, 4).clamp(0, 255), i, data_range=255.0, reduction="none",
                                               dim=(1, 2, 3)).cpu())  # fmt: skip
        if r_all is not None:
            r = r_all[k : k + 16].to(device).float()
            psnr.append(peak_signal_noise_ratio(o, r, data_range=255.0, reduction="none", dim=(1, 2, 3)).cpu())
            ssim.append(structural_similarity_index_measure(o, r, data_range=255.0, reduction="none").cpu())
    res = {"input_psnr": float(torch.cat(in_psnr).mean())}
    if r_all is not None:
        res["psnr"], res["ssim"] = float(torch.cat(psnr).mean()), float(torch.cat(ssim).mean())
    return res


def parse_checkpoints(items: list[str]) -> tuple[dict[str, Path], dict[str, list[int]]]:
    """``NAME=DIR[@L1,L2,...]`` items: the folders by name, and the augmentation levels given per name."""
    out, levels = {}, {}
    for item in items:
        item, at, given = item.partition("@")
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).parent.name or "sr", item
        out[name] = Path(path)
        if at:
            try:
                levels[name] = [int(v) for v in given.split(",")]
            except ValueError:
                raise SystemExit(f"--checkpoint {name}: levels after @ must be integers, got {given!r}") from None
    return out, levels


def quality(args) -> dict:
    from magicvideo.upsampling import bicubic_clips, default_upsampler, load_upsampler, upsample_clips

    device = args.device
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    checkpoints, own_levels = parse_checkpoints(args.checkpoint or [f"sr={default_upsampler()}"])
    models = {name: load_upsampler(path).to(device) for name, path in checkpoints.items()}  # fails fast, before work
    low, high, captions = test_clips(args.clips)
    seeds = [args.seed + i for i in range(len(low))]
    inputs = {"real": low}
    if not args.no_generated:
        from magicvideo.pipeline import MagicVideoPipeline

        pipe = MagicVideoPipeline.from_pretrained(str(args.pipeline)).to(device)
        pipe.set_progress_bar_config(disable=True)
        gen = [pipe(captions[k : k + args.batch], seed=seeds[k : k + args.batch], num_inference_steps=args.gen_steps,
                    fps=8.0).frames for k in range(0, len(captions), args.batch)]  # fmt: skip
        inputs["generated"] = np.concatenate(gen)
        del pipe

    extractor = ref_stats = None
    if not args.no_fid:
        from evaluation import build_extractor, extract_stats, for_protocol

        extractor = for_protocol(build_extractor("inception_v3_fid", device=device), "fid_frames")
        ref_stats = extract_stats(high, extractor, batch_size=8)

    methods: list[tuple[str, str, int | None]] = [("bicubic", "bicubic", None)]
    for name, model in models.items():
        for level in own_levels.get(name) or args.noise_levels or [None]:
            methods.append((name if level is None else f"{name} @{level}", name, level))
    results = []
    for source, clips in inputs.items():
        for label, method, level in methods:
            t0, outs = time.perf_counter(), []
            for k in range(0, len(clips), args.batch):
                x = to_float(clips[k : k + args.batch], device)
                if method == "bicubic":
                    y = bicubic_clips(x)
                else:
                    y = upsample_clips(models[method], x, seeds[k : k + args.batch], noise_level=level,
                                       num_inference_steps=args.steps, frame_batch=args.frame_batch)  # fmt: skip
                outs.append(to_uint8(y))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - t0) / len(clips)
            out = np.concatenate(outs)
            row = {"source": source, "method": label, "seconds_per_clip": seconds,
                   "noise_level": level if level is not None or method == "bicubic"
                   else models[method].config.default_noise_level,
                   **frame_scores(out, high if source == "real" else None, clips, device)}  # fmt: skip
            if extractor is not None:
                from evaluation import compute_fid

                row["fid256"] = compute_fid(out, real_stats=ref_stats, extractor=extractor, protocol="fid_frames").value
            results.append(row)
            print(f"{source:9s} {label:14s} PSNR {row.get('psnr', float('nan')):6.2f}  SSIM {row.get('ssim', float('nan')):.4f}  "
                  f"FID@256 {row.get('fid256', float('nan')):7.2f}  {seconds:.2f} s/clip", flush=True)  # progress: a row at a time

    fmt = lambda r, k, f: "-" if k not in r else format(r[k], f)  # noqa: E731
    table(f"x4 SR on {len(low)} shapes test clips x 16 frames, 64 -> 256 px ({args.steps} DDIM steps; FID and PSNR "
          "against the clips rendered at 256)",
          ["input", "method", "level", "PSNR dB", "SSIM", "FID@256", "input PSNR", "s per clip"],
          [[r["source"], r["method"], "-" if r["noise_level"] is None else str(r["noise_level"]), fmt(r, "psnr", ".2f"),
            fmt(r, "ssim", ".4f"), fmt(r, "fid256", ".2f"), fmt(r, "input_psnr", ".2f"),
            f"{r['seconds_per_clip']:.3f}"] for r in results])  # fmt: skip
    return {"clips": len(low), "steps": args.steps, "gen_steps": args.gen_steps, "pipeline": str(args.pipeline),
            "checkpoints": {k: str(v) for k, v in checkpoints.items()}, "device": device, "results": results}  # fmt: skip


def quality_figure(result: dict):
    """The ablation chart: FID@256 per method on real and on generated 64 px inputs (bars), and
    PSNR against the references on real inputs (a second panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["results"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sources = list(dict.fromkeys(r["source"] for r in rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(sources)
    for i, src in enumerate(sources):
        vals = [next((r.get("fid256", np.nan) for r in rows if r["source"] == src and r["method"] == m), np.nan)
                for m in methods]  # fmt: skip
        a.bar(np.arange(len(methods)) + (i - (len(sources) - 1) / 2) * width, vals, width, label=f"{src} 64 px input")
    a.set_xticks(range(len(methods)), methods, rotation=20)
    a.set_ylabel("frame FID@256 (lower is better)")
    a.legend()
    real = [r for r in rows if r["source"] == "real" and "psnr" in r]
    b.bar(range(len(real)), [r["psnr"] for r in real], color="tab:gray")
    b.set_xticks(range(len(real)), [r["method"] for r in real], rotation=20)
    b.set_ylabel("PSNR dB vs 256 px references (real inputs)")
    lo = min((r["psnr"] for r in real), default=0)
    b.set_ylim(max(0, lo - 3), None)
    fig.suptitle(f"x4 SR on {result['clips']} shapes test clips, {result['steps']} DDIM steps: "
                 "noise-conditioning augmentation ablation")  # fmt: skip
    fig.tight_layout()
    return fig


def log_quality_to_mlflow(result: dict, experiment: str, uri: str | None) -> str:
    """One MLflow run (``experiment``): the settings as params, each row's numbers as metrics named
    ``<input>/<method>[_level<L>]/<metric>``, the JSON and the chart as artifacts. Returns the run id."""
    from flows import tracking

    c = tracking.client(tracking.tracking_uri(uri))
    run = c.create_run(tracking.experiment_id(c, experiment), run_name=f"sr-quality-{result['clips']}clips")
    rid = run.info.run_id
    tracking.log_params(c, rid, {"clips": result["clips"], "steps": result["steps"], "gen_steps": result["gen_steps"],
                                 "pipeline": result["pipeline"], "device": result["device"],
                                 **{f"checkpoint.{k}": v for k, v in result["checkpoints"].items()}})  # fmt: skip
    metrics = {}
    for r in result["results"]:
        key = f"{r['source']}/{r['method'].replace(' @', '_level')}"
        for m in ("psnr", "ssim", "fid256", "input_psnr", "seconds_per_clip"):
            if m in r:
                metrics[f"{key}/{m}"] = r[m]
    tracking.log_metrics(c, rid, metrics, step=0)
    tracking.log_json(c, rid, result, "sr_quality.json")
    tracking.log_figure(c, rid, quality_figure(result), "sr_ablation.png")
    c.set_terminated(rid)
    return rid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("speed", help="paper-scale speed with random weights, against the key-frame stage")
    s.add_argument("--preset", choices=list(PRESETS), default="paper")
    s.add_argument("--patch-size", type=int, default=1,
                   help="UpsamplerUNet patch_size: the U-Net runs at 1/p of the output side (4: the input's grid)")
    s.add_argument("--steps", type=int, default=20, help="DDIM steps of the SR stage")
    s.add_argument("--frames", type=int, default=16)
    s.add_argument("--side", type=int, default=256, help="input side (output: 4x)")
    s.add_argument("--frame-batch", type=lambda t: [int(v) for v in t.split(",")], default=[16],
                   help="frames per U-Net forward; a comma-separated list times each")
    s.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    s.add_argument("--channels-last", action="store_true")
    s.add_argument("--keyframe-config", default="sd15", help="model config of the key-frame stage timed beside it")
    s.add_argument("--keyframe-steps", type=int, default=50)
    s.add_argument("--guidance", type=float, default=7.5, help="key-frame CFG scale")
    s.add_argument("--keyframe-seconds", type=float, help="skip timing the key-frame stage: use this s per clip")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--warmup", type=int, default=1)
    q = sub.add_parser("quality", help="PSNR / SSIM / FID@256 on the shapes benchmark against bicubic")
    q.add_argument("--checkpoint", action="append", metavar="NAME=DIR[@L1,L2]",
                   help="an UpsamplerUNet folder, optionally with its own augmentation levels to evaluate (repeatable; "
                        "default: the committed checkpoints/shapes/pipeline/upsampler)")
    q.add_argument("--pipeline", type=Path, default=Path(__file__).resolve().parents[1] / "checkpoints/shapes/pipeline",
                   help="the key-frame pipeline whose clips are the 'generated' inputs")
    q.add_argument("--clips", type=int, default=256)
    q.add_argument("--steps", type=int, default=25, help="SR DDIM steps")
    q.add_argument("--gen-steps", type=int, default=25, help="key-frame DDIM steps of the generated inputs")
    q.add_argument("--noise-levels", type=lambda t: [int(v) for v in t.split(",")],
                   help="augmentation levels to evaluate each checkpoint at, e.g. 0,20,50 (default: its own default)")
    q.add_argument("--batch", type=int, default=16, help="clips per call")
    q.add_argument("--frame-batch", type=int, default=64, help="frames per SR forward")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--no-fid", action="store_true", help="skip FID (no Inception weights needed)")
    q.add_argument("--no-generated", action="store_true", help="real inputs only (no key-frame pipeline needed)")
    r = sub.add_parser("report", help="the chart and MLflow run of a quality --json file, without recomputing")
    r.add_argument("result", type=Path, help="a quality run's --json file")
    for a in (s, q):
        a.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        a.add_argument("--json", help="write the numbers here")
    for a in (q, r):
        a.add_argument("--plot", help="write the ablation chart (PNG) here")
        a.add_argument("--mlflow", metavar="EXPERIMENT", help="log the table and chart as a run of this MLflow experiment")
        a.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    args = p.parse_args()
    if args.mode == "report":
        res = json.loads(args.result.read_text())
    else:
        res = speed(args) if args.mode == "speed" else quality(args)
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    if getattr(args, "plot", None):
        quality_figure(res).savefig(args.plot, dpi=100, bbox_inches="tight")
        print(f"chart: {args.plot}")
    if getattr(args, "mlflow", None):
        run_id = log_quality_to_mlflow(res, args.mlflow, args.tracking_uri)
        print(f"MLflow run {run_id} in experiment {args.mlflow!r}")


if __name__ == "__main__":
    main()
