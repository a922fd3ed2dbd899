"""The package's architecture, checked from its source: no import cycles, no private names imported
across modules, and the layering the README's "Project layout" draws.

Every module under src/rnnkit is parsed with ``ast`` (nothing is imported), and every import counts:
absolute and relative, at module level, inside functions and under ``TYPE_CHECKING``. So a lazy
import cannot hide a cycle: an import moved into a function to dodge a cycle still closes it here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rnnkit"

#: Layering exceptions, each with its reason. Keep this short: fix the code instead where possible.
EXCEPTIONS = {
    # A layer chooses its kernel per call (backend="auto" | "reference" | "torch" | "fused"), so
    # Recurrent's forward and step call the kernels it picks (dispatch, the fused layer, the streaming
    # step). Those read the layer only through its public view (cells, weights_of(k),
    # weights_are_parameters()) and never import rnnkit.nn.layers, so there is no cycle. Inverting the
    # dependency (kernels registering themselves as the layer's backends) would make what a layer
    # computes depend on what else happened to be imported, for no gain while the backends are fixed.
    ("rnnkit.nn.layers", "rnnkit.kernels.dispatch"),
    ("rnnkit.nn.layers", "rnnkit.kernels.fused"),
    ("rnnkit.nn.layers", "rnnkit.kernels.stream"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, level: int, module: str | None) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """``(target module, imported name or None, line)`` of every rnnkit import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "rnnkit"]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, node.level, node.module)
            if target.split(".")[0] != "rnnkit":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                # ``from package import submodule`` depends on the submodule, anything else on the module
                found.append((sub, None, node.lineno) if sub in MODULES else (target, a.name, node.lineno))
    return found


GRAPH: dict[str, set[str]] = {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}


def test_the_parser_sees_the_package():
    # the checks below mean something only if the graph is real: the known edges are found
    assert {"rnnkit.nn.cells", "rnnkit.kernels", "rnnkit.training.runs", "rnnkit.tasks"} <= set(MODULES)
    assert "rnnkit.nn.cells.base" in GRAPH["rnnkit.nn.cells.lstm"]
    assert "rnnkit.nn.init" in GRAPH["rnnkit.nn.cells.base"]
    assert "rnnkit.kernels._native" in GRAPH["rnnkit.kernels.fused"]  # from . import _native
    assert "rnnkit.training.runs" in GRAPH["rnnkit.tasks"]  # an import inside a function counts


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), as one cycle in it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, sorted(c)) for c in components]


def _one_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A path ``a -> b -> ... -> a`` inside the component ``comp`` (breadth-first from its first module)."""
    start, members = comp[0], set(comp)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle found in component {comp}")


def test_cycle_finder_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _private(name: str | None) -> bool:
    return name is not None and name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_names_imported_from_other_modules():
    """``from x import _y`` couples to an implementation detail. Allowed: a package's own private
    submodule (``from . import _native`` inside rnnkit.kernels)."""
    bad = []
    for m in MODULES:
        package = m if _is_package(m) else m.rpartition(".")[0]
        for target, name, line in _imports(m):
            if _private(name):
                bad.append(f"{m}:{line} imports {name} from {target}")
            elif name is None and _private(target.rpartition(".")[2]) and target.rpartition(".")[0] != package:
                bad.append(f"{m}:{line} imports the private module {target} of another package")
    assert not bad, "\n".join(bad)


#: (modules, what they may import of rnnkit) - each layer imports only the ones below it
ALLOWED = {
    "rnnkit.errors": (),
    "rnnkit.nn": ("rnnkit.nn", "rnnkit.errors"),
    "rnnkit.kernels": ("rnnkit.kernels", "rnnkit.nn", "rnnkit.errors"),
    "rnnkit.data": ("rnnkit.data", "rnnkit.errors"),
    # the shared settings name cells: ModelConfig's choices and cell arguments come from the cell registry
    "rnnkit.config": ("rnnkit.errors", "rnnkit.nn.cells", "rnnkit.validators"),
    "rnnkit.validators": ("rnnkit.errors",),
}
#: what a layer must never import
FORBIDDEN = {
    "rnnkit.data": ("rnnkit.tasks", "rnnkit.cli", "rnnkit.cli_parse", "rnnkit.training"),
    "rnnkit.training": ("rnnkit.tasks", "rnnkit.cli", "rnnkit.cli_parse"),
}
#: the only modules that may import the jobs (rnnkit.tasks)
TASKS_IMPORTERS = ("rnnkit.tasks", "rnnkit.cli", "rnnkit", "rnnkit.__main__")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(exceptions=EXCEPTIONS) -> list[str]:
    bad = []
    for m, targets in GRAPH.items():
        for t in sorted(targets):
            if (m, t) in exceptions:
                continue
            for layer, allowed in ALLOWED.items():
                if _within(m, layer) and not any(_within(t, a) for a in allowed):
                    bad.append(f"{m} imports {t} ({layer} may import only {', '.join(allowed) or 'nothing of rnnkit'})")
            for layer, forbidden in FORBIDDEN.items():
                if _within(m, layer) and any(_within(t, f) for f in forbidden):
                    bad.append(f"{m} imports {t} ({layer} never imports {', '.join(forbidden)})")
            if _within(t, "rnnkit.tasks") and not (m in TASKS_IMPORTERS or _within(m, "rnnkit.tasks")):
                bad.append(f"{m} imports {t} (only rnnkit.tasks, rnnkit.cli and rnnkit's __init__ import the jobs)")
    return bad


def test_layering():
    bad = _violations()
    assert not bad, "\n".join(bad)


def test_every_exception_is_still_needed():
    # an exception the code no longer needs would silently allow the dependency to come back
    without = _violations(exceptions=set())
    unused = [f"{m} -> {t}" for m, t in EXCEPTIONS if not any(v.startswith(f"{m} imports {t} ") for v in without)]
    assert not unused, "remove these from EXCEPTIONS: " + ", ".join(unused)


@pytest.mark.parametrize("job", ["forecast", "classify", "text"])
def test_each_job_has_the_same_shape(job):
    files = {p.name for p in (PACKAGE / "tasks" / job).glob("*.py")}
    assert {"__init__.py", "config.py", "model.py", "workflow.py", "metrics.py", "run.py", "cli.py"} <= files


def test_kernels_read_a_layer_only_through_its_public_view():
    """The kernels take what they need from a layer through its accessors (``cells``,
    ``weights_of(k)``, ``weights_are_parameters()``), never its private attributes. Allowed:
    torch.nn.Module's own ``_parameters`` dict (read directly on the streaming hot path, where
    ``Module.__getattr__`` is slow), its hook dictionaries (torch has no public way to ask whether a
    module has hooks; the fused trainer must refuse hooked models) and private names of the modules
    a kernel imports."""
    allowed = {"_parameters", "_forward_pre_hooks", "_forward_hooks", "_backward_hooks"}
    bad = []
    for m, path in MODULES.items():
        if not _within(m, "rnnkit.kernels"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                   if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        for n in ast.walk(tree):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and _private(n.attr)
                    and n.value.id not in {"self", "cls"} | modules and n.attr not in allowed):
                bad.append(f"{m}:{n.lineno} reads {n.value.id}.{n.attr}")
    assert not bad, "\n".join(bad)


# --- per-cell knowledge lives in nn/cells -----------------------------------------------------------

#: where naming a cell is the point: the cells themselves, and the torch.nn drop-ins (one class per cell
#: by definition, each a Recurrent of its cell)
CELL_HOMES = ("rnnkit.nn.cells", "rnnkit.nn.dropin")


def _cell_words() -> tuple[set[str], set[str]]:
    """The registered cells' names and aliases, and the identifiers that stand for one cell: its class,
    its torch.nn twins and drop-in layer (``LSTMCell``, ``nn.GRU``, ``RNN``) and constants named after it
    (``LSTM = 2``)."""
    from rnnkit.nn.cells import cell_specs
    from rnnkit.nn.dropin import DROP_INS
    specs = cell_specs()
    names = {n for s in specs for n in (s.name, *s.aliases)}
    classes = {s.cell.__name__ for s in specs} | {n.upper() for n in names} | {c.__name__ for c in DROP_INS.values()}
    classes |= {t.__name__ for s in specs for t in (s.torch_layer, s.torch_cell) if t is not None}
    return names, classes


def _cell_switches(tree: ast.AST, names: set[str], classes: set[str]) -> list[tuple[int, str]]:
    """``(line, what)`` of every place that branches on, or tabulates by, a particular cell: a comparison
    with a cell's name (``cell == "jordan"``, ``cell in ("lstm", "gru")``) or class (``t is LSTMCell``),
    ``isinstance(x, GRUCell)``, and a dict keyed by cell names or classes (``{LSTMCell: 128}``)."""
    def is_name(n) -> bool:
        return isinstance(n, ast.Constant) and n.value in names

    def is_class(n) -> bool:
        return (isinstance(n, ast.Name) and n.id in classes) or (isinstance(n, ast.Attribute) and n.attr in classes)

    def mentions(n) -> bool:
        items = n.elts if isinstance(n, (ast.Tuple, ast.List, ast.Set)) else [n]
        return any(is_name(i) or is_class(i) for i in items)

    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Compare) and any(mentions(o) for o in [n.left, *n.comparators]):
            found.append((n.lineno, "compares with a cell"))
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("isinstance", "issubclass")
              and len(n.args) == 2 and mentions(n.args[1])):
            found.append((n.lineno, f"{n.func.id} of a cell class"))
        elif isinstance(n, ast.Dict) and any(k is not None and (is_name(k) or is_class(k)) for k in n.keys):
            found.append((n.lineno, "a table keyed by cell"))
        elif isinstance(n, ast.match_case) and any(is_name(p.value) for p in ast.walk(n.pattern)
                                                   if isinstance(p, ast.MatchValue)):
            found.append((n.pattern.lineno, "matches a cell name"))
    return found


def test_the_cell_switch_finder_sees_each_form():
    names, classes = {"lstm", "gru"}, {"LSTMCell", "GRUCell"}
    code = """
if model.cell == "lstm": pass
if cell in ("gru", "lstm"): pass
if layer.cell_type is cells.LSTMCell: pass
if isinstance(c, (GRUCell, LSTMCell)): pass
LIMITS = {LSTMCell: 1, "gru": 2}
match name:
    case "gru": pass
ok = ModelConfig(cell="lstm")            # choosing a cell is not a switch
ok = name == "lstm_like" or x is Other   # neither a cell name nor a cell class
"""
    found = _cell_switches(ast.parse(code), names, classes)
    assert [line for line, _ in found] == [2, 3, 4, 5, 6, 8]


def test_no_per_cell_switch_outside_the_cells():
    """What differs between cells is declared once, in each cell's file (its CellSpec and NativeSpec, its
    torch_mode / torch_kwargs methods) and read from there; a switch on a cell's name or class elsewhere
    would have to be edited for every new cell (and is silently wrong for the one nobody edited)."""
    names, classes = _cell_words()
    bad = []
    for m, path in MODULES.items():
        if any(_within(m, home) for home in CELL_HOMES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad += [f"{m}:{line} {what}" for line, what in _cell_switches(tree, names, classes)]
    assert not bad, "\n".join(bad)
