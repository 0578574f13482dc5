"""Quantized inference (issue 16.4): torchao int8 on the U-Net's linear layers of a tiny pipeline."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

from magicvideo.quantize import MIN_FEATURES, quantizable, quantize_module, quantize_pipeline

pytest.importorskip("torchao")


@pytest.fixture(scope="module")
def pipe():
    from magicvideo.build import build_pipeline

    p = build_pipeline("tiny", weights="random", seed=0)
    p.set_progress_bar_config(disable=True)
    return p


def _run(p):
    return p(["a red circle moving left"], seed=[3], num_inference_steps=2, guidance_scale=1.0,
             output_type="pt").frames.float().numpy()  # fmt: skip


@pytest.mark.parametrize("mode", ["int8_weight_only", "int8_dynamic"])
@pytest.mark.slow
def test_quantized_unet_holds_fewer_bytes_and_stays_close(pipe, mode):
    wide = [n for n, m in pipe.unet.named_modules() if quantizable(m, n)]
    assert wide, "the tiny U-Net has linear layers wide enough to quantize"
    ref = _run(pipe)
    q = copy.deepcopy(pipe)
    info = quantize_pipeline(q, mode)
    assert info["layers"] == len(wide)
    assert info["bytes_after"] < 0.35 * info["bytes_before"]  # int8 + per-channel scales against fp32
    out = _run(q)
    assert out.shape == ref.shape
    err = np.abs(out - ref).mean()
    assert 0 < err < 0.05, err  # changed, but only by quantization noise (outputs in [0, 1])
    assert all(not quantizable(m) or type(m.weight) is not torch.nn.Parameter for m in q.unet.modules())


def test_narrow_layers_and_convolutions_stay(pipe):
    m = torch.nn.Sequential(torch.nn.Linear(MIN_FEATURES - 1, 64), torch.nn.Conv2d(4, 4, 3),
                            torch.nn.Linear(64, 64)).eval()  # fmt: skip
    info = quantize_module(m, "int8_weight_only")
    assert info["layers"] == 1
    assert type(m[0].weight) is torch.nn.Parameter and type(m[1].weight) is torch.nn.Parameter
    assert type(m[2].weight) is not torch.nn.Parameter


def test_errors(pipe, monkeypatch):
    assert quantize_pipeline(pipe, None) is None
    with pytest.raises(ValueError, match="unknown mode"):
        quantize_module(torch.nn.Linear(64, 64).eval(), "int4")
    with pytest.raises(ValueError, match="inference"):
        quantize_module(torch.nn.Linear(64, 64).train(), "int8_weight_only")
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)  # as if torchao were not installed
    with pytest.raises(ImportError, match="needs torchao"):
        quantize_module(torch.nn.Linear(64, 64).eval(), "int8_weight_only")


def test_eval_flow_quantizes_in_the_worker_and_addresses_only_when_set(tmp_path, pipe):
    pytest.importorskip("ray")
    from flows.config import SamplerSettings
    from flows.generation import GenerationWorker
    from flows.store import sample_address

    plain = SamplerSettings().model_dump(exclude_none=True)
    assert "quantize" not in plain  # the addresses of unquantized samples did not change
    q = SamplerSettings(quantize="int8_weight_only").model_dump(exclude_none=True)
    assert sample_address("c", "p", 0, 1, plain) != sample_address("c", "p", 0, 1, q)
    with pytest.raises(ValueError):
        SamplerSettings(quantize="int4")

    pipe.save_pretrained(tmp_path / "ckpt")
    w = GenerationWorker("cpu")
    w.load(str(tmp_path / "ckpt"), "ddim")
    assert all(type(m.weight) is torch.nn.Parameter for m in w.pipe.unet.modules() if quantizable(m))
    w.load(str(tmp_path / "ckpt"), "ddim", "int8_weight_only")  # another mode: reloaded and quantized
    assert w.quantize == "int8_weight_only"
    assert all(type(m.weight) is not torch.nn.Parameter for m in w.pipe.unet.modules() if quantizable(m))
