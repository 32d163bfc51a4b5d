"""The import structure of `dfer/`: its packages in layers, each importing only from the layers beneath it.

Every module's imports are read with `ast`, the ones inside functions too (dfer imports heavy modules where they are
used), so an import that runs up the order fails here even when no test happens to execute it. Inference must stay
apart from training: `dfer predict` and `dfer serve` load neither a training stage nor TensorBoard, which is also
checked in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "dfer"

# Low to high. A package (a folder under dfer/, or a module directly in it) imports only from lower layers; the
# packages of one layer do not import each other. "dfer" is the package's own __init__, which imports nothing.
LAYERS = [
    {"dfer", "errors", "host_memory", "distributed", "recipe", "vendored", "streams"},
    {"extras"},
    {"media"},
    {"data", "faces"},
    {"encoders"},
    {"store"},
    {"extract", "heads", "adapt"},
    {"inference", "models", "params"},
    {"runs"},
    {"checks"},
    {"train"},
    {"finetune"},
    {"evaluation"},
    {"predict"},
    {"serve"},
    {"api"},
    {"cli"},
    {"__main__", "testing"},
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
INFERENCE = ("predict", "serve")  # what must run without the training stages
TRAINING = ("dfer.train", "dfer.finetune", "tensorboard", "torch.utils.tensorboard")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """dfer.train.loop -> train; dfer.errors -> errors; dfer -> dfer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dfer"


def is_module(name: str) -> bool:
    """`name` is a module or package of this repository (not an attribute of one)."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported(path: Path) -> set[str]:
    """Every module name `path` imports, anywhere in it: `from dfer import x` names dfer.x, a relative import is
    resolved against the module's own package."""
    module = module_name(path)
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = ".".join(base[:len(base) - node.level + 1] + [node.module or ""]).strip(".") if node.level \
                else node.module
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names if is_module(f"{source}.{alias.name}"))
    return names


MODULES = {module_name(path): imported(path) for path in sorted(PACKAGE.rglob("*.py"))}


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the imports that make the edge, as "module -> name"."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, names in MODULES.items():
        for name in names:
            if name.split(".")[0] == "dfer" and package_of(name) != package_of(module):
                edges.setdefault((package_of(module), package_of(name)), []).append(f"{module} -> {name}")
    return edges


def test_every_package_has_a_layer():
    packages = {package_of(module) for module in MODULES}
    assert packages - set(RANK) == set(), "declare the new package's layer in LAYERS"
    assert set(RANK) - packages == set(), "LAYERS names a package that is gone"


def test_no_import_runs_up_the_layers():
    upward = {f"{a} -> {b}": where for (a, b), where in package_edges().items() if RANK[b] >= RANK[a]}
    assert upward == {}


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for a, b in package_edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, str] = {}

    def cycle_from(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return path[path.index(child):] + [child] if child in path else [node, child]
            if child not in state:
                found = cycle_from(child, path + [child])
                if found:
                    return found
        state[node] = "done"
        return None

    cycles = [found for node in sorted(graph) if node not in state for found in [cycle_from(node, [node])] if found]
    assert cycles == []


def reachable(start: set[str]) -> set[str]:
    """The dfer modules `start` imports, directly or through others, with the packages above each one."""
    seen, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module in seen or module not in MODULES:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a module runs its packages' __init__
        todo.extend(MODULES[module])
    return seen


def test_inference_imports_no_training_in_its_source():
    """Through any import, function-local ones included: no training stage, no TensorBoard."""
    for package in INFERENCE:
        start = {module for module in MODULES if package_of(module) == package}
        modules = reachable(start)
        stages = sorted(module for module in modules if module.startswith(TRAINING[:2]))
        tensorboard = sorted(module for module in modules
                             if any(name.startswith(TRAINING[2:]) for name in MODULES[module]))
        assert (stages, tensorboard) == ([], []), package


def test_inference_loads_no_training_when_imported():
    code = ("import json, sys, dfer.predict.predictor, dfer.serve.app; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({TRAINING!r}))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert json.loads(done.stdout) == []
