"""The denoiser's forward and backward as CUDA graphs (``cuda_graphs: true`` in a training config).

One key-frame step of the 2.4 M-parameter shapes U-Net is ~11,000 aten ops (forward and backward).
:func:`torch.cuda.make_graphed_callables` records the forward and the backward once and replays each
as one launch; the optimizer, EMA, VAE and text encoder stay eager (a few hundred ops). Measured on an
H200 (BENCHMARKS.md, 2026-12-02): bit-identical losses to eager training, 9% less time a step
(243 -> 222 ms, the recipe's batch of 32 clips); with many runs side by side the GPU itself is the
limit, so the gain there is small too. PyTorch offers the capture; what it does not offer is the
policy around it, which is what this module holds:

- capture on the first call, with that call's shapes; a call with other shapes (or outside
  training, or without grad) runs eagerly, so nothing breaks, it is only slower;
- the capture's warm-up passes accumulate gradients into the parameters: they are cleared
  afterwards, so the first optimizer step sees only its own batch;
- autocast must not cache its weight casts across the capture (PyTorch's documented
  requirement), so :func:`magicvideo.training.trainer.autocast` turns the cache off when graphs
  are on; the casts are recorded in the graph and re-read the weights on every replay;
- on a CPU, or if capture fails, the trainer runs eagerly and says so once.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import torch
from torch import nn


class _Denoise(nn.Module):
    """``unet(noisy, t, cond, fps=fps).sample`` with tensors only (what a graphed callable takes)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, noisy, t, cond, fps):
        return self.unet(noisy, t, cond, fps=fps).sample


class GraphedDenoiser:
    """Calls ``unet(sample, timestep, cond, fps=fps)`` like the U-Net (the result has ``.sample``),
    through CUDA graphs of its forward and backward once captured (see the module docstring)."""

    def __init__(self, unet: nn.Module, params: list[nn.Parameter] | None = None):
        self.unet = unet
        self.params = list(params) if params is not None else [p for p in unet.parameters() if p.requires_grad]
        self._graphed: nn.Module | None = None
        self._key: tuple | None = None
        self.failed: str | None = None     # why capture failed (then every call runs eagerly)
        self.eager_calls = 0               # calls that did not replay the graphs

    @staticmethod
    def _signature(*tensors: torch.Tensor) -> tuple:
        return tuple((tuple(x.shape), x.dtype, x.device) for x in tensors)

    def _capture(self, noisy, t, cond, fps) -> None:
        args = tuple(x.detach().clone() for x in (noisy, t, cond, fps))
        try:
            self._graphed = torch.cuda.make_graphed_callables(_Denoise(self.unet), args)
        except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager training
            self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
            warnings.warn(f"CUDA graph capture of the denoiser failed ({self.failed}); training eagerly", stacklevel=3)
        for p in self.params:  # the capture's warm-up passes accumulated gradients
            p.grad = None

    def __call__(self, sample, timestep, encoder_hidden_states, fps=None):
        eager = lambda: self.unet(sample, timestep, encoder_hidden_states, fps=fps)  # noqa: E731
        if (sample.device.type != "cuda" or self.failed or not torch.is_grad_enabled() or not self.unet.training
                or not all(isinstance(x, torch.Tensor) for x in (timestep, fps))):
            self.eager_calls += 1
            return eager()
        key = self._signature(sample, timestep, encoder_hidden_states, fps)
        if self._key is None:
            self._key = key
            self._capture(sample, timestep, encoder_hidden_states, fps)
            if self.failed:
                self.eager_calls += 1
                return eager()
        if key != self._key:  # one set of shapes is captured; any other runs eagerly
            self.eager_calls += 1
            return eager()
        return SimpleNamespace(sample=self._graphed(sample, timestep, encoder_hidden_states, fps))
