"""Counted (not estimated) FLOPs and parameters of one denoising step.

`torch.utils.flop_counter.FlopCounterMode` records every matmul, convolution and attention
kernel the forward pass dispatches; the model runs on the meta device, so counting the SD 1.5
size costs no memory and about a second. One FLOP here is a multiply or an add (a multiply-add
is 2), the convention MFU figures use.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import MagicVideoUNet


@dataclasses.dataclass
class StepCost:
    flops: int              # per U-Net forward at this batch (a CFG step runs it on 2x batch)
    params: int             # U-Net parameters
    batch: int              # clips in the forward
    by_module: dict         # FLOPs per top-level U-Net module (conv_in, down_blocks, ...)

    @property
    def flops_per_clip(self) -> float:
        return self.flops / self.batch


def unet_step_cost(unet: MagicVideoUNet, batch: int = 1, height: int | None = None, width: int | None = None,
                   text_tokens: int = 77) -> StepCost:
    """FLOPs of one forward of `unet` on ``batch`` clips of ``num_frames`` latents ``height x width``
    (default: the config's ``sample_size``). A classifier-free-guidance step is the forward at
    ``2 * batch``."""
    cfg = unet.config
    h = height or cfg.sample_size
    w = width or cfg.sample_size
    with torch.device("meta"):
        meta = unet if next(unet.parameters()).device.type == "meta" else MagicVideoUNet.from_config(cfg)
        x = torch.empty(batch, cfg.in_channels, cfg.num_frames, h, w)
        t = torch.full((batch,), 500.0)
        ehs = torch.empty(batch, text_tokens, cfg.cross_attention_dim)
        fps = torch.full((batch,), 8.0) if cfg.fps_conditioning else None
    counter = FlopCounterMode(display=False, depth=3)
    with counter, torch.no_grad():
        meta(x, t, ehs, fps=fps)
    # One row per top-level module, and per block of the down/up ModuleLists (which are never
    # called themselves, so the counter only sees their children).
    by_module: dict[str, int] = {}
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".")
        lists = ("down_blocks", "up_blocks")
        if (len(parts) == 2 and parts[1] not in lists) or (len(parts) == 3 and parts[1] in lists):
            by_module[".".join(parts[1:])] = sum(ops.values())
    return StepCost(
        flops=counter.get_total_flops(),
        params=sum(p.numel() for p in unet.parameters()),
        batch=batch,
        by_module=by_module,
    )
