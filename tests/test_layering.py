"""The hub's layering, read from the code's imports (every import statement, also inside functions)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ALLOWED = {
    "monitoring": {"monitoring"},
    "collectors": {"monitoring", "collectors"},
    "exporters": {"monitoring", "exporters"},
    "apps": {"monitoring", "exporters", "apps", "pipewatch"},
    "pipewatch": {"monitoring", "collectors", "exporters", "apps", "pipewatch"},
}
"""Which of pipewatch's packages each package may import: the core (monitoring) none of the others; collectors and
exporters only the core; the pages the core and the exporters' formats; the entry points everything."""

SOURCE_CLIENTS = {"aiokafka", "asyncpg", "httpx", "kafka"}
"""Libraries that talk to monitored systems: only collectors (and entry points that set up sources) use them."""

NO_SOURCE_CLIENTS = ("monitoring", "exporters", "apps")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import in a file, relative imports resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_import_runs_with_the_data_flow():
    against = []
    for package, allowed in ALLOWED.items():
        for path in _sources(package):
            for line, module in _imports(path):
                top = module.split(".")[0]
                if top in ALLOWED and top not in allowed:
                    against.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert against == []


def test_only_collectors_and_entry_points_use_source_clients():
    users = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for package in NO_SOURCE_CLIENTS for path in _sources(package)
             for line, module in _imports(path) if module.split(".")[0] in SOURCE_CLIENTS]
    assert users == []


def test_the_check_sees_an_import_against_the_flow(tmp_path, monkeypatch):
    """The walk itself: an import inside a function of the core is found (guards against a test that cannot fail)."""
    core = tmp_path / "monitoring"
    core.mkdir()
    (core / "bad.py").write_text("def f():\n    from collectors.kafka import collector\n    from . import store\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _imports(core / "bad.py") == [(2, "collectors.kafka"), (3, "monitoring")]
