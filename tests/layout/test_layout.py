"""The layout rules, checked on the source: stages import only earlier stages, `probes`
imports nothing of ours, `harness` never imports `benchmarks`, no import cycle, and no
file or function too long to read. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "probes", "benchmarks")
STAGES = (
    "spec",
    "measure",
    "workloads",
    "prepare",
    "estimate",
    "simulate",
    "rows",
    "run",
    "report",
    "integrations",
)
SHARED = ("harness.errors", "harness.lazy")  # usable from every stage
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 100


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Our modules that `path` imports anywhere in its body (resolved to known modules)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {mod: _imports(path, known) - {mod} for mod, path in sources.items()}


def _rank(module: str) -> int | None:
    """The stage number of a harness module; None for the package's top-level modules."""
    parts = module.split(".")
    if module in SHARED:
        return -1
    if len(parts) > 1 and parts[1] in STAGES:
        return STAGES.index(parts[1])
    if len(parts) > 1 and parts[1] == "commands":
        return len(STAGES)
    return None


def test_probes_import_only_probes():
    bad = {
        m: sorted(x for x in deps if not x.startswith("probes"))
        for m, deps in _graph().items()
        if m.startswith("probes")
    }
    assert {m: d for m, d in bad.items() if d} == {}


def test_harness_never_imports_benchmarks():
    bad = {
        m: sorted(x for x in deps if x.startswith("benchmarks"))
        for m, deps in _graph().items()
        if m.startswith("harness")
    }
    assert {m: d for m, d in bad.items() if d} == {}


def test_stages_import_only_earlier_stages():
    bad = []
    for module, deps in _graph().items():
        rank = _rank(module)
        if not module.startswith("harness") or rank is None or rank < 0:
            continue
        for dep in deps:
            dep_rank = _rank(dep) if dep.startswith("harness") else -1
            if dep_rank is None or dep_rank > rank:
                bad.append(f"{module} -> {dep}")
    assert bad == []


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_files_and_functions_stay_short():
    long_files, long_functions = [], []
    for module, path in _sources().items():
        text = path.read_text()
        if text.count("\n") > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{module}.{node.name}: {length} lines")
    assert long_files == [] and long_functions == []
