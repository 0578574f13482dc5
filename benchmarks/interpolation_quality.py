"""Frame-interpolation quality on real shapes clips (issue 13, "Measures").

Renders shapes test clips (no codec: the generator's own frames) of 61 consecutive frames, keeps
every 4th frame (16 key frames), fills the 45 dropped frames back in, and scores them against
the originals:

  * model         the pipeline's interpolation stage (``stages=("interpolate",)``) on the key
                  frames' VAE latents, FPS condition = the key frames' rate x 4, decoded with the
                  pipeline's VAE;
  * pixel blend   linear blending of the two neighbouring key frames in pixel space;
  * pixel blend, decoded keys   the same on the key frames' VAE reconstructions: what a cascade, whose
                  key frames exist only as latents, could blend in pixels;
  * latent blend  linear blending of their VAE latents, decoded;
  * vae recon     the dropped frames encoded and decoded (the VAE's own ceiling on the model).

Metrics over the dropped frames only: PSNR (dB, per frame, averaged) and SSIM (gaussian
window 11, sigma 1.5, on [0, 255], mean over channels) against the real frames, and PSNR against
the VAE's reconstruction of the real frames ("PSNR vs recon": what the interpolation itself
gets right, without the VAE's loss, which bounds the model and the latent blend but not the
pixel blend: on 64 px shapes clips at 20-24 fps pixel blending reaches ~46-48 dB, above the
committed VAE's ~36.5 dB reconstruction); with the shapes classifier
(``--fvd``), a Fréchet distance of the 61-frame clips against the real ones, cut into four
16-frame windows (0-15, 15-30, 30-45, 45-60) because the classifier reads 16 frames; with few
clips it is biased upward, use it to compare methods, not as an absolute number.

With ``--generated`` the key frames are the pipeline's own (its key-frame stage on each real clip's
caption, at the key frames' rate), as in the cascade: there is no truth for PSNR, so it reports the
FVD-61 of the model at each of ``--steps`` (a comma-separated list, e.g. ``25,1``) and of latent
blending, against the real 61-frame clips.

Usage (repo root):
    python benchmarks/interpolation_quality.py --pipeline checkpoints/shapes/pipeline --clips 64 --steps 25 --fvd
    python benchmarks/interpolation_quality.py --pipeline OUT/pipeline --clips 4 --steps 2 --device cpu   # smoke
Prints a table; ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F


def _spec(size: int, fps: float, seed: int, frames: int):
    """The shapes spec whose test clips are :func:`real_clips` (every clip at `fps`, >= `frames` long)."""
    from magicvideo.data.shapes import ShapesSpec

    return ShapesSpec(size=size, seed=seed, fps=[fps], durations=[math.ceil(frames / fps * 100) / 100 + 0.01])


def real_clips(n: int, size: int, fps: float, seed: int, frames: int = 61) -> np.ndarray:
    """`n` shapes test clips of `frames` consecutive frames at `fps`: uint8 ``(n, frames, S, S, 3)``."""
    from magicvideo.data.shapes import render, sample_clip

    spec = _spec(size, fps, seed, frames)
    clips = []
    for i in range(n):
        try:
            clip = sample_clip(spec, "test", i)
        except ValueError:
            raise SystemExit(f"the shapes generator cannot render {frames} frames at {fps:g} fps ({frames / fps:.1f} s: "
                             "the shape would leave the frame); use --fps 20 or more") from None
        video = render(clip, size)
        assert len(video) >= frames, (len(video), frames)
        clips.append(video[:frames])
    return np.stack(clips)


def real_captions(n: int, size: int, fps: float, seed: int, frames: int = 61) -> list[str]:
    """The captions of :func:`real_clips`' clips, in the same order."""
    from magicvideo.data.shapes import sample_clip

    spec = _spec(size, fps, seed, frames)
    return [sample_clip(spec, "test", i).caption for i in range(n)]


def fvd61(clips: np.ndarray, outputs: dict[str, np.ndarray], classifier, device) -> tuple[dict[str, float], dict]:
    """Fréchet distance of each method's 61-frame clips against the real ones, in the classifier's
    16-frame windows 0-15, 15-30, 30-45, 45-60; and the features behind it (``"real"`` and each
    method: ``(windows x clips, d)`` rows, window-major, for :func:`paired_fvd61`)."""
    from evaluation.extractors import ShapesI3DExtractor
    from evaluation.frechet import frechet_distance
    from evaluation.stats import FeatureStats

    extractor = ShapesI3DExtractor(classifier, device=device)

    def features(videos: np.ndarray) -> np.ndarray:
        return np.concatenate([extractor(videos[k : k + 32, a : a + 16]).double().cpu().numpy()
                               for a in range(0, clips.shape[1] - 15, 15) for k in range(0, len(videos), 32)])  # fmt: skip

    def fd(x: np.ndarray, ref: FeatureStats) -> float:
        s = FeatureStats()
        s.update(x)
        return frechet_distance(s.mean(), s.cov(), ref.mean(), ref.cov())

    feats = {"real": features(clips)}
    ref = FeatureStats()
    ref.update(feats["real"])
    out = {}
    for m, videos in outputs.items():
        feats[m] = features(videos)
        out[m] = fd(feats[m], ref)
    return out, feats


def paired_fvd61(feats: dict, pairs: list[tuple[str, str]], clips: int, seed: int = 0) -> dict[str, dict]:
    """FVD-61 of method A minus method B on the same clips, for each ``(A, B)`` in `pairs`: a paired
    bootstrap interval and permutation p-value over clips (a clip's 4 windows resampled and swapped
    together; the real clips resampled too; :func:`evaluation.paired.paired_frechet_difference`, on
    the Fréchet distance of the table). With a few dozen clips single FVD-61 values move
    by ~0.4 between runs of equal models; this says whether a difference is more than that."""
    from evaluation.paired import paired_frechet_difference

    groups = np.tile(np.arange(clips), len(feats["real"]) // clips)  # window-major rows: clip k of every window
    out = {}
    for a, b in pairs:
        r = paired_frechet_difference(feats[a], feats[b], feats["real"], groups=groups, ref_groups=groups,
                                      num_replicates=200, num_permutations=999, seed=seed)  # fmt: skip
        out[f"{a} - {b}"] = {"a": r.value_a, "b": r.value_b, "diff": r.diff, "low": r.low, "high": r.high,
                             "p_value": r.p_value, "clips": r.n}  # fmt: skip
    return out


def print_paired(paired: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="FVD-61 differences, paired over clips (negative: the first is closer to the real clips)")
    for c in ("A - B", "difference", "95% interval", "p (permutation)"):
        table.add_column(c, justify="right")
    for k, r in paired.items():
        table.add_row(k, f"{r['diff']:+.2f}", f"[{r['low']:+.2f}, {r['high']:+.2f}]", f"{r['p_value']:.3f}")
    Console().print(table)


def generated(args, pipe, clips, key_nu, win) -> None:
    """--generated: the cascade's case (module docstring)."""
    from rich.console import Console
    from rich.table import Table

    prompts = real_captions(len(clips), clips.shape[2], args.fps, args.seed, clips.shape[1])
    steps = [int(v) for v in str(args.steps).split(",")]
    outputs: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for start in range(0, len(clips), args.batch):
        seeds = [args.seed + start + k for k in range(len(prompts[start : start + args.batch]))]
        with torch.no_grad():
            z_keys = pipe(prompts[start : start + args.batch], seed=seeds, fps=key_nu,
                          num_inference_steps=args.keyframe_steps, output_type="latent").frames  # fmt: skip
            made = {"latent blend": blend(z_keys, win - 2)}
            for n in steps:
                t0 = time.perf_counter()
                made[f"model, {n} steps"] = pipe(stages="interpolate", keyframe_latents=z_keys, seed=seeds, fps=key_nu,
                                                 interpolation_steps=n, interpolation_guidance_scale=args.guidance,
                                                 output_type="latent").frames  # fmt: skip
                seconds[f"model, {n} steps"] = seconds.get(f"model, {n} steps", 0.0) + time.perf_counter() - t0
            for m, z in made.items():
                got = to_uint8_range(pipe.decode_latents(z))
                outputs.setdefault(m, []).append(got.permute(0, 1, 3, 4, 2).to(torch.uint8).cpu().numpy())
        print(f"{start + len(seeds)} / {len(clips)} clips", flush=True)
    scores, feats = fvd61(clips, {m: np.concatenate(v) for m, v in outputs.items()}, args.classifier, args.device)
    paired = paired_fvd61(feats, [(m, "latent blend") for m in scores if m != "latent blend"], len(clips), args.seed)
    result = {"clips": len(clips), "frames": int(clips.shape[1]), "source_fps": args.fps, "keyframe_fps": key_nu,
              "keyframe_steps": args.keyframe_steps, "key_frames": "generated", "guidance": args.guidance,
              "methods": {m: {"fvd61": v, **({"seconds_per_clip": seconds[m] / len(clips)} if m in seconds else {})}
                          for m, v in scores.items()}, "paired_fvd61": paired}  # fmt: skip
    table = Table(title=f"interpolation of generated key frames, {len(clips)} prompts: FVD-61 against real clips "
                        f"({args.fps:g} fps)")  # fmt: skip
    table.add_column("method")
    table.add_column("FVD-61 (shapes I3D)", justify="right")
    table.add_column("s a clip", justify="right")
    for m, r in result["methods"].items():
        table.add_row(m, f"{r['fvd61']:.2f}", f"{r['seconds_per_clip']:.2f}" if "seconds_per_clip" in r else "")
    Console().print(table)
    print_paired(paired)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR of uint8-range float frames ``(..., 3, H, W)``."""
    mse = ((a - b) ** 2).flatten(-3).mean(-1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM (Wang et al. 2004: gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, L 255),
    frames ``(N, 3, H, W)`` in [0, 255], mean over channels and positions ('valid' windows)."""
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = (g / g.sum()).to(a.device, a.dtype)
    rows, cols = g.view(1, 1, 11, 1).expand(3, 1, 11, 1), g.view(1, 1, 1, 11).expand(3, 1, 1, 11)
    conv = lambda t: F.conv2d(F.conv2d(t, rows, groups=3), cols, groups=3)  # noqa: E731 - the 11x11 gaussian, separated
    mu_a, mu_b = conv(a), conv(b)
    saa, sbb, sab = conv(a * a) - mu_a**2, conv(b * b) - mu_b**2, conv(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.flatten(1).mean(1)


def blend(keys: torch.Tensor, new: int = 3) -> torch.Tensor:
    """Linear blending between adjacent key frames along dim 2: ``(B, C, K, ...)`` -> ``(B, C, K + (K-1) new, ...)``."""
    from magicvideo.models.interpolation import insert_frames, keyframe_pairs, latent_blend

    return insert_frames(keys, latent_blend(keyframe_pairs(keys), new + 2))


def to_uint8_range(frames: torch.Tensor) -> torch.Tensor:
    """``(B, 3, F, H, W)`` in [-1, 1] -> float in [0, 255] after uint8 rounding, ``(B, F, 3, H, W)``."""
    return ((frames.float() + 1) * 127.5).round().clamp(0, 255).transpose(1, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pipeline", default="checkpoints/shapes/pipeline", help="a pipeline folder with interpolation/")
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--fps", type=float, default=24.0,
                   help="rate of the rendered 61-frame clips (key frames: fps / 4); the generator allows >= 20")
    p.add_argument("--steps", default="25", help="interpolation denoising steps (--generated: a comma-separated list)")
    p.add_argument("--generated", action="store_true", help="key frames from the pipeline's key-frame stage (module docstring)")
    p.add_argument("--keyframe-steps", type=int, default=25, help="--generated: key-frame denoising steps")
    p.add_argument("--scheduler", default="ddim")
    p.add_argument("--guidance", type=float, default=1.0, help="interpolation CFG scale (1: off)")
    p.add_argument("--batch", type=int, default=8, help="clips per pipeline call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--fvd", action="store_true", help="also the shapes-classifier Fréchet distance (16-frame windows)")
    p.add_argument("--classifier", default=None, help="shapes classifier folder (default: the committed one)")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()

    from magicvideo.models.interpolation import interpolated_length
    from magicvideo.pipeline import MagicVideoPipeline

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    pipe = MagicVideoPipeline.from_pretrained(args.pipeline).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    pipe.set_scheduler(args.scheduler)
    if pipe.interpolation is None:
        raise SystemExit(f"{args.pipeline} has no interpolation/ component (train it: magicvideo train shapes OUT)")
    size = (pipe.unet.config.sample_size or 32) * pipe.vae_scale_factor
    win = pipe.interpolation.window
    length = interpolated_length(pipe.unet.config.num_frames, win - 2)  # 16 key frames -> 61
    clips = real_clips(args.clips, size, args.fps, args.seed, frames=length)
    key_idx = np.arange(0, clips.shape[1], win - 1)
    dropped = np.setdiff1d(np.arange(clips.shape[1]), key_idx)
    key_nu = args.fps / (win - 1)
    if args.generated:
        generated(args, pipe, clips, key_nu, win)
        return
    args.steps = int(args.steps)

    methods = ("model", "pixel blend", "pixel blend, decoded keys", "latent blend", "vae recon")
    scores = {m: {"psnr": [], "ssim": [], "psnr_vs_recon": []} for m in methods}
    outputs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    seconds = 0.0
    for start in range(0, len(clips), args.batch):
        real = torch.from_numpy(clips[start : start + args.batch]).to(args.device)  # (B, 61, H, W, 3)
        x = real.permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (B, 3, 61, H, W)
        with torch.no_grad():
            z_keys = pipe.encode_frames(x[:, :, key_idx])
            t0 = time.perf_counter()
            z = pipe(stages="interpolate", keyframe_latents=z_keys, seed=[args.seed + start + k for k in range(len(x))],
                     fps=key_nu, interpolation_steps=args.steps, interpolation_guidance_scale=args.guidance,
                     output_type="latent").frames  # fmt: skip
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            made = {
                "model": pipe.decode_latents(z),
                "pixel blend": blend(x[:, :, key_idx], win - 2),
                "pixel blend, decoded keys": blend(pipe.decode_latents(z_keys), win - 2),
                "latent blend": pipe.decode_latents(blend(z_keys, win - 2)),
                "vae recon": pipe.decode_latents(pipe.encode_frames(x)),
            }
        truth = real.permute(0, 1, 4, 2, 3).float()  # (B, 61, 3, H, W) in [0, 255]
        recon = to_uint8_range(made["vae recon"])[:, dropped].flatten(0, 1)
        for m, frames in made.items():
            got = to_uint8_range(frames)
            outputs[m].append(got.permute(0, 1, 3, 4, 2).to(torch.uint8).cpu().numpy())
            a, b = got[:, dropped].flatten(0, 1), truth[:, dropped].flatten(0, 1)
            scores[m]["psnr"].append(psnr(a, b).cpu())
            scores[m]["ssim"].append(ssim(a.double(), b.double()).cpu())
            scores[m]["psnr_vs_recon"].append(psnr(a, recon).cpu())

    result = {"clips": len(clips), "frames": int(clips.shape[1]), "dropped_per_clip": int(len(dropped)),
              "source_fps": args.fps, "keyframe_fps": key_nu, "steps": args.steps, "scheduler": args.scheduler,
              "guidance": args.guidance, "interpolation_seconds_per_clip": seconds / len(clips), "methods": {}}  # fmt: skip
    for m in methods:
        result["methods"][m] = {k: float(torch.cat(v).mean()) for k, v in scores[m].items()}

    if args.fvd and clips.shape[1] < 16:
        print(f"--fvd: clips of {clips.shape[1]} frames are shorter than the classifier's 16; skipped")
    elif args.fvd:
        scores, feats = fvd61(clips, {m: np.concatenate(outputs[m]) for m in methods}, args.classifier, args.device)
        for m, v in scores.items():
            result["methods"][m]["fvd61"] = v
        result["paired_fvd61"] = paired_fvd61(feats, [("model", m) for m in methods if m != "model"], len(clips), args.seed)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"interpolation of {len(clips)} shapes clips: {len(key_idx)} key frames -> {clips.shape[1]} "
                        f"({args.fps:g} fps; {args.steps} {args.scheduler} steps)")  # fmt: skip
    cols = ["psnr", "ssim", "psnr_vs_recon"] + (["fvd61"] if "fvd61" in result["methods"]["model"] else [])
    table.add_column("method")
    for c in cols:
        table.add_column({"psnr": "PSNR dB", "ssim": "SSIM", "psnr_vs_recon": "PSNR vs recon", "fvd61": "FVD-61 (shapes I3D)"}[c], justify="right")
    for m in methods:
        r = result["methods"][m]
        table.add_row(m, *(f"{r[c]:.2f}" if c != "ssim" else f"{r[c]:.4f}" for c in cols))
    Console().print(table)
    if "paired_fvd61" in result:
        print_paired(result["paired_fvd61"])
    print(f"interpolation stage: {result['interpolation_seconds_per_clip']:.3f} s per clip on {args.device}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
