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
def kill_actor_once(monkeypatch, tmp_path):
    """Fault injection for the generation actors: ``arm(n)`` makes the first actor that starts a
    batch after ``n`` finished batches SIGKILL itself, once (its batch is lost with it); returns the
    marker file, which that actor removes. The flow's actors are ``flows.generation.GenerationWorker``
    looked up when they start, replaced here by a subclass; Ray ships the class by value."""
    import flows.generation

    marker = tmp_path / "kill_actor_once"
    base = flows.generation.GenerationWorker

    def kill_if_due(batches_done: int) -> None:
        try:
            due = batches_done >= int(marker.read_text().strip() or 0)
        except (OSError, ValueError):  # not armed, or another actor fired it
            return
        if due:
            try:
                marker.unlink()  # only one actor wins the race
            except FileNotFoundError:
                return
            os.kill(os.getpid(), 9)

    class KillOnceWorker(base):
        def generate(self, checkpoint, items, sampler, output_root):
            kill_if_due(self.batches_done)
            return super().generate(checkpoint, items, sampler, output_root)

    def arm(after_batches: int) -> Path:
        marker.write_text(str(after_batches))
        monkeypatch.setattr(flows.generation, "GenerationWorker", KillOnceWorker)
        return marker

    return arm


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
def _tiny_pipelines():
    """The tiny random pipelines, built once per session and number of key frames."""
    from magicvideo.build import build_pipeline, load_model_config

    built = {}

    def get(num_frames: int):
        if num_frames not in built:
            cfg = load_model_config("tiny").model_copy(update={"num_frames": num_frames})
            built[num_frames] = build_pipeline(cfg, weights="random", seed=0)
            built[num_frames].set_progress_bar_config(disable=True)
        return built[num_frames]

    return get


def _shared(pipe):
    """Hand a session-wide pipeline to one test; its scheduler is put back afterwards, whether the
    test passed or failed (``set_scheduler`` replaces it)."""
    scheduler = pipe.scheduler
    try:
        yield pipe
    finally:
        pipe.scheduler = scheduler


@pytest.fixture
def tiny_pipeline(_tiny_pipelines):
    """The tiny random pipeline of configs/model/tiny.yaml (16 key frames)."""
    yield from _shared(_tiny_pipelines(16))


@pytest.fixture
def tiny_pipeline_4f(_tiny_pipelines):
    """The tiny random pipeline with 4 key frames: the same code as 16 frames, a quarter of the work."""
    yield from _shared(_tiny_pipelines(4))
