"""docs/architecture.md is the layout's contract: its import tables are checked against the code,
with the size and role rules of issue 14 (no module over 600 lines, chaos only behind the harness)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PRODUCT = ("sre_space", "operators", "flows", "sinks", "dashboard", "chaos")
MAX_LINES = 600


def _table(heading_row: str) -> dict[str, list[str]]:
    """The two-column table of the doc whose header row starts with `heading_row`."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading_row))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        left, right = (cell.strip() for cell in line.strip("|").split("|"))
        rows[left.strip("`")] = re.findall(r"`([\w.]+)`", right)
    return rows


IMPORTS = _table("| package | may import |")
LIBRARIES = _table("| library | only in |")


def _modules() -> dict[str, Path]:
    out = {}
    for root in PRODUCT:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _row(module: str) -> str:
    """The nearest listed package of a module."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in IMPORTS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} belongs to no row of docs/architecture.md")


def _covers(entry: str, row: str) -> bool:
    # `sre_space` is the core only; its application packages have rows of their own.
    return row == entry or (entry != "sre_space" and row.startswith(entry + "."))


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_every_package_the_doc_names_exists() -> None:
    for package in {*IMPORTS, *(p for ps in IMPORTS.values() for p in ps)}:
        assert package in MODULES, f"docs/architecture.md names {package}, which does not exist"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_doc(module: str) -> None:
    row = _row(module)
    for target in sorted(_imports(MODULES[module])):
        if target.split(".")[0] not in (*PRODUCT, "tests"):
            continue
        if target not in MODULES:
            continue  # `from pkg import name` also yields pkg.name; the module itself is checked
        target_row = _row(target)
        if target_row == row:
            continue
        allowed = IMPORTS[row]
        assert any(_covers(entry, target_row) for entry in allowed), (
            f"{module} imports {target} ({target_row}); docs/architecture.md lets {row} "
            f"import only {', '.join(allowed) or 'nothing'}"
        )


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_libraries_stay_in_their_role(library: str) -> None:
    for module, path in MODULES.items():
        if any(t == library or t.startswith(library + ".") for t in _imports(path)):
            assert any(_inside(module, p) for p in LIBRARIES[library]), (
                f"{module} imports {library}; docs/architecture.md keeps it in "
                f"{', '.join(LIBRARIES[library])}"
            )


def test_nothing_imports_the_tests() -> None:
    for module, path in MODULES.items():
        assert not any(_inside(t, "tests") for t in _imports(path)), module


def test_no_product_module_over_600_lines() -> None:
    sources = [*MODULES.values(), *(REPO / "operators").rglob("*.[ch]")]
    long = {
        str(p.relative_to(REPO)): n
        for p in sources
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
