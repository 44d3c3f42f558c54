"""The library's layers (docs/architecture.md): every import of an ``anyskill`` module, at module level or inside a
function, points into the importer's own package or a lower layer, so no package depends on one above it or beside
it and the packages form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anyskill

PACKAGE_DIR = Path(anyskill.__file__).resolve().parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("humanoid", "provenance", "text"),  # the MJCF humanoid, FK, observations; provenance; prompt enhancement, sets
    ("config",),  # typed settings and scale profiles
    ("motion",),  # clips, importers, motion library
    ("data", "sim"),  # bundled data; backends, env, rendering
    ("reward", "rl"),  # CLIP, Eq. 3, early termination, projection; rl-games adapters and runner
    ("llc",),  # the low-level interface and what its routes share; one subpackage per route (calm/, tracking/)
    ("hlc",),  # high-level policy
    ("domain",),  # the domain text-image model: captions, data, model, training, evaluation, build, end-to-end check
    ("eval",),  # rollout metrics, human-rating protocol
    ("viz",),  # figures
    ("reproduce",),  # the notebooks through papermill
    ("cli",),  # the anyskill command
)
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str | None:
    """The top-level unit of an ``anyskill`` module name (``anyskill.sim.env`` -> ``sim``), None for others."""
    parts = module.split(".")
    if parts[0] != "anyskill":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the file's package
                package = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts[: -node.level]
                base = ".".join(package + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            if base == "anyskill":  # from anyskill import sim -> anyskill.sim
                found += [(node.lineno, f"anyskill.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def _edges() -> list[tuple[str, str, str]]:
    """(importer unit, imported unit, "file:line") for every import between different units of the package."""
    edges = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR)
        importer = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else ""
        for line, module in _imports(path):
            imported = _unit(module)
            if imported is not None and imported != importer and importer != "":
                edges.append((importer, imported, f"anyskill/{rel}:{line}"))
    return edges


def test_every_unit_has_a_layer():
    units = {p.name.removesuffix(".py") for p in PACKAGE_DIR.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.name != "__init__.py")}
    assert units == set(LAYER_OF), f"add new packages to LAYERS (and docs/architecture.md): {units ^ set(LAYER_OF)}"


def test_imports_point_only_downward():
    upward = [f"{where}: {a} (layer {LAYER_OF[a]}) imports {b} (layer {LAYER_OF.get(b, '?')})"
              for a, b, where in _edges() if b not in LAYER_OF or LAYER_OF[b] >= LAYER_OF[a]]
    assert not upward, "imports that do not point to a lower layer:\n" + "\n".join(upward)


def test_packages_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for a, b, _ in _edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("package cycle: " + " -> ".join([*path[path.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])


def test_the_checker_sees_nested_and_upward_imports(tmp_path):
    """The walker finds imports inside functions and resolves ``from anyskill import x``."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from anyskill.viz.training import plot_curves\n\nfrom anyskill import sim\n")
    assert sorted(_imports(path)) == [(2, "anyskill.viz.training"), (4, "anyskill.sim")]
