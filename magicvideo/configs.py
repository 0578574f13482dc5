"""YAML configs validated by pydantic models, with errors that name the offending key's path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)

#: Where the named configs live (`configs/` at the repository root); MAGICVIDEO_CONFIGS overrides.
CONFIG_ROOT = Path(os.environ.get("MAGICVIDEO_CONFIGS", Path(__file__).resolve().parents[1] / "configs"))


class ConfigError(ValueError):
    """A config file that is missing, malformed, or has a bad key or value."""


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def resolve_config_path(name_or_path: str | Path, kind: str) -> Path:
    """A path as given if it exists, else the named config ``configs/<kind>/<name>.yaml``."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    named = CONFIG_ROOT / kind / f"{name_or_path}.yaml"
    if not named.is_file():
        available = sorted(q.stem for q in (CONFIG_ROOT / kind).glob("*.yaml"))
        raise ConfigError(f"no {kind} config named {name_or_path!r} (available: {', '.join(available) or 'none'})")
    return named


def read_yaml(path: Path, overrides: dict | None = None) -> dict:
    """The YAML mapping at `path` with dotted-key `overrides` applied (``{"optim.lr": 1e-3}``
    sets ``optim: {lr: 0.001}``); malformed YAML or an override through a non-section fails with
    the file's name."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    return apply_overrides(data, overrides, source=str(path))


def apply_overrides(data: dict, overrides: dict | None, source: str = "config") -> dict:
    """Set dotted-key `overrides` in the nested mapping `data` (in place; returned): ``{"optim.lr":
    1e-3}`` sets ``optim: {lr: 0.001}``, creating sections as needed. An override through a value
    that is not a section fails, naming `source`."""
    for key, value in (overrides or {}).items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(f"{source}: cannot set {key}: {part} is not a section")
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


def load_config(name_or_path: str | Path, model: type[T], kind: str, overrides: dict | None = None) -> T:
    """Load and validate a YAML config; any error names the file and the key's path."""
    path = resolve_config_path(name_or_path, kind)
    return validate_config(read_yaml(path, overrides), model, source=str(path))


def validate_config(data: object, model: type[T], source: str = "config") -> T:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {'; '.join(describe_error(err['loc'], err['msg']) for err in exc.errors())}") from None


def describe_error(loc: tuple | list, msg: str) -> str:
    """One pydantic error as ``key.path: message``. A check across keys (a model validator, whose
    location is the section itself) names its keys in the message: no ``<root>`` and no "Value
    error," prefix then."""
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    where = ".".join(str(p) for p in loc)
    return f"{where}: {msg}" if where else msg
