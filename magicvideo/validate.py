"""Checks that run before anything starts: each finds a user's mistake in milliseconds and says it in
one line (``magicvideo`` prints it and exits with code 2), instead of letting it surface as a
traceback after a minute of start-up.

- :func:`check_pipeline_folder`: a saved ``MagicVideoPipeline`` folder (``model_index.json``, each
  component's subfolder and config, every ``.safetensors`` file's header and length).
- :func:`check_stages`: that a pipeline folder has the components that the requested cascade
  stages read (``interpolate`` needs ``interpolation/`` and ``image_encoder/``, ``upsample``
  needs ``upsampler/``).
- :func:`check_model_folder`: one model's ``save_pretrained`` folder (the ``magicvideo upsample``
  checkpoint).
- :func:`read_text`: a text file as UTF-8; an error names the file and the byte offset.
- argparse types for numbers (:func:`positive_int`, :func:`non_negative_int`, :func:`positive_float`,
  :func:`non_negative_float`) and for text arguments (:func:`utf8_text`).

Plain Python (plus ``safetensors``' header reader): no torch, Prefect, Ray or MLflow import.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


class InputError(ValueError):
    """A file or value the user gave is unusable; the message is one line that names it."""


# ------------------------------------------------------------------------------------ text input
def utf8_offset_error(exc: UnicodeDecodeError, where: str) -> InputError:
    bad = exc.object[exc.start : exc.start + 4]
    return InputError(f"{where}: not UTF-8 text: byte offset {exc.start} (0x{bad[:1].hex()}; {exc.reason}); "
                      "save it as UTF-8")


def read_text(path: str | Path) -> str:
    """The file's text as UTF-8 (a leading BOM dropped); a non-UTF-8 file fails naming the file and
    the byte offset of the first invalid byte."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise utf8_offset_error(exc, str(path)) from None


def utf8_text(value: str) -> str:
    """argparse type: a text argument that is valid UTF-8 (the shell passes undecodable bytes as
    surrogate escapes, which the tokenizer later rejects with a ``TypeError``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = value.encode("utf-8", "surrogateescape")
        offset = len(value[: exc.start].encode("utf-8", "surrogateescape"))
        raise argparse.ArgumentTypeError(
            f"not UTF-8 text: byte offset {offset} (0x{raw[offset:offset + 1].hex()}) of {value!r}") from None
    return value


# -------------------------------------------------------------------------------------- numbers
def _number(kind, low: float, inclusive: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}")
        return value

    parse.__name__ = f"{what.replace(' ', '_')}_{kind.__name__}"  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, True, ">= 1")
non_negative_int = _number(int, 0, True, ">= 0")
positive_float = _number(float, 0.0, False, "> 0")
non_negative_float = _number(float, 0.0, True, ">= 0")


# ------------------------------------------------------------------------------------ checkpoints
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))


def _json(path: Path, what: str) -> object:
    try:
        return json.loads(read_text(path))
    except FileNotFoundError:
        raise InputError(f"{what}: missing {path.name} ({path})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def check_safetensors(path: Path) -> int:
    """The file's tensor count; an :class:`InputError` when its header is unreadable or the file
    is shorter than the header says (a truncated copy)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return len(f.keys())
    except (SafetensorError, OSError) as exc:
        size = path.stat().st_size if path.exists() else 0
        raise InputError(f"{path}: unreadable safetensors file ({size:,} bytes; {str(exc).strip()}); "
                         "truncated or corrupt: copy or save it again") from None


def check_pipeline_folder(path: str | Path) -> dict:
    """Check a saved ``MagicVideoPipeline`` folder (``save_pretrained``) without loading it: the
    ``model_index.json``, each component's subfolder with its config (a tokenizer's vocabulary, a
    scheduler's config, a model's ``config.json`` and weights), and every ``.safetensors`` file's
    header and length. Returns ``{component: number of tensors}``; raises :class:`InputError`."""
    root = Path(path)
    what = f"checkpoint {path}"
    if not root.is_dir():
        raise InputError(f"{what}: pipeline folder not found")
    index = _json(root / "model_index.json", f"{what} is not a saved MagicVideoPipeline folder")
    if not isinstance(index, dict):
        raise InputError(f"{what}: model_index.json is not a mapping")
    found = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[1] is None:
            continue
        sub, cls = root / name, str(spec[1])
        part = f"{what}, component {name} ({cls})"
        if not sub.is_dir():
            raise InputError(f"{part}: subfolder missing ({sub})")
        if "Tokenizer" in cls:
            if not any(all((sub / f).is_file() for f in files) for files in TOKENIZER_FILES):
                raise InputError(f"{part}: no tokenizer.json, nor vocab.json + merges.txt in {sub}")
            if (sub / "tokenizer_config.json").exists():
                _json(sub / "tokenizer_config.json", part)
        elif "Scheduler" in cls:
            _json(sub / "scheduler_config.json", part)
        else:
            _json(sub / "config.json", part)
            weights = sorted(sub.rglob("*.safetensors"))
            if not weights:
                raise InputError(f"{part}: no .safetensors weights in {sub}")
            found[name] = sum(check_safetensors(w) for w in weights)
    if not found:
        raise InputError(f"{what}: model_index.json names no model components")
    return found


#: where each optional stage's components come from (the message of :func:`check_stages`)
STAGE_HINTS = {
    "interpolate": "magicvideo train shapes' interpolation stage writes them, or "
                   "magicvideo.pipeline.add_interpolation",
    "upsample": "scripts/train_upsampler.py or magicvideo train shapes' upsample stage writes it, or "
                "magicvideo.pipeline.add_upsampler",
}


def check_stages(path: str | Path, stages) -> None:
    """That the pipeline folder at `path` holds every component that `stages` (names or a
    comma-separated string, :func:`magicvideo.stages.resolve_stages`) read
    (:data:`magicvideo.stages.STAGE_COMPONENTS`): named in ``model_index.json`` with a class, and its
    subfolder present. Raises :class:`InputError` naming the checkpoint, the stage and the missing
    components (a bad stage list too). The files themselves are :func:`check_pipeline_folder`'s."""
    from magicvideo.stages import STAGE_COMPONENTS, resolve_stages

    try:
        names = resolve_stages(stages)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    root = Path(path)
    index = _json(root / "model_index.json", f"checkpoint {path} is not a saved MagicVideoPipeline folder")
    for stage in names:
        missing = [c for c in STAGE_COMPONENTS[stage]
                   if not (isinstance(index, dict) and isinstance(index.get(c), list) and len(index[c]) == 2
                           and index[c][1] is not None and (root / c).is_dir())]
        if missing:
            hint = STAGE_HINTS.get(stage, "")
            raise InputError(f"checkpoint {path} has no {stage!r} stage: it needs the component(s) "
                             f"{', '.join(missing)} (model_index.json entry and subfolder)"
                             + (f"; {hint}" if hint else ""))


def check_model_folder(path: str | Path, class_name: str | None = None, hint: str = "") -> int:
    """Check a model's ``save_pretrained`` folder without loading it: ``config.json`` (whose
    ``_class_name`` is `class_name`, when given) and its ``.safetensors`` weights. Returns the number
    of tensors; raises :class:`InputError` (`hint` says where such a folder comes from)."""
    root = Path(path)
    what = f"checkpoint {path}"
    tail = f"; {hint}" if hint else ""
    if not root.is_dir():
        raise InputError(f"{what}: {class_name or 'model'} folder not found{tail}")
    config = _json(root / "config.json", what)
    if class_name is not None and (not isinstance(config, dict) or config.get("_class_name") != class_name):
        found = config.get("_class_name") if isinstance(config, dict) else None
        raise InputError(f"{what}: not a {class_name} folder (config.json names {found!r}){tail}")
    weights = sorted(root.glob("*.safetensors"))
    if not weights:
        raise InputError(f"{what}: no .safetensors weights in {root}{tail}")
    return sum(check_safetensors(w) for w in weights)
