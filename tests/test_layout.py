"""The layout's rules, checked: imports go one way, the deploy path loads no docs or measurement
code, imports sit at the top of a module unless a comment says why, and the product speaks of
itself, not of its history."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The project's own Python, besides the tests themselves.
PACKAGES = ("llmstack", "components", "tools", "bench", "policy")
TOP_MODULES = ("program", "__main__")


def project_files(include_tests: bool = False) -> dict[str, str]:
    """module name -> path of every project module."""
    found = {name: os.path.join(ROOT, f"{name}.py") for name in TOP_MODULES}
    for package in PACKAGES + (("tests",) if include_tests else ()):
        for root, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(root, f)
                    name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: str, known: set[str]) -> set[str]:
    """The project modules `name` imports (relative imports resolved)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in parts + [base] if p)
            candidates = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out |= {c for c in candidates if c in known and c != name}
    return out


def test_no_import_cycle_among_the_project_modules():
    files = project_files()
    graph = {name: imports_of(name, path, set(files)) for name, path in files.items()}
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


# The layers of the runtime package, lowest first: a module may import its own layer and lower ones.
LAYERS = [
    {"llmstack.config"},
    {"llmstack.signals", "llmstack.topology", "llmstack.promql", "llmstack.scrape"},
    {"llmstack.engines", "llmstack.fleet", "llmstack.resources", "llmstack.probes", "llmstack.slo"},
    {"llmstack.alerts", "llmstack.dashboards", "llmstack.routing", "llmstack.alertmanager", "llmstack.remote_write", "llmstack.prometheus", "llmstack.grafana_alerting", "llmstack.kubernetes"},
    {"components"},
    {"program", "__main__"},
]


def layer(name: str) -> int:
    for i, members in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return i
    return len(LAYERS)


def test_imports_go_one_way_config_then_signals_then_rules_then_components_then_program():
    files = project_files()
    wrong = []
    for name, path in files.items():
        if layer(name) == len(LAYERS):
            continue  # tools, bench and policy sit beside the program, not in it
        for dep in imports_of(name, path, set(files)) - {"llmstack", "components"}:  # the bare packages hold nothing
            if layer(dep) > layer(name):
                wrong.append(f"{name} imports {dep}")
    assert wrong == []


def test_the_deploy_path_loads_no_docs_render_detection_or_bench_module():
    code = "import sys; import program; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    forbidden = [m for m in loaded if m.split(".")[0] in ("tools", "bench", "tests")]
    assert forbidden == []
    assert "llmstack.config" in loaded and "components.grafana" in loaded  # the check can see project modules


def function_level_imports(path: str) -> list[tuple[int, str]]:
    """Imports inside a function with no comment on the line above or on the same line."""
    source = open(path).read()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    above = sub.lineno - 2
                    while lines[above].strip().startswith(("import ", "from ")):  # a block of imports shares one comment
                        above -= 1
                    if "#" not in lines[sub.lineno - 1] and not lines[above].strip().startswith("#"):
                        found.append((sub.lineno, lines[sub.lineno - 1].strip()))
    return found


def test_imports_sit_at_the_top_unless_a_comment_says_why():
    unexplained = {path: found for path in project_files(include_tests=True).values() if (found := function_level_imports(path))}
    assert unexplained == {}


# Words that only mean something to the project's history, not to a user of the product.
HISTORY = re.compile("|".join((r"\bissues? #?\d+\b", r"\(" + "issue\\b", r"\boriginal request\b", r"\bse" + "ed\\b")), re.I)
PRODUCT_TEXT = (".py", ".md", ".yaml", ".yml", ".json")


def product_files() -> list[str]:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [f for f in tracked if f.endswith(PRODUCT_TEXT) and not f.startswith("bench/results/") and os.path.exists(os.path.join(ROOT, f))]


def test_code_names_and_docs_speak_of_the_product_not_its_history():
    hits = []
    for rel in product_files():
        with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if HISTORY.search(line) and "history-ok" not in line:
                    hits.append(f"{rel}:{number}: {line.strip()[:120]}")
    assert hits == []


# Built from parts, so this file does not trip its own check.
@pytest.mark.parametrize("line", ["see iss" + "ue 12", "(iss" + "ue 3)", "the original " + "request's panel", "se" + "ed exporter"])
def test_the_history_check_can_fail(line):
    assert HISTORY.search(line)
