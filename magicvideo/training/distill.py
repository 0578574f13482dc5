"""Few-step distillation of the key-frame model: DMD2 (Yin et al. 2024, "Improved Distribution
Matching Distillation for Fast Image Synthesis", arXiv 2405.14867), as Magic 1-For-1 distils its
models, with classifier-free guidance folded into the student.

Three copies of the teacher's U-Net:

- the **real score**: the teacher, frozen, with CFG at ``guidance`` (7.5, the teacher's eval default);
- the **student** G, initialised from the teacher, sampled at the ``student_steps`` timesteps the
  teacher's DDIM scheduler picks for that many steps (trailing spacing on the shapes model:
  999, 749, 499, 249 for 4 steps, 999 and 499 for 2, 999 for 1), always with guidance 1;
- the **fake score**, initialised from the teacher, trained with the ordinary diffusion loss (eq. 6,
  :func:`~magicvideo.training.keyframe.diffusion_loss`) on G's outputs.

One generator update follows ``fake_updates`` fake-score updates (DMD2's two time-scale rule). Its
loss is the distribution matching gradient: G's clean estimate ``x0`` is noised to a random level
``t`` in ``[dm_t_min, dm_t_max] T``, both scores predict the clean latent, and ``x0`` moves along
``fake - real`` normalised by ``mean |x0 - real|`` per clip (DMD's normaliser). Only prompts are
needed (the shapes captions), no clips.

**Backward simulation** (DMD2 sec. 4.5): G's training inputs are those it meets when sampling: for a
step ``k`` drawn uniformly, G runs steps ``0 .. k-1`` from pure noise without gradients, and step
``k``'s estimate takes the loss. DMD2 re-noises each estimate with fresh noise; here the step between
estimates is the teacher scheduler's own deterministic DDIM update (eta 0), exactly what
``MagicVideoPipeline.__call__`` runs at test time. So the student is a normal checkpoint: its folder
carries the teacher's DDIM config unchanged, ``num_inference_steps=4, guidance_scale=1`` samples the
trained timesteps, and the eval flow's default ``sampler.scheduler: ddim`` needs nothing new.

**Regression** (DMD, Yin et al. 2023, sec. 3.3): optionally ``regression_pairs`` teacher samples
(``teacher_steps`` DDIM steps at ``guidance``) are made once from fixed seeds, and G's estimate at a
random step of its own chain from the same initial noise is pulled towards the teacher's output
(latent MSE, weight ``regression_weight``), against mode collapse early on. 0 turns it off.

Resumable: ``OUT/checkpoint.pt`` (both U-Nets, both optimizers, step, RNG states; written every
``checkpoint_every`` generator updates, loaded with ``weights_only``) lets an interrupted run go on.
``OUT/train_log.jsonl`` has one line per generator update.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from magicvideo.configs import StrictModel
from magicvideo.noise_prior import check_alpha, video_noise

METHOD = "DMD2"
PAPER = "Yin et al. 2024, Improved Distribution Matching Distillation for Fast Image Synthesis, arXiv 2405.14867"
STATE = "checkpoint.pt"
#: what the student folder records about how it was made
PROVENANCE = "distillation.json"


class DistillConfig(StrictModel):
    steps: int = Field(400, ge=1)                 # generator updates (each after fake_updates fake-score updates)
    batch_size: int = Field(32, ge=1)             # clips per update
    student_steps: int = Field(4, ge=1)           # the student's sampling steps (timesteps: the teacher's DDIM)
    guidance: float = Field(7.5, ge=1.0)          # the real score's CFG scale, folded into the student
    fake_updates: int = Field(5, ge=1)            # two time-scale rule: fake-score updates per generator update
    lr: float = Field(5e-5, gt=0)                 # the student's AdamW learning rate
    fake_lr: float = Field(5e-5, gt=0)            # the fake score's
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = 1.0
    dm_t_min: float = Field(0.02, ge=0, le=1)     # the distribution matching loss's noise levels, fractions of T
    dm_t_max: float = Field(0.98, ge=0, le=1)
    regression_weight: float = Field(0.25, ge=0)  # 0: no teacher pairs
    regression_pairs: int = Field(256, ge=0)      # teacher samples made once at the start
    regression_batch: int = Field(8, ge=1)
    teacher_steps: int = Field(25, ge=1)          # the teacher's DDIM steps for the pairs
    fps: float = Field(8.0, gt=0)                 # nu (eq. 5) of every sample
    seed: int = 0
    mixed_precision: Literal["bf16", "no"] = "bf16"  # bf16 autocast on CUDA; CPU runs in fp32
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    max_seconds: float | None = Field(None, gt=0)  # stop (and save) after this much training time

    @model_validator(mode="after")
    def _levels(self) -> "DistillConfig":
        if self.dm_t_min >= self.dm_t_max:
            raise ValueError(f"dm_t_min {self.dm_t_min} must be below dm_t_max {self.dm_t_max}")
        return self


def predicted_x0(scheduler, out: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
    """The clean latent a U-Net output implies at level ``t`` (an int, or ``(B,)`` on the latents' device),
    for the schedule's ``epsilon`` or ``v_prediction`` parameterisation (as DDIM's step computes it).
    No host-device synchronisation: an int indexes the schedule on the host, a tensor a device copy."""
    if isinstance(t, int):
        a = float(scheduler.alphas_cumprod[t])
        sa, s1a = math.sqrt(a), math.sqrt(1 - a)
    else:
        if scheduler.alphas_cumprod.device != x_t.device:  # once (diffusers' add_noise does the same)
            scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(x_t.device)
        a = scheduler.alphas_cumprod[t.long()].float().reshape(-1, *([1] * (x_t.dim() - 1)))
        sa, s1a = a.sqrt(), (1 - a).sqrt()
    out, x_t = out.float(), x_t.float()
    kind = scheduler.config.prediction_type
    if kind == "v_prediction":
        return sa * x_t - s1a * out
    if kind == "epsilon":
        return (x_t - s1a * out) / sa
    raise ValueError(f"unsupported prediction_type {kind!r}")


class DistillTrainer:
    """DMD2 for a :class:`~magicvideo.pipeline.MagicVideoPipeline`'s key-frame U-Net.

    Args:
        cfg: the recipe (:class:`DistillConfig`).
        teacher: the teacher pipeline (its U-Net is the real score; never updated).
        prompts: the captions to distil on.
        out_dir: the run's folder (``checkpoint.pt``, ``train_log.jsonl``).
        device: default CUDA when available.
    """

    def __init__(self, cfg: DistillConfig, teacher, prompts: list[str], out_dir: str | Path,
                 device: str | torch.device | None = None):  # fmt: skip
        from diffusers import DDIMScheduler, DDPMScheduler

        from magicvideo.conditioning import encode_prompts

        if not prompts:
            raise ValueError("no prompts to distil on")
        self.cfg, self.out = cfg, Path(out_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.teacher_pipe = teacher.to(self.device)
        self.teacher_pipe.set_progress_bar_config(disable=True)
        self.teacher = teacher.unet.requires_grad_(False).eval()
        for frozen in (teacher.vae, teacher.text_encoder):
            frozen.requires_grad_(False).eval()
        self.student = copy.deepcopy(self.teacher).requires_grad_(True).train()
        self.student.register_to_config(sample_noise_prior=None)  # it learns from, and samples with, the trained alpha
        self.fake = copy.deepcopy(self.teacher).requires_grad_(True).train()
        self.sampler = DDIMScheduler.from_config(teacher.scheduler.config)  # the student's steps, as the pipeline's
        self.sampler.set_timesteps(cfg.student_steps, device=self.device)
        self.noise_scheduler = DDPMScheduler.from_config(teacher.scheduler.config)  # add_noise, as in training
        self.prompts = list(prompts)
        with torch.no_grad():
            self.cond = torch.cat([encode_prompts(teacher.tokenizer, teacher.text_encoder, self.prompts[i : i + 256],
                                                  device=self.device) for i in range(0, len(self.prompts), 256)])  # fmt: skip
            self.null = encode_prompts(teacher.tokenizer, teacher.text_encoder, [""], device=self.device)
        c = self.teacher.config
        h = c.sample_size
        self.shape = (c.in_channels, c.num_frames, h, h)
        # PYoCo's mixed noise prior (magicvideo/noise_prior.py): the teacher's scores are those of noise with its
        # alpha, and the student (a copy, same config) samples from it, so every draw here uses the teacher's alpha.
        self.noise_prior = check_alpha(getattr(c, "noise_prior", 0.0))
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)
        self.step_generator = torch.Generator().manual_seed(cfg.seed)  # which student step: on the host, no sync
        self.ts = [int(t) for t in self.sampler.timesteps]
        self.ts_device = [torch.tensor(t, device=self.device) for t in self.ts]
        fused = self.device.type == "cuda" or None
        self.opt = torch.optim.AdamW(self.student.parameters(), lr=cfg.lr, betas=cfg.betas,
                                     weight_decay=cfg.weight_decay, fused=fused)  # fmt: skip
        self.opt_fake = torch.optim.AdamW(self.fake.parameters(), lr=cfg.fake_lr, betas=cfg.betas,
                                          weight_decay=cfg.weight_decay, fused=fused)  # fmt: skip
        self.step = 0
        self.pairs = None

    # ---- pieces ----------------------------------------------------------------------------

    def _autocast(self):
        import contextlib

        if self.device.type == "cuda" and self.cfg.mixed_precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _fps(self, n: int) -> torch.Tensor | None:
        return torch.full((n,), float(self.cfg.fps), device=self.device) if self.teacher.config.fps_conditioning else None

    @property
    def timesteps(self) -> list[int]:
        """The student's timesteps, in sampling order."""
        return list(self.ts)

    def _batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self.prompts), (n,), generator=self.generator, device=self.device)
        return self.cond[idx]

    def _noise(self, n: int) -> torch.Tensor:
        """The student's initial noise, as its pipeline draws it (the mixed prior; alpha 0: i.i.d.)."""
        return video_noise((n, *self.shape), self.noise_prior, self.generator, self.device)

    def simulate(self, noise: torch.Tensor, cond: torch.Tensor, k: int, grad: bool = False) -> torch.Tensor:
        """Backward simulation: the student's clean estimate at its step ``k`` (0-based) from initial
        `noise`, after steps ``0 .. k-1`` of the pipeline's own DDIM sampling (no gradient through
        them; through step ``k`` when `grad`)."""
        x = self.sample(noise, cond, k)
        with torch.set_grad_enabled(grad), self._autocast():
            out = self.student(x, self.ts_device[k], cond, fps=self._fps(noise.shape[0])).sample
        return predicted_x0(self.sampler, out, x, self.ts[k])

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, cond: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """The student's latents after its first `steps` sampling steps (default: all of them, which is
        what the student pipeline returns for ``guidance_scale=1``, ``output_type="latent"``)."""
        fps, x = self._fps(noise.shape[0]), noise
        for j in range(self.cfg.student_steps if steps is None else steps):
            with self._autocast():
                out = self.student(x, self.ts_device[j], cond, fps=fps).sample
            x = self.sampler.step(out.float(), self.ts[j], x).prev_sample
        return x

    def _k(self) -> int:
        return int(torch.randint(0, self.cfg.student_steps, (1,), generator=self.step_generator))

    def dm_loss(self, x0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """DMD's distribution matching loss on the student's estimates `x0` ``(B, C, F, h, w)``."""
        cfg, n = self.cfg, x0.shape[0]
        T = self.noise_scheduler.config.num_train_timesteps
        t = torch.randint(int(cfg.dm_t_min * T), int(cfg.dm_t_max * T) + 1, (n,), generator=self.generator,
                          device=self.device)  # fmt: skip
        noise = video_noise(x0.shape, self.noise_prior, self.generator, self.device)
        with torch.no_grad():
            x_t = self.noise_scheduler.add_noise(x0.detach(), noise, t)
            fps = self._fps(n)
            with self._autocast():
                both = self.teacher(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([self.null.expand_as(cond), cond]),
                                    fps=None if fps is None else torch.cat([fps, fps])).sample  # fmt: skip
                fake = self.fake(x_t, t, cond, fps=fps).sample
            uncond, text = both.float().chunk(2)
            real_x0 = predicted_x0(self.noise_scheduler, uncond + cfg.guidance * (text - uncond), x_t, t)
            fake_x0 = predicted_x0(self.noise_scheduler, fake, x_t, t)
            scale = (x0.detach() - real_x0).abs().mean(dim=tuple(range(1, x0.dim())), keepdim=True)
            grad = torch.nan_to_num((fake_x0 - real_x0) / scale)
        return 0.5 * F.mse_loss(x0, (x0 - grad).detach())

    @torch.no_grad()
    def make_pairs(self) -> None:
        """The regression targets: the teacher's samples (latents) of the first `regression_pairs`
        prompts of a seeded shuffle, from the noise of seeds ``seed * 1_000_003 + i`` (the pipeline's
        noise: the student's chain from the same seed is the student pipeline's sample)."""
        cfg = self.cfg
        n = min(cfg.regression_pairs, len(self.prompts)) if cfg.regression_weight > 0 else 0
        if n == 0:
            return
        order = torch.randperm(len(self.prompts), generator=torch.Generator().manual_seed(cfg.seed))[:n].tolist()
        seeds = [cfg.seed * 1_000_003 + i for i in range(n)]
        noise, target = [], []
        for i in range(0, n, 64):
            idx, s = order[i : i + 64], seeds[i : i + 64]
            z, _ = self.teacher_pipe.prepare_latents(s, self.shape[1], self.shape[2] * self.teacher_pipe.vae_scale_factor,
                                                     self.shape[3] * self.teacher_pipe.vae_scale_factor, torch.float32)  # fmt: skip
            out = self.teacher_pipe(prompt_embeds=self.cond[idx], seed=s, num_inference_steps=cfg.teacher_steps,
                                    guidance_scale=cfg.guidance, fps=cfg.fps, output_type="latent").frames  # fmt: skip
            noise.append(z.float())
            target.append(out.float())
        self.pairs = {"cond": self.cond[order], "noise": torch.cat(noise), "target": torch.cat(target)}

    def regression_loss(self) -> torch.Tensor:
        p = self.pairs
        idx = torch.randint(0, p["noise"].shape[0], (self.cfg.regression_batch,), generator=self.generator,
                            device=self.device)  # fmt: skip
        x0 = self.simulate(p["noise"][idx], p["cond"][idx], self._k(), grad=True)
        return F.mse_loss(x0, p["target"][idx])

    # ---- updates ---------------------------------------------------------------------------

    def fake_update(self) -> torch.Tensor:
        """One step of the fake score's diffusion loss on the student's (detached) estimates."""
        from magicvideo.training.keyframe import diffusion_loss

        cond = self._batch(self.cfg.batch_size)
        x0 = self.simulate(self._noise(cond.shape[0]), cond, self._k())
        self.opt_fake.zero_grad(set_to_none=True)
        with self._autocast():
            loss = diffusion_loss(self.fake, self.noise_scheduler, x0, cond, self._fps(cond.shape[0]), self.generator,
                                  noise_prior=self.noise_prior)
        loss.backward()
        self._clip(self.fake)
        self.opt_fake.step()
        return loss.detach()

    def generator_update(self) -> dict[str, torch.Tensor]:
        cond = self._batch(self.cfg.batch_size)
        self.opt.zero_grad(set_to_none=True)
        x0 = self.simulate(self._noise(cond.shape[0]), cond, self._k(), grad=True)
        dm = self.dm_loss(x0, cond)
        loss, out = dm, {"dm_loss": dm.detach()}
        if self.pairs is not None:
            reg = self.regression_loss()
            loss = loss + self.cfg.regression_weight * reg
            out["regression_loss"] = reg.detach()
        loss.backward()
        out["grad_norm"] = self._clip(self.student)
        self.opt.step()
        return out

    def _clip(self, model) -> torch.Tensor | None:
        if self.cfg.max_grad_norm is None:
            return None
        return torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.max_grad_norm).detach()

    # ---- checkpoints -----------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        from magicvideo.training.trainer import _rng_state

        self.out.mkdir(parents=True, exist_ok=True)
        state = {"step": self.step, "student": self.student.state_dict(), "fake": self.fake.state_dict(),
                 "opt": self.opt.state_dict(), "opt_fake": self.opt_fake.state_dict(),
                 "rng": _rng_state(self.generator), "step_rng": self.step_generator.get_state(),
                 "config": self.cfg.model_dump(mode="json")}  # fmt: skip
        tmp = self.out / (STATE + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out / STATE)
        return self.out / STATE

    def load_checkpoint(self, path: str | Path) -> None:
        from magicvideo.training.trainer import _set_rng_state

        state = torch.load(path, map_location="cpu", weights_only=True)
        mine = self.cfg.model_dump(mode="json")
        changed = sorted(k for k in mine if k not in ("steps", "max_seconds", "checkpoint_every", "log_every")
                         and state["config"].get(k) != mine[k])  # fmt: skip
        if changed:
            raise ValueError(f"cannot resume from {path}: settings changed since it was written: {', '.join(changed)} "
                             "(another OUT, or remove the checkpoint to start over)")
        self.student.load_state_dict(state["student"])
        self.fake.load_state_dict(state["fake"])
        self.opt.load_state_dict(state["opt"])
        self.opt_fake.load_state_dict(state["opt_fake"])
        _set_rng_state(self.generator, state["rng"])
        self.step_generator.set_state(state["step_rng"])
        self.step = int(state["step"])

    # ---- the loop --------------------------------------------------------------------------

    def train(self, progress: bool = True, resume: bool = True) -> dict:
        """Run (or resume) to ``cfg.steps`` generator updates, or ``cfg.max_seconds``; returns a summary."""
        from magicvideo.training.trainer import _Progress, _truncate_log

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and (self.out / STATE).is_file():
            self.load_checkpoint(self.out / STATE)
        log_path = self.out / "train_log.jsonl"
        _truncate_log(log_path, self.step)
        t_pairs = time.perf_counter()
        self.make_pairs()
        t_pairs = time.perf_counter() - t_pairs
        t0, first, pending, last = time.perf_counter(), self.step, [], {}
        bar = _Progress(cfg.steps, self.step, enabled=progress)
        with open(log_path, "a") as log, bar:
            while self.step < cfg.steps:
                fake = torch.stack([self.fake_update() for _ in range(cfg.fake_updates)]).mean()
                rec = {"step": self.step + 1, "fake_loss": fake, **self.generator_update()}
                self.step += 1
                elapsed = time.perf_counter() - t0
                rec.update(seconds_per_step=elapsed / (self.step - first), elapsed_s=round(elapsed, 3))
                pending.append(rec)
                out_of_time = cfg.max_seconds is not None and elapsed >= cfg.max_seconds
                at_ckpt = self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or out_of_time
                if len(pending) >= cfg.log_every or at_ckpt:
                    last = _flush(pending, log, log_path, bar, cfg.lr)
                if at_ckpt:
                    self.save_checkpoint()
                if out_of_time:
                    break
        return {"steps": self.step, "target_steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 3),
                "pairs_seconds": round(t_pairs, 3), "regression_pairs": 0 if self.pairs is None else
                int(self.pairs["noise"].shape[0]), **{k: v for k, v in last.items() if k.endswith("loss")}}  # fmt: skip

    # ---- the student folder ----------------------------------------------------------------

    def save_student(self, folder: str | Path, teacher_dir: str | Path, summary: dict | None = None,
                     dtype: torch.dtype = torch.float16) -> Path:  # fmt: skip
        """A complete pipeline folder: the teacher folder's VAE, text encoder, tokenizer and scheduler
        copied as they are (byte-identical), the student's U-Net in `dtype` (fp16 like the committed
        pipeline; loaded as float32), and ``distillation.json`` (teacher identity, method, steps,
        timesteps, guidance folded in, the recipe and the run's summary). No interpolation/upsample
        stage: the student is a key-frame model."""
        from magicvideo.pipeline import cascade_identity
        from magicvideo.stages import STAGE_COMPONENTS

        keyframes = STAGE_COMPONENTS["keyframes"]  # the student's U-Net, and the teacher's others as they are
        teacher_dir, folder = Path(teacher_dir), Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for comp in keyframes:
            if comp != "unet":
                shutil.copytree(teacher_dir / comp, tmp / comp)
        copy.deepcopy(self.student).to(dtype=dtype).save_pretrained(tmp / "unet")
        index = json.loads((teacher_dir / "model_index.json").read_text())
        for comp in index:  # every other stage of the teacher's folder (interpolation, i2v, t2i_unet, ...) is absent
            if not comp.startswith("_") and comp not in keyframes:
                index[comp] = [None, None]
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        doc = {"method": METHOD, "paper": PAPER,
               "teacher": {"path": str(teacher_dir), "keyframes_identity": cascade_identity(teacher_dir, "keyframes")},
               "student_steps": self.cfg.student_steps, "timesteps": self.timesteps,
               "scheduler": type(self.sampler).__name__, "guidance_folded_in": self.cfg.guidance,
               "sample_with": {"num_inference_steps": self.cfg.student_steps, "guidance_scale": 1.0},
               "recipe": self.cfg.model_dump(mode="json"), "summary": summary or {"steps": self.step},
               "unet_dtype": str(dtype).removeprefix("torch.")}  # fmt: skip
        (tmp / PROVENANCE).write_text(json.dumps(doc, indent=1, default=str) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return folder


def _flush(pending: list[dict], log, log_path: Path, bar, lr: float) -> dict:
    """Bring the pending steps' values to the host (one sync), check, log and show them."""
    for rec in pending:
        for k, v in list(rec.items()):
            if isinstance(v, torch.Tensor):
                rec[k] = float(v)
        if not math.isfinite(rec["dm_loss"]) or not math.isfinite(rec["fake_loss"]):
            raise FloatingPointError(f"non-finite loss at step {rec['step']}; see {log_path}")
        log.write(json.dumps(rec) + "\n")
    log.flush()
    last = dict(pending[-1])
    pending.clear()
    bar.update(last["step"], last["dm_loss"], lr)
    return last


def load_teacher(folder: str | Path):
    """The teacher pipeline from a saved folder, in float32; one clear error when it is not one."""
    from magicvideo.pipeline import MagicVideoPipeline

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"teacher {folder}: not a saved MagicVideoPipeline folder (no model_index.json); "
                                "pass the key-frame pipeline to distil, e.g. checkpoints/shapes/pipeline")
    pipe = MagicVideoPipeline.from_pretrained(folder)  # fp16 files load as float32
    if pipe.unet.dtype != torch.float32:
        pipe.to(dtype=torch.float32)
    return pipe


def shapes_prompts(data: str | Path | None = None, count: int = 2000, seed: int = 0) -> list[str]:
    """The training captions: ``DATA/train.csv``'s (a rendered shapes benchmark), else those of the
    benchmark's first `count` training clips at `seed`, made without rendering anything."""
    if data is not None:
        import csv

        path = Path(data) / "train.csv"
        if not path.is_file():
            raise FileNotFoundError(f"--data {data}: no train.csv (a rendered shapes benchmark: magicvideo data shapes DIR)")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        key = next((k for k in ("name", "caption", "text") if rows and k in rows[0]), None)
        if key is None:
            raise ValueError(f"{path}: no caption column (name / caption / text)")
        return [r[key] for r in rows]
    from magicvideo.data.shapes import ShapesSpec, sample_clip

    spec = ShapesSpec(train=count, seed=seed)
    return [sample_clip(spec, "train", i).caption for i in range(count)]
