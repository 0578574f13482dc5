"""One batch of clips through a chain of cascade stages, inside a generation actor
(:class:`flows.generation.GenerationWorker`): each stage's clip is written under its own address
(:class:`flows.store.CascadeItem`), and only what is missing is computed.

- **keyframes** runs for a clip whose key-frame sample is missing, or whose ``interpolate`` sample is
  missing and whose key-frame latents are not stored (a store written before latents were kept: the
  key frames are then generated again from the prompt and seed, which gives the same latents, and
  their sample on disk is left as it is). Its latents are kept beside its sample
  (:func:`flows.store.write_latents`).
- **interpolate** starts from the key-frame latents (stored, or just made):
  ``pipe(stages=("interpolate",), keyframe_latents=...)``, the pipeline's own entry for a stored
  key-frame output, with noise from ``stage_seed(seed, "interpolate")``, so the 61 frames equal those
  of the whole cascade in one call.
- **upsample** starts from the previous stage's uint8 clip (stored, or just made): the stage rounds
  its inputs to 8 bits first, so this equals the whole cascade too (:mod:`magicvideo.upsampling`).

Key frames are sampled exactly as the single-stage generation did (``output_type="latent"``, then the
same decoding), so their samples and addresses are the ones earlier runs wrote.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from flows.store import latents_path, read_latents, read_sample, sample_path, write_latents, write_sample


def run_cascade(pipe, items: list[dict], sampler: dict, output_root: str | Path) -> dict[str, dict]:
    """Generate what is missing of every item (``CascadeItem.as_dict()``, one chain for all) with a
    loaded ``MagicVideoPipeline``; returns, per item address, ``{"stages_written": [...],
    "stages_run": [...], "stage_seconds": {stage: seconds per clip}}``."""
    import torch

    chain = [s for s, _ in items[0]["stages"]]
    addr = [dict(it["stages"]) for it in items]
    if any(list(a) != chain for a in addr):
        raise ValueError("one batch holds one chain of stages")
    missing = [{s for s in chain if not sample_path(output_root, a[s]).exists()} for a in addr]
    rec = [{"stages_written": [], "stages_run": [], "stage_seconds": {}} for _ in items]
    made: dict[tuple[int, str], np.ndarray] = {}  # (item, stage) -> its uint8 clip, made in this call
    latents = {i: read_latents(latents_path(output_root, a["keyframes"])) for i, a in enumerate(addr)
               if "interpolate" in missing[i] and "keyframes" not in missing[i]}
    latents = {i: z for i, z in latents.items() if z is not None}

    def done(stage: str, idx: list[int], clips, seconds: float) -> None:
        for j, i in enumerate(idx):
            rec[i]["stages_run"].append(stage)
            rec[i]["stage_seconds"][stage] = seconds / len(idx)
            if clips is not None:
                made[(i, stage)] = clips[j]
                if stage in missing[i]:
                    write_sample(sample_path(output_root, addr[i][stage]), clips[j])
                    rec[i]["stages_written"].append(stage)

    idx = [i for i in range(len(items)) if "keyframes" in missing[i] or ("interpolate" in missing[i]
                                                                          and i not in latents)]
    if idx:
        t0 = time.perf_counter()
        z = pipe([items[i]["prompt"] for i in idx], seed=[items[i]["seed"] for i in idx],
                 negative_prompt=[sampler["negative_prompt"]] * len(idx),
                 num_inference_steps=sampler["num_inference_steps"], guidance_scale=sampler["guidance_scale"],
                 fps=sampler["fps"], eta=sampler["eta"], noise_prior=sampler.get("noise_prior"), output_type="latent").frames
        clips = pipe.to_uint8(pipe.decode_latents(z))
        for j, i in enumerate(idx):
            latents[i] = z[j]
            if not latents_path(output_root, addr[i]["keyframes"]).is_file():
                write_latents(latents_path(output_root, addr[i]["keyframes"]), z[j])
        done("keyframes", idx, clips, time.perf_counter() - t0)

    idx = [i for i in range(len(items)) if "interpolate" in missing[i]]
    if idx:
        t0 = time.perf_counter()
        opts = sampler["interpolate"]
        clips = pipe(stages=("interpolate",), keyframe_latents=torch.stack([latents[i] for i in idx]),
                     seed=[items[i]["seed"] for i in idx], fps=sampler["fps"],
                     num_inference_steps=sampler["num_inference_steps"],
                     interpolation_steps=opts.get("num_inference_steps"),
                     interpolation_guidance_scale=opts["guidance_scale"], eta=sampler["eta"],
                     output_type="uint8").frames
        done("interpolate", idx, clips, time.perf_counter() - t0)

    idx = [i for i in range(len(items)) if "upsample" in missing[i]]
    if idx:
        t0 = time.perf_counter()
        prev = chain[chain.index("upsample") - 1]
        low = np.stack([made[(i, prev)] if (i, prev) in made else read_sample(sample_path(output_root, addr[i][prev]))
                        for i in idx])
        x = torch.from_numpy(low).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (B, 3, F, H, W) in [-1, 1]
        text = None
        if pipe.upsampler is not None and pipe.upsampler.config.cross_attention_dim is not None:
            text = pipe.encode_prompt([items[i]["prompt"] for i in idx])
        opts = sampler["upsample"]
        hr = pipe.upsample(x, [items[i]["seed"] for i in idx], noise_level=opts.get("noise_level"),
                           num_inference_steps=opts["num_inference_steps"], scheduler=opts["scheduler"],
                           prompt_embeds=text)
        done("upsample", idx, pipe.to_uint8(hr), time.perf_counter() - t0)
    return {it["address"]: r for it, r in zip(items, rec)}
