"""Imports point down the stack: eeg <- datamodules, lightning_modules <- callbacks <- experiments."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("eeg", "datamodules", "lightning_modules", "callbacks", "experiments", "bench")
#: What each package may import from the project.
ALLOWED = {
    "eeg": set(),
    "datamodules": {"eeg"},
    "lightning_modules": {"eeg"},
    "callbacks": {"eeg", "lightning_modules"},
    "experiments": {"eeg", "datamodules", "lightning_modules", "callbacks"},
    "bench": {"eeg", "datamodules", "lightning_modules", "callbacks", "experiments"},
}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_the_stack(package):
    bad = {}
    for path in sorted((REPO / package).rglob("*.py")):
        wrong = _imports(path) - ALLOWED[package] - {package}
        if wrong:
            bad[str(path.relative_to(REPO))] = sorted(wrong)
    assert not bad, f"{package} imports upward or sideways: {bad}"
