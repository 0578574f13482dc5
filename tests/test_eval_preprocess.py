"""Preprocessing: layouts, resize protocols, value ranges, frame checks."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation import preprocess as pp


def vids(b=2, t=3, h=30, w=40, seed=0):
    return torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_short_side_crop_is_videogpt_preprocess():
    v = vids(h=30, w=50)
    x = pp.i3d_input(v, size=24)
    assert x.shape == (2, 3, 3, 24, 24)
    # VideoGPT preprocess_single, written out for frame (0, 0): /255, resize short side, crop, -0.5, *2
    frame = v[0, 0].permute(2, 0, 1)[None].float() / 255
    target = (24, math.ceil(50 * 24 / 30))
    r = F.interpolate(frame, size=target, mode="bilinear", align_corners=False)
    left = (target[1] - 24) // 2
    expected = (r[..., :, left : left + 24] - 0.5) * 2
    torch.testing.assert_close(x[0, :, 0], expected[0])
    assert x.min() >= -1 and x.max() <= 1


def test_resize_modes():
    x = torch.rand(2, 3, 30, 50)
    assert pp.resize_frames(x, 16, "squash").shape[-2:] == (16, 16)
    assert pp.resize_frames(x, 16, "short_side_crop").shape[-2:] == (16, 16)
    c = pp.resize_frames(x, 0, "center_crop")
    torch.testing.assert_close(c, x[..., :, 10:40])
    assert pp.resize_frames(x, 16, "none") is x
    with pytest.raises(ValueError, match="resize mode"):
        pp.resize_frames(x, 16, "stretch")


def test_stylegan_layout_and_grayscale():
    v = vids()
    x = pp.stylegan_i3d_input(v)
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 3, 30, 40)
    torch.testing.assert_close(x, v.permute(0, 4, 1, 2, 3))
    g = pp.stylegan_i3d_input(v[..., :1])
    assert torch.equal(g[:, 0], g[:, 2])


def test_inception_input_is_every_frame():
    v = vids(b=2, t=3)
    x = pp.inception_input(v)
    assert x.shape == (6, 3, 30, 40) and x.dtype == torch.uint8
    torch.testing.assert_close(x[4], v[1, 1].permute(2, 0, 1))


def test_float_to_uint8_is_stylegan_v():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.003, 0.999, 1.0, 2.0])
    # StyleGAN-V: (x * 127.5 + 128).clamp(0, 255).to(uint8), i.e. truncation of x*127.5+128
    assert pp.float_to_uint8(x).tolist() == [0, 0, 64, 128, 128, 255, 255, 255]
    y = torch.linspace(-1, 1, 1001)
    assert torch.equal(pp.float_to_uint8(y), torch.floor(y * 127.5 + 128).clamp(0, 255).to(torch.uint8))


def test_layout_and_frame_checks():
    with pytest.raises(ValueError, match="uint8"):
        pp.as_videos(torch.zeros(1, 2, 4, 4, 3))
    with pytest.raises(ValueError, match="channels last"):
        pp.as_videos(torch.zeros(1, 2, 3, 4, 4, dtype=torch.uint8))
    assert pp.as_videos(np.zeros((1, 2, 4, 4, 3), np.uint8)).shape == (1, 2, 4, 4, 3)
    with pytest.raises(ValueError, match="exactly 16"):
        pp.check_frames(vids(t=15), num_frames=16)
    with pytest.raises(ValueError, match="at least 10"):
        pp.check_frames(vids(t=9), min_frames=10)
