"""The package's shape: layers point one way, no import circles, small files and functions.

Every ``import`` in segcli/ is read with ``ast`` (module level and inside functions alike) and checked
against the layers below. Reading the source, not ``sys.modules``, sees the imports that commands make
lazily, which is where a circle used to hide.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "segcli"

#: Lowest first. A module may import its own layer or lower ones, never a higher one.
LAYERS = [
    ("core", ["segcli.errors", "segcli.files", "segcli.hardware", "segcli.tf_allocator", "segcli.classes",
              "segcli.graph_function", "segcli.native_stderr",
              "segcli.models.registry", "segcli.models.mit.presets", "segcli.models.mit.params",
              "segcli.models.segformer.presets", "segcli.models.segformer.params"]),
    ("checkpoints", ["segcli.checkpoints"]),
    ("models, data", ["segcli.models", "segcli.data"]),
    ("features", ["segcli.train", "segcli.inference", "segcli.export", "segcli.bench", "segcli.weights"]),
    ("cli", ["segcli.cli"]),
    ("facade", ["segcli"]),  # segcli/__init__.py: lazy re-exports for users, imported by nothing inside
]
#: Same-layer edges that must not exist (the other direction is allowed).
FORBIDDEN = [("segcli.export", "segcli.inference"), ("segcli.data", "segcli.models"),
             ("segcli.train", "segcli.bench"), ("segcli.inference", "segcli.bench"), ("segcli.export", "segcli.bench")]
MAX_FILE_LINES = 400
#: Lines of a function's body (a command's option list is its signature, not its body).
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path) -> set[str]:
    """segcli modules that ``name`` imports anywhere in its source (``from pkg import sub`` counts as ``pkg.sub``)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m == "segcli" or m.startswith("segcli.")}


def layer_of(module: str) -> int:
    best, depth = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = index, len(prefix)
    return best


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) is None] == []


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in GRAPH.items() for t in targets if layer_of(t) > layer_of(m)]
    assert upward == []


def test_forbidden_same_layer_directions():
    bad = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets for low, high in FORBIDDEN
           if (m == low or m.startswith(low + ".")) and (t == high or t.startswith(high + "."))]
    assert bad == []


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_between_modules():
    assert _cycles(GRAPH) == []


def test_no_import_circles_between_packages():
    def package(m):  # the core modules (errors, classes, the preset tables) form their own package
        return "core" if layer_of(m) == 0 else ".".join(m.split(".")[:2])

    packages: dict[str, set] = {}
    for m, targets in GRAPH.items():
        packages.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    assert _cycles(packages) == []


def test_nothing_outside_cli_imports_cli():
    assert [m for m, t in GRAPH.items() if not m.startswith("segcli.cli") and m != "segcli"
            and any(x.startswith("segcli.cli") for x in t)] == []


def _body_lines(node) -> int:
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) \
        and len(node.body) > 1 else node.body  # leave out the docstring
    return node.end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_stay_small(name):
    source = MODULES[name].read_text()
    assert len(source.splitlines()) <= MAX_FILE_LINES, f"{name}: {len(source.splitlines())} lines"
    long = [f"{node.name} ({_body_lines(node)} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_FUNCTION_LINES]
    assert long == [], f"{name}: {', '.join(long)}"


def test_segcli_traces_functions_only_through_graph_function():
    """One owner decides how segcli traces: ``segcli.graph_function`` (``tf.function`` without AutoGraph)."""
    direct = [f"{name}:{node.lineno}" for name, path in MODULES.items() if name != "segcli.graph_function"
              for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Attribute) and node.attr == "function" and isinstance(node.value, ast.Name)
              and node.value.id == "tf"]
    assert direct == []
