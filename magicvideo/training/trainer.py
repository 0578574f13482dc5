"""The training loop shared by every stage: AdamW, gradient accumulation, EMA, bf16 autocast on
CUDA, deterministic batches, checkpoints that resume bit-exactly, progress and a JSONL loss log.

A stage subclasses :class:`Trainer` and supplies the model, which parameters train, and the loss
of one micro-batch (:mod:`magicvideo.training.keyframe`, :mod:`magicvideo.training.videovae`).

Exact resume: everything random is drawn from ``self.generator`` (a ``torch.Generator`` on the
training device, seeded by ``seed``) or from the dataset's own ``(seed, epoch, index)`` sampling;
the batch order is a pure function of the micro-batch index. A checkpoint stores the weights
(safetensors), the EMA, optimizer and LR-schedule state, the generator's and torch's global RNG
states, and the step, so ``K`` steps + resume + ``N - K`` steps equals ``N`` steps exactly (on
the same device and software).

Layout of ``out_dir``::

    config.yaml                    the resolved training config
    train_log.jsonl                one line per optimizer step: step, loss, lr, grad_norm, ...
    checkpoints/step_00000500/     <model>/ and <model>_ema/ (save_pretrained), training_state.pt
    final/                         <model>/ and <model>_ema/ after the last step
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from magicvideo.training.config import TrainConfig

STATE_FILE = "training_state.pt"


# ---- deterministic batches ------------------------------------------------------------------


class _EpochIndexed(torch.utils.data.Dataset):
    """``dataset[(epoch, i)]``: sets the dataset's epoch (clip sampling of 3.1.3 depends on it)
    inside whichever process reads the item, then returns ``dataset[i]``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[i]


class _BatchOrder(torch.utils.data.Sampler):
    """Micro-batches from index `start` on: epoch ``e`` is a permutation seeded by ``(seed, e)``,
    cut into ``len // batch_size`` full batches; so batch ``m`` does not depend on where a run
    (re)started."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0):
        if n < batch_size:
            raise ValueError(f"the dataset has {n} items, fewer than batch_size={batch_size}")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_epoch = self.n // self.batch_size
        m = self.start
        while True:
            epoch, pos = divmod(m, per_epoch)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            for b in range(pos, per_epoch):
                yield [(epoch, int(i)) for i in perm[b * self.batch_size : (b + 1) * self.batch_size]]
            m = (epoch + 1) * per_epoch


def batches(dataset, batch_size: int, seed: int, start: int = 0, num_workers: int = 0) -> Iterator[dict]:
    """Endless micro-batches (default-collated dicts) from micro-batch index `start`."""
    loader = torch.utils.data.DataLoader(
        _EpochIndexed(dataset),
        batch_sampler=_BatchOrder(len(dataset), batch_size, seed, start),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    return iter(loader)


# ---- small helpers --------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(cfg: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA when ``mixed_precision: bf16``; a no-op on CPU (fp32 there). With
    ``cuda_graphs`` the weight-cast cache is off, as CUDA graph capture requires."""
    if device.type == "cuda" and cfg.mixed_precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not cfg.cuda_graphs)
    return contextlib.nullcontext()


def _rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(generator: torch.Generator, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_weights(model: nn.Module, folder: str | Path) -> None:
    """Load a ``save_pretrained`` folder's safetensors weights into `model` (strict: every key)."""
    from safetensors.torch import load_file

    file = Path(folder) / "diffusion_pytorch_model.safetensors"
    if not file.is_file():
        raise FileNotFoundError(f"no weights at {file} (a save_pretrained folder of {type(model).__name__})")
    model.load_state_dict(load_file(file))


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints under ``out_dir/checkpoints``, oldest first."""
    root = Path(out_dir) / "checkpoints"
    found = [p for p in root.glob("step_*") if (p / STATE_FILE).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


# Keys that may differ between a run and its resumption (they do not change the arithmetic).
_RESUMABLE_CHANGES = {"steps", "checkpoint_every", "log_every", "keep_checkpoints", "resume", "out_dir", "device",
                      "cuda_graphs", "encode_chunk"}


class Trainer:
    """Base training loop. Subclasses set ``self.model`` (the module whose weights are saved,
    under ``self.model_name``), ``self.dataset``, and implement :meth:`trainable_parameters` and
    :meth:`loss`. Call :meth:`train`.

    Args:
        cfg: the training config.
        device: overrides ``cfg.device``.
    """

    model: nn.Module
    model_name: str = "model"

    def __init__(self, cfg: TrainConfig, device: str | torch.device | None = None):
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else resolve_device(cfg.device)
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)
        self.step = 0

    # -- to implement -----------------------------------------------------------------------

    def trainable_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """The optimizer's parameter groups over ``self.params`` (default: one, at ``optim.lr``)."""
        return [{"params": self.params}]

    def loss(self, batch: dict) -> torch.Tensor:
        """Scalar loss of one micro-batch; draw any randomness from ``self.generator``."""
        raise NotImplementedError

    def load_model_weights(self, folder: Path) -> None:
        """Load ``self.model``'s weights saved by ``save_pretrained`` in `folder`."""
        load_weights(self.model, folder)

    # -- setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        """Optimizer, LR schedule and EMA over the trainable parameters (call after the model
        is built and on its device)."""
        from diffusers.optimization import get_scheduler
        from diffusers.training_utils import EMAModel

        cfg, o = self.cfg, self.cfg.optim
        self.params = self.trainable_parameters()
        if not self.params:
            raise ValueError("nothing to train: no trainable parameters")
        # fused AdamW on CUDA: one kernel for every parameter; the small shapes models are launch-bound
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.param_groups(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay,
                                           eps=o.eps, fused=fused or None)  # fmt: skip
        self.lr_schedule = get_scheduler(
            o.lr_schedule, self.optimizer, num_warmup_steps=o.warmup_steps, num_training_steps=cfg.steps
        )
        self.ema = None
        if cfg.ema.enabled:
            e = cfg.ema
            self.ema = EMAModel(
                self.params, decay=e.decay, use_ema_warmup=e.warmup, inv_gamma=e.inv_gamma, power=e.power,
                update_after_step=e.update_after_step, foreach=True,
            )  # fmt: skip

    # -- checkpoints ------------------------------------------------------------------------

    @contextlib.contextmanager
    def ema_weights(self, use: bool = True) -> Iterator[None]:
        """Inside the block the model holds its EMA weights (when `use` and EMA is on); its own
        training weights are back after it, whatever happens inside."""
        use = use and self.ema is not None
        if use:
            self.ema.store(self.params)
            self.ema.copy_to(self.params)
        try:
            yield
        finally:
            if use:
                self.ema.restore(self.params)

    def exported_model(self, ema: bool = True, dtype: torch.dtype | None = None) -> nn.Module:
        """A copy of the model on the CPU, with its EMA weights when `ema` and EMA is on, cast to
        `dtype` when given (e.g. float16 storage), to be added to a pipeline folder."""
        import copy

        with self.ema_weights(ema):
            model = copy.deepcopy(self.model).to("cpu")
        return model if dtype is None else model.to(dtype=dtype)

    def _save_models(self, folder: Path) -> None:
        self.model.save_pretrained(folder / self.model_name)
        if self.ema is not None:
            with self.ema_weights():
                self.model.save_pretrained(folder / f"{self.model_name}_ema")

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_N`` atomically (a temporary folder renamed when complete) and
        drop the oldest beyond ``keep_checkpoints``."""
        root = self.cfg.out_path / "checkpoints"
        final = root / f"step_{self.step:08d}"
        tmp = root / f".tmp_step_{self.step:08d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._save_models(tmp)
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": _rng_state(self.generator),
        }
        torch.save(state, tmp / STATE_FILE)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(self.cfg.out_path)[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, folder: str | Path) -> None:
        """Restore weights, optimizer, LR schedule, EMA, RNG states and step from `folder`."""
        folder = Path(folder)
        if not (folder / STATE_FILE).is_file():
            raise FileNotFoundError(f"not a training checkpoint (no {STATE_FILE}): {folder}")
        self.load_model_weights(folder / self.model_name)
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError(f"{folder} has no EMA state but ema.enabled is true")
            self.ema.load_state_dict(state["ema"])
            self.ema.to(self.device)
        _set_rng_state(self.generator, state["rng"])
        self.step = int(state["step"])

    def _resume_point(self) -> Path | None:
        r = self.cfg.resume
        if r == "never":
            return None
        if r == "auto":
            found = list_checkpoints(self.cfg.out_path)
            return found[-1] if found else None
        return Path(r)

    def _check_same_run(self) -> None:
        saved = self.cfg.out_path / "config.yaml"
        if not saved.is_file():
            return
        old = yaml.safe_load(saved.read_text()) or {}
        new = self.cfg.model_dump(mode="json")
        changed = sorted(k for k in set(old) | set(new) if k not in _RESUMABLE_CHANGES and old.get(k) != new.get(k))
        if changed:
            raise ValueError(
                f"cannot resume in {self.cfg.out_dir}: config keys changed since the checkpoint: {', '.join(changed)} "
                "(use another out_dir, or resume: never to start over)"
            )

    # -- the loop ---------------------------------------------------------------------------

    @staticmethod
    def _flush_log(pending: list[dict], log, log_path: Path, bar: "_Progress") -> dict:
        """Bring the pending steps' device values to the host (one sync), check them, write their log
        lines and update the bar; returns the last record. Raises FloatingPointError at the first
        non-finite loss."""
        for rec in pending:
            rec["loss"] = float(rec["loss"])
            if rec["grad_norm"] is not None:
                rec["grad_norm"] = float(rec["grad_norm"])
            if not math.isfinite(rec["loss"]):
                raise FloatingPointError(f"loss is {rec['loss']} at step {rec['step']}; see {log_path}")
            log.write(json.dumps(rec) + "\n")
        log.flush()
        last = pending[-1]
        pending.clear()
        bar.update(last["step"], last["loss"], last["lr"])
        return last

    def train(self, progress: bool = True) -> dict[str, Any]:
        """Run (or resume) training to ``cfg.steps``; return a summary (steps, final loss, time)."""
        cfg = self.cfg
        out = cfg.out_path
        out.mkdir(parents=True, exist_ok=True)
        start = self._resume_point()
        if start is not None:
            if cfg.resume == "auto":
                self._check_same_run()
            self.load_checkpoint(start)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        log_path = out / "train_log.jsonl"
        _truncate_log(log_path, self.step)

        self.model.train()
        data = batches(self.dataset, cfg.batch_size, cfg.data.seed, start=self.step * cfg.grad_accum,
                       num_workers=cfg.data.num_workers)  # fmt: skip
        t0, first, last, data_wait = time.perf_counter(), self.step, {}, 0.0
        pending: list[dict] = []  # steps not yet logged: their loss and grad norm still on the device
        bar = _Progress(cfg.steps, self.step, enabled=progress)
        with open(log_path, "a") as log, bar:
            while self.step < cfg.steps:
                self.optimizer.zero_grad(set_to_none=True)
                total = torch.zeros((), device=self.device)
                for _ in range(cfg.grad_accum):
                    t_wait = time.perf_counter()
                    batch = next(data)
                    data_wait += time.perf_counter() - t_wait
                    with autocast(cfg, self.device):
                        loss = self.loss(batch)
                    (loss / cfg.grad_accum).backward()
                    total += loss.detach().float() / cfg.grad_accum
                grad_norm = None
                if cfg.optim.max_grad_norm is not None:
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.optim.max_grad_norm).detach()
                lr = self.lr_schedule.get_last_lr()[0]
                self.optimizer.step()
                self.lr_schedule.step()
                if self.ema is not None:
                    self.ema.step(self.params)
                self.step += 1
                elapsed = time.perf_counter() - t0
                pending.append({
                    "step": self.step, "loss": total, "lr": lr, "grad_norm": grad_norm,
                    "samples": self.step * cfg.grad_accum * cfg.batch_size,
                    "samples_per_s": (self.step - first) * cfg.grad_accum * cfg.batch_size / max(elapsed, 1e-9),
                    "elapsed_s": round(elapsed, 3),
                    "data_wait_s": round(data_wait, 3),  # of elapsed_s, waiting for batches (input-bound if large)
                })  # fmt: skip
                at_checkpoint = self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
                if len(pending) >= cfg.log_every or at_checkpoint:
                    last = self._flush_log(pending, log, log_path, bar)
                if at_checkpoint:
                    self.save_checkpoint()
        final = out / "final"
        shutil.rmtree(final, ignore_errors=True)
        self._save_models(final)
        return {"steps": self.step, "loss": last.get("loss"), "seconds": time.perf_counter() - t0,
                "data_wait_seconds": round(data_wait, 3), "out_dir": str(out)}  # fmt: skip


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines up to `step` (a resumed run rewrites the steps after its checkpoint)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def read_log(path: str | Path) -> list[dict]:
    """The records of a ``train_log.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class _Progress:
    """A rich progress bar with the running (smoothed) loss and the learning rate; silent when
    disabled."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.enabled, self.smooth = enabled, None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                TextColumn("lr {task.fields[lr]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            )  # fmt: skip
            self.task = self.bar.add_task("train", total=total, completed=done, loss="-", lr="-")

    def __enter__(self):
        if self.enabled:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)

    def update(self, step: int, loss: float, lr: float) -> None:
        self.smooth = loss if self.smooth is None else 0.9 * self.smooth + 0.1 * loss
        if self.enabled:
            self.bar.update(self.task, completed=step, loss=f"{self.smooth:.4f}", lr=f"{lr:.2e}")
