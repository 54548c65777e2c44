"""The import graph of ``hildif`` and ``ml_backend``: no cycle between modules, the library does not import its
front ends, and every module imports.

The graph is read from the source with :mod:`ast`: every ``import`` counts, also one inside a function or under
``if TYPE_CHECKING`` (a lazy import hides a cycle from the interpreter, not from a reader).
"""

from __future__ import annotations

import ast
import importlib
import os
import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hildif", "ml_backend")
# Front ends: they may import the library; the library (everything else in hildif) must not import them.
FRONT_ENDS = ("hildif.commands", "hildif.cli", "hildif.__main__", "ml_backend")


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package's ``__init__``), for every ``.py`` file of ``packages`` under ``root``.
    A file whose name is no module name (``gunicorn.conf.py``) keeps its path as its name."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if "." in parts[-1]:
                found[path.relative_to(root).as_posix()] = (path, False)
                continue
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module -> the modules of ``packages`` it imports (anywhere in its source)."""
    modules = module_files(root, packages)

    def known(name: str) -> str | None:  # ``a.b.func`` -> ``a.b``; outside the packages -> None
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                # ``from pkg import sub`` imports the module pkg.sub; ``from mod import func`` imports mod
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        graph[name] = {t for t in map(known, targets) if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _is_front_end(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FRONT_ENDS) or module.endswith(".py")


# ---------------------------------------------------------------------------------------------- the checker
def test_the_checker_finds_a_cycle_hidden_in_lazy_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n")
    (pkg / "c.py").write_text("import os\nfrom pkg import a\n")
    (pkg / "d.py").write_text("from pkg.a import f\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (pkg / "c.py").write_text("import os\n")
    assert cycles(import_graph(tmp_path, ("pkg",))) == []


# ---------------------------------------------------------------------------------------------- the tree
def test_no_import_cycle_between_modules():
    graph = import_graph(ROOT)
    assert {"hildif.service", "ml_backend.app", "ml_backend.runtime", "ml_backend.handlers"} <= set(graph)
    assert cycles(graph) == []


def test_the_library_does_not_import_its_front_ends():
    """hildif's library (all but its commands and CLI) imports neither ``hildif.commands`` nor ``ml_backend``, and
    the ML backend imports the library, not the commands (which import the backend)."""
    graph = import_graph(ROOT)
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() if not _is_front_end(m)
                    for t in targets if _is_front_end(t))
    assert upward == []
    backend_to_commands = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("ml_backend")
                                 for t in targets if t.startswith("hildif.commands") or t == "hildif.cli")
    assert backend_to_commands == []
    assert "hildif.service" in graph["ml_backend.runtime"] and "ml_backend.launch" in graph["hildif.commands.backend"]


def test_backend_module_names_do_not_shadow_the_library():
    """No ``ml_backend`` module has the name of a hildif package or of a hildif module (``model``, ``server``)."""
    library = {name.rpartition(".")[2] for name in module_files(ROOT, ("hildif",))}
    backend = {name.rpartition(".")[2] for name in module_files(ROOT, ("ml_backend",)) if not name.endswith(".py")}
    assert backend & library == set()


def test_every_module_imports(tmp_path):
    """Each module of both packages imports on its own (entry points that act when imported are run in a child
    process, or read as a file)."""
    skip = {"ml_backend.__main__", "ml_backend.wsgi"}
    names = [n for n in module_files(ROOT) if n not in skip and not n.endswith(".py")]
    for name in names:
        importlib.import_module(name)
    conf = runpy.run_path(str(ROOT / "ml_backend" / "gunicorn.conf.py"))
    assert conf["worker_class"] == "ml_backend.worker.SplitPoolWorker" and "%(U)s" in conf["access_log_format"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILDIF_BACKEND_")}
    env.update(HILDIF_RUN_DIR=str(tmp_path / "run"), PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", "import ml_backend.wsgi as w; print(type(w.app).__name__)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "Flask"
