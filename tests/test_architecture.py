"""The architecture as code: the import-linter contracts of pyproject.toml hold on the tree, and
they fail on a forbidden import (checked on a copy of the tree with one planted import); no
module of bench/ is longer than MAX_LINES without saying why in its docstring."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 350
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(LINT + ["--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in ("bench", "baselines"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_contracts_hold_on_the_tree(tmp_path):
    r = _lint(_copy_tree(tmp_path))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


@pytest.mark.parametrize("module,planted,contract", [
    ("bench/metrics/image.py", "import bench.records.store", "metrics are pure"),
    ("bench/records/store.py", "import bench.inputs.protocol", "records import nothing"),
    ("bench/render/shading.py", "import bench.cases.case", "render -> inputs only"),
    ("baselines/visible.py", "import bench.run.runner", "baselines ->"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, planted, contract):
    root = _copy_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{planted}  # planted by the test\n")
    r = _lint(root)
    assert r.returncode != 0, r.stdout[-3000:]
    broken = [line for line in r.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), r.stdout[-3000:]


def test_an_import_cycle_breaks_the_acyclic_contract(tmp_path):
    root = _copy_tree(tmp_path)
    path = root / "bench" / "inputs" / "assets.py"
    path.write_text(path.read_text() + "\nimport bench.cases.case  # planted by the test\n")
    r = _lint(root)
    assert r.returncode != 0
    assert any(line.startswith("no import cycles") and line.endswith("BROKEN")
               for line in r.stdout.splitlines()), r.stdout[-3000:]


def test_no_long_module_without_a_reason():
    too_long = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n <= MAX_LINES or path.name.startswith("test_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if f"longer than {MAX_LINES} lines" not in doc.lower():
            too_long.append(f"{path.relative_to(REPO)} ({n} lines)")
    assert not too_long, (f"modules over {MAX_LINES} lines without 'Longer than {MAX_LINES} lines "
                          f"because ...' in their docstring: {', '.join(too_long)}")
