"""The house rules a reader relies on: small modules, no import cycle, a light launcher,
no test double in production code, tests that import each other as a package."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import isolator
from isolator.drivers.dvdcli import DvdcliClient
from isolator.drivers.plugin_client import DockerPluginClient
from tests.support.repo import REPO

PACKAGES = ("actors", "isolator")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Every hand-written module of our packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue  # generated protobuf and gRPC code
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that ``name`` imports anywhere: top level, functions, TYPE_CHECKING."""
    is_package = path.name == "__init__.py"
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            # ``from a import b``: b is a module of ours, or a name defined in a.
            targets = [t for t in targets if t in modules][:1] or [base]
        else:
            continue
        edges.update(t for t in targets if t in modules and t != name)
    return edges


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            return component


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = _pop_component(stack, on_stack, node)
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        name: count
        for name, path in _modules().items()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_import_graph_has_no_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["isolator.docker.actor"] >= {"actors", "isolator.docker.state"}  # read
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


_KERNEL_ACCESS = re.compile(r"ctypes\.CDLL\(|find_library\(|\bos\.pidfd_open\b|\"pidfd_open\"")


STANDALONE = {"isolator.launch.oci_commands", "isolator.launch.oci_supervisor"}
"""Modules run as a bare script (``python -I -S``: the standard library only, so no
``isolator`` import): they carry the little kernel access they need themselves."""


def test_libc_and_pidfds_have_one_home() -> None:
    found = {
        name
        for name, path in _modules().items()
        if _KERNEL_ACCESS.search(path.read_text(encoding="utf-8"))
    }
    assert found - STANDALONE == {"isolator.common.linux"}


def test_standalone_modules_import_only_the_standard_library() -> None:
    modules = _modules()
    for name in STANDALONE:  # the standard library, and each other (from their directory)
        assert not _imports(name, modules[name], modules) - STANDALONE, name


def test_production_code_imports_no_test_double() -> None:
    modules = _modules()
    importers = {
        name
        for name, path in modules.items()
        if name != "isolator.testing" and "isolator.testing" in _imports(name, path, modules)
    }
    assert not importers, f"production modules import isolator.testing: {sorted(importers)}"


def test_the_import_finder_sees_an_import_of_the_test_doubles(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from isolator.testing import RecordingDriverClient\n")
    assert "isolator.testing" in _imports("isolator.probe", probe, _modules())


def test_no_test_imports_from_conftest() -> None:
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ImportFrom) and node.module == "conftest") or (
                isinstance(node, ast.Import) and any(a.name == "conftest" for a in node.names)
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"import tests.support instead of conftest: {offenders}"


def test_actors_knows_nothing_of_volumes() -> None:
    modules = _modules()
    for name, path in modules.items():
        if name.split(".")[0] == "actors":
            wrong = {t for t in _imports(name, path, modules) if t.startswith("isolator")}
            assert not wrong, f"{name} imports {wrong}"


@pytest.mark.parametrize("module", ["isolator.launcher", "isolator.launch.mounting", "isolator"])
def test_the_launcher_loads_neither_the_actor_runtime_nor_http(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('pykka', 'httpx', 'actors') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_driver_clients_are_public_at_the_top() -> None:
    assert isolator.DockerPluginClient is DockerPluginClient
    assert isolator.DvdcliClient is DvdcliClient
    assert {"DockerPluginClient", "DvdcliClient", "DockerVolumeIsolatorActor"} <= set(
        isolator.__all__
    )
