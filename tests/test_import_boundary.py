"""The station and the CEC share only the wire format: ``device`` and ``receiver`` import ``protocol``, never
each other, and ``protocol`` imports neither (nor the screen, nor provisioning)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "device": {"receiver"},
    "web_ui": {"receiver"},
    "receiver": {"device", "web_ui", "provisioning"},
    "protocol": {"device", "receiver", "web_ui", "provisioning", "bench", "tests", "flask", "sqlite3", "psycopg",
                 "socket", "threading", "subprocess", "os", "pathlib"},
}


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = path.relative_to(ROOT).parent.parts
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            names.add(".".join([*base, node.module or ""]).strip("."))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.add("call:__import__")
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imported(path):
            if name.split(".")[0] in FORBIDDEN[package] or name == "call:__import__":
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_keeps_to_its_side_of_the_wire(package: str) -> None:
    assert violations(package) == []


def test_device_and_receiver_both_use_the_protocol_package() -> None:
    for package in ("device", "receiver"):
        users = [p for p in (ROOT / package).rglob("*.py") if any(n.startswith("protocol") for n in imported(p))]
        assert users, f"{package} should take the wire format from protocol/"


def test_the_check_sees_an_import_across_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "receiver"
    fake.mkdir()
    (fake / "bad.py").write_text("from device.upstream import outbox\nfrom .registry import Registry\n"
                                 "def f():\n    import device.keys\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(imported(fake / "bad.py")) == ["device.keys", "device.upstream", "receiver.registry"]
    assert len(violations("receiver")) == 2


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports, at any depth of its code (functions included)."""
    modules = {module_name(p): p for package in packages for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported_name in imported(path):
            while imported_name and imported_name not in modules:
                imported_name = imported_name.rpartition(".")[0]
            if imported_name and imported_name != name and not name.startswith(imported_name + "."):
                targets.add(imported_name)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, found by depth-first search (each reported once from its first module)."""
    found, done = [], set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            found.append(trail[trail.index(node):] + [node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*trail, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return found


@pytest.mark.parametrize("package", ["receiver", "protocol", "device", "web_ui", "tools", "provisioning"])
def test_no_import_circle(package: str) -> None:
    assert circles(import_graph((package,))) == []


def test_the_circle_check_sees_a_circle_through_a_function_import() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
