"""The codebase's own rules, read from its source: one import name, short functions, thin tasks, and a
wheel that installs only ``syncreel``. (The import layering is import-linter's, in .ci/check.)"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("cli", "flows", "tasks", "media", "model", "store", "schemas", "syncreel")
SOURCE_DIRS = (*PACKAGE_DIRS, "tests", "benchmarks", "examples")
MAX_FUNCTION_LINES = 60
MAX_TASK_LINES = 40
# Training code is exempt from the function-length rule (a training loop reads best whole).
LENGTH_EXEMPT = {"model/train.py"}


def _sources(folders: tuple[str, ...]) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def _length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return (node.end_lineno or node.lineno) - node.lineno + 1


def _is_task(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "task":
            return True
    return False


def test_nothing_imports_the_folders_by_their_bare_names() -> None:
    """`import media` works in a checkout and nowhere else: everything goes through `syncreel.`."""
    bare = set(PACKAGE_DIRS) - {"syncreel"}
    found = []
    for path in _sources(SOURCE_DIRS):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in bare]
    assert not found, "import these through syncreel.<folder>:\n" + "\n".join(found)


def test_no_function_is_longer_than_a_screen() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({_length(node)} lines)"
        for path in _sources(PACKAGE_DIRS)
        if str(path.relative_to(ROOT)) not in LENGTH_EXEMPT
        for node in _functions(path)
        if _length(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_tasks_are_thin() -> None:
    tasks = [(path, node) for path in _sources(("tasks", "flows")) for node in _functions(path) if _is_task(node)]
    assert tasks, "no @task found: the rule would pass vacuously"
    fat = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({_length(n)})" for p, n in tasks if _length(n) > MAX_TASK_LINES]
    assert not fat, f"task bodies over {MAX_TASK_LINES} lines:\n" + "\n".join(fat)


def test_every_package_folder_is_mapped_into_the_namespace() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {folder: package for package, folder in setuptools["package-dir"].items()}
    expected = {"syncreel"}
    for folder in PACKAGE_DIRS:
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT)
            top = relative.parts[0]
            prefix = "syncreel" if top == "syncreel" else mapped[top]
            expected.add(".".join((prefix, *relative.parts[1:])))
    assert set(setuptools["packages"]) == expected


@pytest.mark.slow
def test_the_wheel_installs_one_import_name(tmp_path: Path) -> None:
    """Beside any other distribution, syncreel claims one top-level name (and its console script)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("syncreel-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        tops = {name.split("/")[0] for name in names}
        info = next(top for top in tops if top.endswith(".dist-info"))
        assert tops == {"syncreel", info}
        assert archive.read(f"{info}/top_level.txt").decode().split() == ["syncreel"]
        assert "syncreel = syncreel.cli:main" in archive.read(f"{info}/entry_points.txt").decode()
    for data in ("syncreel/media/models/face_landmark.tflite", "syncreel/model/checkpoints/builtin.safetensors"):
        assert data in names
    assert any(name.startswith("syncreel/store/migrations/versions/") for name in names)
