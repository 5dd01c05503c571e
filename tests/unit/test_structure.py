"""The package's shape: imports point one way (no cycles, lazy imports included), the data
model depends on nothing, the public surface is small, and modules stay readable."""

from __future__ import annotations

import ast
from pathlib import Path

import nbtrack

PACKAGE = Path(nbtrack.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """nbtrack modules ``path`` imports anywhere: at the top, inside functions, and under
    TYPE_CHECKING."""
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nbtrack"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nbtrack"))
    return found & modules


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) - {_module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_imports_point_one_way() -> None:
    graph = _graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting, module])
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_packages_import_one_way() -> None:
    # Modules without a cycle can still tie two packages into one: kernel.magics importing
    # sweep while sweep.runner imports kernel.cell made `kernel` and `sweep` a single layer
    # that could only be read, moved or tested together. Each package (and each top-level
    # module) is a node here.
    import graphlib

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    layers: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        layers.setdefault(package(module), set()).update(
            package(t) for t in targets if package(t) != package(module)
        )
    try:
        list(graphlib.TopologicalSorter(layers).static_order())
    except graphlib.CycleError as error:
        raise AssertionError("package import cycle: " + " -> ".join(error.args[1])) from None


def test_nothing_below_the_top_imports_the_package_root() -> None:
    # `nbtrack/__init__.py` is the contents page; a module reaching back up to it would tie
    # the bottom of the package to its top.
    importers = sorted(m for m, targets in _graph().items() if "nbtrack" in targets)
    assert importers == []


def test_the_data_model_and_the_leaves_import_nothing_of_nbtrack_at_run_time() -> None:
    graph = _graph()
    leaves = ("errors", "_version", "_files", "_platform", "_interrupts")
    for leaf in (f"nbtrack.{name}" for name in leaves):
        assert graph[leaf] == set(), leaf
    # The model names the curve type for type checkers only.
    assert graph["nbtrack._model"] == {"nbtrack._curves"}
    source = (PACKAGE / "_model.py").read_text()
    assert "if TYPE_CHECKING:\n    from array import array\n\n    from nbtrack._curves" in source


def test_the_public_surface_is_small() -> None:
    assert sorted(nbtrack.__all__) == [
        "RunInfo",
        "__version__",
        "active_run",
        "compare",
        "log",
        "log_artifact",
        "log_checkpoint",
        "log_dataset",
        "log_model",
        "log_params",
        "runs",
        "wait",
        "watch",
    ]
    public_modules = sorted(
        _module_name(p)
        for p in PACKAGE.rglob("*.py")
        if not any(part.startswith("_") for part in p.relative_to(PACKAGE).with_suffix("").parts)
    )
    # Packages and modules users may import; everything else is underscored.
    assert "nbtrack.errors" in public_modules
    assert "nbtrack.run" not in public_modules
    # The framework integrations users import by name (each imports its framework).
    assert {"nbtrack.lightning", "nbtrack.transformers"} <= set(public_modules)


def test_loading_the_package_imports_no_framework() -> None:
    # nbtrack.watch, log_model and the rest are in the package's namespace, torch is not: the
    # integrations import their frameworks when first called.
    import subprocess
    import sys

    probe = (
        "import sys, nbtrack; "
        "print(sorted(m for m in ('mlflow', 'torch', 'lightning', 'transformers', 'pandas', "
        "'sklearn', 'pynvml') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_no_module_is_over_400_lines() -> None:
    long = {
        _module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_test_modules_have_unique_names() -> None:
    # The test folders are not packages, so pytest imports each test module by its file name:
    # two folders holding one name stop the whole suite at collection (CI broke on it once).
    tests = Path(__file__).resolve().parents[1]
    names: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
