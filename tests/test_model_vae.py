"""VideoVAE: starts as the image VAE, chunked decoding equals unchunked, temporal layers are directed."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL

from magicvideo import VideoAutoencoderKL

VAE = dict(
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(8, 16, 16),
    layers_per_block=1,
    norm_num_groups=4,
    latent_channels=4,
)


@pytest.fixture
def image_vae():
    torch.manual_seed(0)
    return AutoencoderKL(**VAE).eval()


def test_video_vae_decodes_exactly_as_the_image_vae_at_init(image_vae):
    video = VideoAutoencoderKL.from_image_vae(image_vae, temporal_layers=2, temporal_head_dim=8).eval()
    z = torch.randn(2, 4, 5, 4, 4)
    with torch.no_grad():
        out = video.decode_video(z, chunk_size=3)
        ref = torch.stack([image_vae.decode(z[:, :, i]).sample for i in range(5)], dim=2)
    assert out.shape == (2, 3, 5, 16, 16)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_chunked_decoding_equals_unchunked_and_is_directed(image_vae):
    video = VideoAutoencoderKL.from_image_vae(image_vae, temporal_layers=2, temporal_head_dim=8).eval()
    with torch.no_grad():
        for layer in video.temporal:
            torch.nn.init.normal_(layer.attn.to_out.weight, std=0.2)
        z = torch.randn(1, 4, 6, 4, 4)
        whole = video.decode_video(z, chunk_size=6)
        chunked = video.decode_video(z, chunk_size=4)
        torch.testing.assert_close(whole, chunked, atol=1e-5, rtol=1e-5)
        z2 = z.clone()
        z2[:, :, 3] += 1.0
        moved = video.decode_video(z2, chunk_size=2)
    assert torch.equal(moved[:, :, :3], whole[:, :, :3])  # frames before 3 are unaffected
    assert (moved[:, :, 4:] - whole[:, :, 4:]).abs().max() > 1e-4  # later frames see frame 3


def test_encode_video_is_frame_wise(image_vae):
    video = VideoAutoencoderKL.from_image_vae(image_vae)
    x = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = video.encode_video(x, chunk_size=2)
        ref = image_vae.encode(x[:, :, 1]).latent_dist.mode()
    assert z.shape == (2, 4, 3, 4, 4)
    torch.testing.assert_close(z[:, :, 1], ref, atol=1e-5, rtol=1e-5)


def test_save_load_round_trip(image_vae, tmp_path):
    video = VideoAutoencoderKL.from_image_vae(image_vae, temporal_layers=1, temporal_head_dim=8)
    video.save_pretrained(tmp_path)
    loaded = VideoAutoencoderKL.from_pretrained(tmp_path)
    assert len(loaded.temporal) == 1
    a, b = video.state_dict(), loaded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_errors(image_vae):
    video = VideoAutoencoderKL.from_image_vae(image_vae)
    with pytest.raises(ValueError, match="latents have 3 channels"):
        video.decode_video(torch.randn(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(batch, channels, frames, height, width\)"):
        video.decode_video(torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError, match="temporal_layers must be in 0..4"):
        VideoAutoencoderKL(**VAE, temporal_layers=5)


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_gradients(image_vae):
    """enable_gradient_checkpointing() recomputes decode_video's frame-local stages in the backward
    pass: same loss and temporal-layer gradients, and the activations are not all kept."""
    video = VideoAutoencoderKL.from_image_vae(image_vae, temporal_layers=2, temporal_head_dim=8).double()
    for layer in video.temporal:
        torch.nn.init.normal_(layer.attn.to_out.weight, std=0.2)
    z = torch.randn(2, 4, 5, 4, 4, dtype=torch.float64)
    calls = []
    video.decoder.up_blocks[0].register_forward_pre_hook(lambda *args: calls.append(1))

    def grads():
        calls.clear()
        video.zero_grad(set_to_none=True)
        loss = video.decode_video(z, chunk_size=3).square().mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in video.temporal.parameters()]

    plain_loss, plain = grads()
    assert len(calls) == 4  # 10 frames in chunks of 3: once each
    video.enable_gradient_checkpointing()
    assert video.decoder.gradient_checkpointing
    ckpt_loss, ckpt = grads()
    assert len(calls) == 8  # and once more each in the backward pass
    assert torch.equal(plain_loss, ckpt_loss)
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert any(g.abs().sum() > 0 for g in ckpt)
