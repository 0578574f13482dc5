"""Shared fixtures. Model fixtures build tiny random models (no network, no weights)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import pytest
import torch


def use_ray_token_auth() -> None:
    """Configure Ray's token authentication (Ray 2.60's default) with a token kept in a temporary
    folder, unless the environment already sets one. Ray reads these settings when it is imported:
    call this before ``import ray``."""
    if not (os.environ.get("RAY_AUTH_TOKEN_PATH") or os.environ.get("RAY_AUTH_TOKEN")):
        token = Path(tempfile.mkdtemp(prefix="ray_auth_")) / "token"
        token.write_text(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    os.environ.setdefault("RAY_AUTH_MODE", "token")

TINY_UNET2D = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=1,
    norm_num_groups=8,
    cross_attention_dim=16,
    attention_head_dim=4,
)


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op thread is as fast, and does not spin against other processes
    sharing the machine's cores (test files opt in with ``pytestmark``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_unet2d():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(**TINY_UNET2D).eval()


@pytest.fixture(scope="session")
def tiny_pipeline():
    from magicvideo.build import build_pipeline

    pipe = build_pipeline("tiny", weights="random", seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe
