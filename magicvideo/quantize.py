"""Quantized inference of the key-frame U-Net (Magic 1-For-1's memory lever, issue 16.4).

Magic 1-For-1 quantizes the transformer blocks of its video model to int8 (and int4). Here the
same is applied to this project's 3D U-Net through torchao (``quantize_``), on the layers where
the U-Net's weights and matmuls are: every ``nn.Linear`` of the attention blocks (spatial and
directed temporal attention, their feed-forwards, the cross-attention projections) and the
timestep / FPS embeddings. Convolutions stay in their dtype: torchao's int8 configs target linear
layers, and the U-Net's ResNet convolutions are not where an int8 weight pays.

Modes:

- ``int8_weight_only``: int8 weights, one scale per output channel, activations in the model's
  dtype. Halves (bf16) or quarters (fp32) the Linear weights' memory; matmuls dequantize on the fly.
- ``int8_dynamic``: int8 weights and per-token int8 activations quantized at run time (int8
  matmuls where the backend has them: Hopper GPUs; on a CPU it is mostly a memory saving).

torchao is an optional dependency (``pip install torchao``; the ``quant`` extra). Everything else
in the project works without it; asking for a mode without it installed is one clear error.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Mode = Literal["int8_weight_only", "int8_dynamic"]
MODES: tuple[str, ...] = ("int8_weight_only", "int8_dynamic")

#: Linear layers narrower than this stay unquantized: torchao's int8 kernels need a minimal width,
#: and a 16-wide projection of the tiny test model saves nothing.
MIN_FEATURES = 16


def _config(mode: str):
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
    except ImportError as exc:
        raise ImportError(f"quantize={mode!r} needs torchao (pip install torchao, or the project's 'quant' extra): "
                          f"{exc}") from None  # fmt: skip
    if mode == "int8_weight_only":
        return Int8WeightOnlyConfig()
    if mode == "int8_dynamic":
        return Int8DynamicActivationInt8WeightConfig()
    raise ValueError(f"quantize: unknown mode {mode!r}; modes are {', '.join(MODES)}")


def quantizable(module: nn.Module, fqn: str = "") -> bool:
    """Which layers :func:`quantize_module` converts: ``nn.Linear`` at least ``MIN_FEATURES`` wide."""
    return isinstance(module, nn.Linear) and min(module.in_features, module.out_features) >= MIN_FEATURES


def quantize_module(module: nn.Module, mode: str) -> dict[str, int]:
    """Quantize `module`'s :func:`quantizable` layers in place; returns the counts and the weight
    bytes before and after (what the quantized layers hold; the rest is unchanged)."""
    cfg = _config(mode)  # fails before touching the module
    if module.training:
        raise ValueError("quantize inference modules only (call .eval() first)")
    layers = [m for name, m in module.named_modules() if quantizable(m, name)]
    if not layers:
        return {"layers": 0, "bytes_before": 0, "bytes_after": 0}
    before = sum(m.weight.numel() * m.weight.element_size() for m in layers)
    from torchao.quantization import quantize_

    quantize_(module, cfg, filter_fn=quantizable)
    after = sum(_tensor_bytes(m.weight) for m in layers)
    return {"layers": len(layers), "bytes_before": before, "bytes_after": after}


def _tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a (possibly torchao-subclassed) weight holds: the sum over its inner plain tensors."""
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is None or type(t) is torch.Tensor or type(t) is nn.Parameter:
        return t.numel() * t.element_size()
    names, _ = flatten()
    return sum(_tensor_bytes(getattr(t, n)) for n in names if isinstance(getattr(t, n, None), torch.Tensor))


def quantize_pipeline(pipe, mode: str | None) -> dict[str, int] | None:
    """Quantize a ``MagicVideoPipeline``'s U-Net in place (``mode=None``: leave it). The text
    encoder and VAE stay as they are: the U-Net runs once per step per clip, they run once."""
    if mode is None:
        return None
    pipe.unet.eval()
    return quantize_module(pipe.unet, mode)
