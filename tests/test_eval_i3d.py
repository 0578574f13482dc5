"""Native Inception-I3D: pytorch-i3d key names load strictly; forward equals a plain 'SAME'-padding pass."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation import I3DExtractor, InceptionI3d, MissingWeightsError, load_i3d
from evaluation.i3d import output_frames

# pytorch-i3d's InceptionI3d: (in channels, [b0, b1a, b1b, b2a, b2b, b3b]) of each Mixed block
MIXED = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (128 + 192 + 96 + 64, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (192 + 208 + 48 + 64, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (160 + 224 + 64 + 64, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (128 + 256 + 64 + 64, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (112 + 288 + 64 + 64, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (256 + 320 + 128 + 128, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (256 + 320 + 128 + 128, [384, 192, 384, 48, 128, 128]),
}


def reference_shapes() -> dict[str, tuple]:
    """Key -> shape of a pytorch-i3d Kinetics-400 state dict, written from its published layout."""
    convs = {"Conv3d_1a_7x7": (64, 3, 7, 7, 7), "Conv3d_2b_1x1": (64, 64, 1, 1, 1), "Conv3d_2c_3x3": (192, 64, 3, 3, 3)}
    for name, (cin, c) in MIXED.items():
        convs[f"{name}.b0"] = (c[0], cin, 1, 1, 1)
        convs[f"{name}.b1a"] = (c[1], cin, 1, 1, 1)
        convs[f"{name}.b1b"] = (c[2], c[1], 3, 3, 3)
        convs[f"{name}.b2a"] = (c[3], cin, 1, 1, 1)
        convs[f"{name}.b2b"] = (c[4], c[3], 3, 3, 3)
        convs[f"{name}.b3b"] = (c[5], cin, 1, 1, 1)
    shapes = {}
    for unit, w in convs.items():
        shapes[f"{unit}.conv3d.weight"] = w
        for b in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{unit}.bn.{b}"] = (w[0],)
    shapes["logits.conv3d.weight"] = (400, 1024, 1, 1, 1)
    shapes["logits.conv3d.bias"] = (400,)
    return shapes


def random_state(seed=0, with_counters=False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in reference_shapes().items():
        if k.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        elif k.endswith("conv3d.weight"):
            fan_in = int(np.prod(shape[1:]))
            t = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif k.endswith("bn.weight"):
            t = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.1 * torch.randn(shape, generator=g)
        state[k] = t
        if with_counters and k.endswith("running_var"):
            state[k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    return state


@pytest.mark.parametrize("with_counters,prefix", [(False, ""), (True, ""), (True, "module.")])
def test_pytorch_i3d_state_dict_loads_strictly(tmp_path, with_counters, prefix):
    state = {prefix + k: v for k, v in random_state(with_counters=with_counters).items()}
    torch.save(state, tmp_path / "i3d_pretrained_400.pt")
    model = load_i3d(tmp_path / "i3d_pretrained_400.pt")
    ours = model.state_dict()
    for k, v in state.items():
        assert torch.equal(ours[k.removeprefix("module.")], v), k
    assert {k for k in ours if not k.endswith("num_batches_tracked")} == set(reference_shapes())


def test_unknown_or_missing_keys_fail(tmp_path):
    state = random_state()
    state["Mixed_3b.b4.conv3d.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_i3d(tmp_path / "bad.pt")


def plain_forward(model: InceptionI3d, x: torch.Tensor) -> torch.Tensor:
    """pytorch-i3d semantics written out: F.pad to 'SAME' before every conv and pool, then logits mean over time."""

    def pad(x, k, s):
        p = []
        for size, kk, ss in zip(x.shape[2:], k, s):
            total = max(kk - (ss if size % ss == 0 else size % ss), 0)
            p.append((total // 2, total - total // 2))
        return F.pad(x, [v for a, b in reversed(p) for v in (a, b)])

    def unit(u, x):
        x = F.conv3d(pad(x, u.conv3d.kernel_size, u.conv3d.stride), u.conv3d.weight, u.conv3d.bias, u.conv3d.stride)
        if hasattr(u, "bn"):
            x = F.batch_norm(x, u.bn.running_mean, u.bn.running_var, u.bn.weight, u.bn.bias, False, 0.0, u.bn.eps)
        return F.relu(x) if u.relu else x

    def pool(x, k, s):
        return F.max_pool3d(pad(x, k, s), k, s)

    def mixed(m, x):
        return torch.cat([unit(m.b0, x), unit(m.b1b, unit(m.b1a, x)), unit(m.b2b, unit(m.b2a, x)),
                          unit(m.b3b, pool(x, (3, 3, 3), (1, 1, 1)))], 1)

    x = unit(model.Conv3d_1a_7x7, x)
    x = pool(x, (1, 3, 3), (1, 2, 2))
    x = unit(model.Conv3d_2c_3x3, unit(model.Conv3d_2b_1x1, x))
    x = pool(x, (1, 3, 3), (1, 2, 2))
    x = mixed(model.Mixed_3c, mixed(model.Mixed_3b, x))
    x = pool(x, (3, 3, 3), (2, 2, 2))
    for n in ("4b", "4c", "4d", "4e", "4f"):
        x = mixed(getattr(model, f"Mixed_{n}"), x)
    x = pool(x, (2, 2, 2), (2, 2, 2))
    x = mixed(model.Mixed_5c, mixed(model.Mixed_5b, x))
    x = unit(model.logits, F.avg_pool3d(x, (2, 7, 7), (1, 1, 1)))
    return x.squeeze(3).squeeze(3).mean(2)


@pytest.fixture(scope="module")
def model():
    m = InceptionI3d()
    m.load_state_dict(random_state(1), strict=False)
    return m.eval()


@torch.no_grad()
@pytest.mark.slow
def test_forward_equals_plain_same_padding_and_fused_bn(model):
    import copy

    # 11 frames: odd sizes give asymmetric 'SAME' pads in time (the expensive test: three forwards)
    x = torch.rand(1, 3, 11, 224, 224, generator=torch.Generator().manual_seed(11)) * 2 - 1
    ours, ref = model(x), plain_forward(model, x)
    assert ours.shape == (1, 400)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert output_frames(11) == 1 and output_frames(32) == 3
    fused = copy.deepcopy(model).fuse_batchnorm_()
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    torch.testing.assert_close(fused(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_input_checks(model):
    with pytest.raises(ValueError, match="at least 10 frames"):
        model(torch.zeros(1, 3, 9, 224, 224))
    with pytest.raises(ValueError, match="224x224"):
        model(torch.zeros(1, 3, 16, 256, 256))


class Recorder(torch.nn.Module):
    """Stands in for the network: records its input, returns 400 features derived from it."""

    def forward(self, x):
        self.seen = x
        return x.mean(dim=(1, 3, 4))[:, :1].repeat(1, 400).double()


@torch.no_grad()
def test_extractor_feeds_videogpt_input():
    from evaluation.preprocess import i3d_input

    videos = torch.randint(0, 256, (2, 10, 120, 160, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rec = Recorder()
    feats = I3DExtractor(model=rec)(videos)
    assert feats.shape == (2, 400) and feats.dtype == torch.float32
    assert rec.seen.shape == (2, 3, 10, 224, 224)
    torch.testing.assert_close(rec.seen, i3d_input(videos))
    with pytest.raises(ValueError, match="at least 10 frames"):
        I3DExtractor(model=rec)(videos[:, :9])


def test_missing_weights_error_names_file_source_and_keys(monkeypatch, tmp_path):
    monkeypatch.delenv("MAGICVIDEO_I3D_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError) as e:
        I3DExtractor()
    msg = str(e.value)
    for part in ("i3d_pretrained_400.pt", "VideoGPT", "metrics.fvd.weights", "MAGICVIDEO_I3D_WEIGHTS"):
        assert part in msg
    monkeypatch.setenv("MAGICVIDEO_I3D_WEIGHTS", str(tmp_path / "nope.pt"))
    with pytest.raises(MissingWeightsError, match="nope.pt"):
        I3DExtractor()
