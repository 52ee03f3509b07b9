"""The package's layout rules, read from every import in its source (those inside functions and
``TYPE_CHECKING`` blocks included): layers import only from themselves and the layers below
(common < core < runs < papers < publish), no paper imports another, no import cycle between modules,
no module over 600 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "mmrepro"
LAYERS = ("common", "core", "runs", "papers", "publish")
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports: ``from X import a`` counts X.a when that is a module, else X."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] == "mmrepro" and t != name}
    return found


GRAPH = nx.DiGraph()
for _name, _path in MODULES.items():
    GRAPH.add_node(_name)
    GRAPH.add_edges_from((_name, t) for t in _imports(_name, _path))


def layer(module: str) -> int | None:
    """0..4 for common..publish; None for the package root (the public face, above every layer)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def paper(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "papers" else None


def test_every_module_is_in_a_layer():
    assert {m for m in MODULES if layer(m) is None} == {"mmrepro"}
    assert all((PACKAGE / name).is_dir() for name in LAYERS)


def upward(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """Imports from a layer into a higher one (or into the package root, the public face)."""
    return [(a, b) for a, b in graph.edges if layer(a) is not None and (layer(b) is None or layer(b) > layer(a))]


def across(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """Imports from one paper's folder into another's."""
    return [(a, b) for a, b in graph.edges if paper(a) and paper(b) and paper(a) != paper(b)]


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Import cycles, leaving out a package's ``__init__`` importing its own submodules (how packages re-export)."""
    edges = [(a, b) for a, b in graph.edges if not (MODULES.get(a, Path()).name == "__init__.py" and b.startswith(a + "."))]
    return list(nx.simple_cycles(nx.DiGraph(edges)))


def test_imports_only_point_down_or_sideways():
    assert upward(GRAPH) == []


def test_no_paper_imports_another():
    assert across(GRAPH) == []


def test_every_paper_has_its_own_plan():
    papers = sorted(p.name for p in (PACKAGE / "papers").iterdir() if (p / "__init__.py").exists())
    assert papers == ["mfh", "miles", "mind", "multimodn"]
    assert all((PACKAGE / "papers" / p / "plan.py").exists() for p in papers)


def test_no_import_cycle():
    assert cycles(GRAPH) == []


def test_no_module_over_the_limit():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_rules_catch_planted_violations():
    g = GRAPH.copy()
    g.add_edges_from([("mmrepro.core.trainer", "mmrepro.runs.jobs"), ("mmrepro.papers.mind.report", "mmrepro.papers.miles.setup"),
                      ("mmrepro.runs.search", "mmrepro"), ("mmrepro.runs.jobs", "mmrepro.runs.search")])
    assert set(upward(g)) == {("mmrepro.core.trainer", "mmrepro.runs.jobs"), ("mmrepro.runs.search", "mmrepro")}
    assert across(g) == [("mmrepro.papers.mind.report", "mmrepro.papers.miles.setup")]
    assert any(set(c) == {"mmrepro.runs.jobs", "mmrepro.runs.search"} for c in cycles(g))
