"""The collateral and risk apps do not import each other in a circle.

Every import is read with ``ast`` (module level and inside functions: a deferred import is still a
dependency). Between the two apps the imports go one way round: the risk engine may use the custody
ledger, the instrument master and the marginable list; collateral's price imports call the price
authority; no chain of imports leads from one module back to itself through the other app.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("lending.collateral", "lending.risk")


def _modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app.replace(".", "/")).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in modules}
    return out


def _cycles_across_apps() -> list[list[str]]:
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    # Strongly connected components (Tarjan); a component with modules of both apps is a circle between them.
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
            components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [c for c in components if all(any(m.startswith(app + ".") or m == app for m in c) for app in APPS)]


def test_collateral_and_risk_do_not_import_each_other_in_a_circle():
    assert _cycles_across_apps() == []


def test_the_risk_engine_pledges_through_the_custody_ledger_not_the_collateral_services():
    modules = _modules()
    assert "lending.collateral.custody" in _imports("lending.risk.services", modules["lending.risk.services"], modules)
    assert "lending.collateral.services" not in _imports("lending.risk.services", modules["lending.risk.services"], modules)


def test_the_check_sees_a_circle_when_there_is_one(tmp_path, monkeypatch):
    """The detector itself: two modules of the two apps importing each other (inside functions) are found."""
    for app in ("lending/collateral", "lending/risk"):
        (tmp_path / app).mkdir(parents=True)
        (tmp_path / app / "__init__.py").write_text("")
    (tmp_path / "lending" / "__init__.py").write_text("")
    (tmp_path / "lending/collateral/a.py").write_text("def f():\n    from lending.risk import b\n")
    (tmp_path / "lending/risk/b.py").write_text("def g():\n    from ..collateral import a\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert _cycles_across_apps() == [["lending.collateral.a", "lending.risk.b"]]
