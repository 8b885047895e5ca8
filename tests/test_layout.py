"""The test suite's own layout: test modules share code only through tests/support/.

A test module importing another test module collects the imported tests a second time (or
silently depends on another module's fixtures), and breaks when that module moves; what two
modules need goes to tests/support/ instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import userphoto

TESTS = Path(__file__).resolve().parent
PACKAGE = Path(userphoto.__file__).resolve().parent
# Folders of tests that are not a subpackage: the pure core's modules (model, resolve,
# imaging, facecrop, findings) and the deployment (docs/deploy, packaging, the README's
# commands, the walkthrough). Tests of userphoto's top-level service modules stay at tests/.
OTHER_FOLDERS = {"core", "deploy"}


def is_test_module(dotted: str) -> bool:
    """`tests.test_x`, `tests.store.test_x`, `test_x`: a module pytest collects tests from."""
    return dotted.rsplit(".", 1)[-1].startswith("test_")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every module an import statement in `path` names, including
    imports inside functions and the `from tests import test_x` form."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((node.lineno, base))
            prefix = base if base.endswith(".") else base + "."
            found += [(node.lineno, prefix + alias.name) for alias in node.names]
    return found


def test_no_test_module_imports_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        if "node_modules" not in path.parts
        for line, name in imported_modules(path)
        if is_test_module(name)
    ]
    assert not offenders, "move what they share to tests/support/:\n" + "\n".join(offenders)


def test_test_folders_mirror_the_package() -> None:
    """tests/store/ holds the store's tests, tests/web/ the pages', and so on."""
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    folders = {p.parent.relative_to(TESTS) for p in TESTS.rglob("test_*.py")} - {Path(".")}
    strays = sorted(str(f) for f in folders if str(f) not in subpackages | OTHER_FOLDERS)
    assert not strays, f"test folders that mirror nothing in userphoto/: {strays}"


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    """The check above would catch each way of importing a test module."""
    module = tmp_path / "test_sample.py"
    module.write_text(
        "import tests.test_a\n"
        "from tests.test_b import helper\n"
        "from tests.store import test_c\n"
        "from . import test_d\n"
        "def f():\n"
        "    from tests.web.test_e import csrf\n"
        "from tests.support.server import served\n"
    )
    flagged = sorted({name for _line, name in imported_modules(module) if is_test_module(name)})
    assert flagged == [
        ".test_d",
        "tests.store.test_c",
        "tests.test_a",
        "tests.test_b",
        "tests.web.test_e",
    ]
