"""The library's layers (docs/architecture.md): every import of an ``anyskill`` module, at module level or inside a
function, points into the importer's own package or a lower layer, so no package depends on one above it or beside
it and the packages form no cycle; inside a package the modules form no cycle either (imports under
``TYPE_CHECKING`` and inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anyskill

PACKAGE_DIR = Path(anyskill.__file__).resolve().parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("humanoid", "provenance"),  # the MJCF humanoid, FK, observations; how each result was made
    ("config",),  # every settings class and the scale profiles
    ("motion", "text"),  # clips, importers, motion library; prompt enhancement, prompt sets
    ("data", "sim"),  # bundled data; backends, env, rendering
    ("reward", "rl"),  # CLIP, Eq. 3, early termination, projection; rl-games adapters and runner
    ("llc",),  # the low-level interface and what its routes share; one subpackage per route (calm/, tracking/)
    ("hlc",),  # high-level policy
    ("domain",),  # the domain text-image model: captions, data, model, training, evaluation, build, end-to-end check
    ("eval",),  # rollout metrics, human-rating protocol
    ("viz",),  # figures
    ("reproduce", "gpu"),  # the notebooks through papermill; the one-shot GPU check and its ingest
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}


def _module_edges(path: Path, modules: dict[str, Path] = MODULES) -> set[str]:
    """The modules of ``modules`` that ``path`` imports: ``from pkg import name`` counts as an import of ``pkg.name``
    where that is a module (a submodule needs no code of its package), else of ``pkg``."""
    out = set()
    for _, base in _imports(path):
        out.add(base)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                package = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts[: -node.level]
                base = ".".join(package + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            subs = [f"{base}.{a.name}" for a in node.names]
            if all(m in modules for m in subs):
                out.discard(base)
                out.update(subs)
    found = set()
    for name in out:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def _cycles_within_packages(modules: dict[str, Path]) -> list[list[str]]:
    """Strongly connected groups (> 1 module) of the import graph restricted to each top-level package."""
    unit = {m: ".".join(m.split(".")[:2]) for m in modules}
    graph = {m: {n for n in _module_edges(p, modules) if n != m and unit[n] == unit[m]} for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def test_modules_of_a_package_form_no_cycle():
    cycles = _cycles_within_packages(MODULES)
    assert not cycles, "import loops inside packages (move what both need into a module below them):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_loops_through_functions_and_type_checking(tmp_path):
    pkg = tmp_path / "anyskill" / "probe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from anyskill.probe.b import g\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from anyskill.probe import a\n")
    (pkg / "c.py").write_text("from anyskill.probe import a, b\n")  # points down only: no loop
    modules = {f"anyskill.probe.{p.stem}" if p.stem != "__init__" else "anyskill.probe": p for p in pkg.glob("*.py")}
    assert _cycles_within_packages(modules) == [["anyskill.probe.a", "anyskill.probe.b"]]


def test_the_checker_sees_nested_and_upward_imports(tmp_path):
    """The walker finds imports inside functions and resolves ``from anyskill import x``."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from anyskill.viz.training import plot_curves\n\nfrom anyskill import sim\n")
    assert sorted(_imports(path)) == [(2, "anyskill.viz.training"), (4, "anyskill.sim")]


SETTINGS_SUFFIXES = ("Config", "Settings", "Profile")
NOT_YET_MOVED: set[tuple[str, str]] = set()
"""Settings classes still defined outside anyskill/config (none left)."""


def _settings_classes() -> list[tuple[str, str]]:
    """(file, class) of every dataclass named *Config / *Settings / *Profile in the package."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and node.name.endswith(SETTINGS_SUFFIXES) and any(
                    "dataclass" in ast.unparse(d) for d in node.decorator_list):
                found.append((f"anyskill/{path.relative_to(PACKAGE_DIR).as_posix()}", node.name))
    return found


def test_settings_classes_live_in_the_config_package():
    """One home for settings: every *Config / *Settings / *Profile dataclass is defined in anyskill/config/ (once)
    and exported by ``anyskill.config``."""
    import anyskill.config

    classes = _settings_classes()
    outside = [f"{f}: {c}" for f, c in classes if not f.startswith("anyskill/config/") and (f, c) not in NOT_YET_MOVED]
    assert not outside, "define settings in anyskill/config/ (and import them from there):\n" + "\n".join(outside)
    names = [c for _, c in classes]
    assert len(names) == len(set(names)), f"settings classes defined twice: {sorted(names)}"
    inside = {c for f, c in classes if f.startswith("anyskill/config/")}
    assert inside <= set(anyskill.config.__all__), inside - set(anyskill.config.__all__)
    assert {(f, c) for f, c in classes} >= NOT_YET_MOVED, "moved: drop it from NOT_YET_MOVED"
