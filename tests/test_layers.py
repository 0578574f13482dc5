"""The layers' one-way dependencies (ARCHITECTURE.md), read from the source: ``flows -> evaluation
-> magicvideo``; ``magicvideo`` and ``evaluation`` never import Prefect, Ray or MLflow, and
``evaluation`` takes models from ``magicvideo.models``, never from ``magicvideo.training``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATION = ("prefect", "prefect_ray", "ray", "mlflow")


def imported_modules(package: str) -> dict[str, set[str]]:
    """Module -> every module it imports (at any depth of the file: lazy imports count too)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{module} imports {name}" for module, names in imported_modules(package).items() for name in sorted(names)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("package,forbidden", [
    ("magicvideo", ORCHESTRATION + ("evaluation", "flows")),
    ("evaluation", ORCHESTRATION + ("flows", "magicvideo.training")),
])
def test_one_way_dependencies(package, forbidden):
    assert offenders(package, forbidden) == []


def test_the_check_sees_lazy_imports(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def f():\n    from magicvideo.training.classifier import X\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert offenders("pkg", ("magicvideo.training",)) == ["pkg/m.py imports magicvideo.training.classifier"]
