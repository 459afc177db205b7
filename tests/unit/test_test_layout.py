"""The tests' own layout: unit tests mirror ``transfers/``, and every test that runs a real part is marked.

A unit test of ``transfers/<package>/<module>.py`` lives in ``tests/unit/<package>/test_<module>.py``
(httpx's layout); a top-level module's test stays in ``tests/unit/`` as ``test_<module>.py`` or
``test_<module>_<aspect>.py``. Every folder is a Python package, so two ``test_run.py`` in different
folders import as different modules instead of clashing.

A test that starts a real part (``gpg``, ``sshd``, PostgreSQL, Chromium) is an integration test and carries
the ``integration`` marker, so ``pytest -m "not integration"`` needs no server. The check reads the source:
a test needs a real part when it, a fixture it asks for, or a function it calls reaches ``require_part``
for one of those parts (the gate every real-part fixture in ``tests/conftest.py`` and ``tests/support/sshd.py`` passes), starts Chromium
through ``render_offline``, or runs one of their binaries with ``subprocess``. Parts that are not servers
(``chattr``, mounts: root on a real filesystem) do not make a test an integration test. The check does not
follow calls made through attributes (``home.decrypt(...)``); the fixture that made ``home`` is what gets
the test caught. A fixture in a ``conftest.py`` under ``tests/unit/`` is read too, and shadows a shared fixture
of the same name for the tests below it, as pytest does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import transfers

TESTS = Path(__file__).resolve().parents[1]
UNIT = TESTS / "unit"
PACKAGE = Path(transfers.__file__).parent

# Top-level unit tests that test the project as a whole, not one module of transfers/.
PROJECT_WIDE = {
    "test_layering.py": "imports across all of transfers/",
    "test_compose.py": "docker-compose.yml",
    "test_config_files.py": "every file under config/",
    "test_dagbag.py": "the DAG files in dags/",
    "test_test_layout.py": "tests/ itself",
    "test_readme_layout.py": "the README's layout section against the tree",
    "test_benches.py": "the scripts in bench/",
}
REAL_PART = "<real part>"  # what a gate below is recorded as using
GATES = {REAL_PART, "render_offline"}
REAL_BINARIES = {"gpg", "gpg2", "gpg-agent", "sshd", "psql", "postgres", "pg_ctl", "initdb", "chromium",
                 "chromium-browser", "google-chrome"}
# How require_part names the parts that make a test an integration test ("OpenSSH sshd", "gpg", ...).
REAL_PART_WORDS = ("sshd", "gpg", "postgres", "chromium", "browser")
# Where the real-part fixtures and the helpers they call live (run_sshd is in tests/support/sshd.py).
SHARED = [TESTS / "support" / "sshd.py", TESTS / "conftest.py", TESTS / "browser.py",
          TESTS / "integration" / "conftest.py"]


# --------------------------------------------------------------------------- layout


def _module_names(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def layout_faults(unit: Path = UNIT, package: Path = PACKAGE) -> list[str]:
    """Every unit test file or folder that does not mirror ``package``, as ``path: why``."""
    faults = []
    for folder in sorted(p for p in unit.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        rel = folder.relative_to(unit)
        if not (package / rel / "__init__.py").is_file():
            faults.append(f"{rel}/: no package transfers/{rel}/ to mirror")
        if not (folder / "__init__.py").is_file():
            faults.append(f"{rel}/: no __init__.py (test modules of the same name in two folders would clash)")
    if not (unit / "__init__.py").is_file():
        faults.append("tests/unit/__init__.py is missing")
    top_modules = _module_names(package)
    for path in sorted(unit.glob("test_*.py")):
        stem = path.stem.removeprefix("test_")
        if path.name in PROJECT_WIDE:
            continue
        if not any(stem == m or stem.startswith(m + "_") for m in top_modules):
            faults.append(f"{path.name}: no top-level module transfers/{stem.split('_')[0]}*.py; a package's tests "
                          f"go in tests/unit/<package>/")
    return faults


def test_unit_tests_mirror_the_package():
    assert layout_faults() == []


def test_a_package_test_left_at_the_top_or_a_folder_without_a_package_is_caught(tmp_path):
    unit, package = tmp_path / "unit", tmp_path / "transfers"
    for folder in (package / "quality", unit / "quality", unit / "nowhere"):
        folder.mkdir(parents=True)
        (folder / "__init__.py").touch()
    (package / "files.py").touch()
    (unit / "__init__.py").touch()
    for name in ("test_files.py", "test_files_atomic.py", "test_quality_checks.py", "quality/test_checks.py"):
        (unit / name).touch()

    assert layout_faults(unit, package) == [
        "nowhere/: no package transfers/nowhere/ to mirror",
        "test_quality_checks.py: no top-level module transfers/quality*.py; a package's tests go in "
        "tests/unit/<package>/",
    ]


# --------------------------------------------------------------------------- integration markers


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _is_integration(node: ast.AST | None) -> bool:
    if isinstance(node, ast.List | ast.Tuple):
        return any(_is_integration(e) for e in node.elts)
    return node is not None and _dotted(node) == "pytest.mark.integration"


def _pytestmark(body: list[ast.stmt]) -> bool:
    return any(isinstance(s, ast.Assign) and any(_dotted(t) == "pytestmark" for t in s.targets)
               and _is_integration(s.value) for s in body)


def _is_fixture(fn: ast.FunctionDef) -> bool:
    return any(_dotted(d).endswith("fixture") for d in fn.decorator_list)


def _uses(fn: ast.FunctionDef) -> set[str]:
    """Names ``fn`` calls directly and the fixtures it asks for; ``REAL_PART`` if it reaches one itself."""
    # A helper's parameters are values its caller passes, not fixtures: only fixtures and tests ask for fixtures.
    asks = _is_fixture(fn) or fn.name.startswith("test")
    used = {a.arg for a in fn.args.args + fn.args.kwonlyargs} if asks else set()
    for d in fn.decorator_list:
        if _dotted(d) == "pytest.mark.usefixtures" and isinstance(d, ast.Call):
            used |= {a.value for a in d.args if isinstance(a, ast.Constant)}
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name):
            used.add(node.func.id)
        first = node.args[0] if node.args else None
        if (_dotted(node.func) == "require_part" and isinstance(first, ast.Constant)
                and any(w in str(first.value).lower() for w in REAL_PART_WORDS)):
            used.add(REAL_PART)
        if (_dotted(node.func).startswith("subprocess.") and isinstance(first, ast.List | ast.Tuple) and first.elts
                and isinstance(first.elts[0], ast.Constant) and str(first.elts[0].value).split("/")[-1] in REAL_BINARIES):
            used.add(REAL_PART)
    return used


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _needing_parts(defs: dict[str, ast.FunctionDef], known: set[str]) -> set[str]:
    """``known`` (minus names ``defs`` shadows) plus every name in ``defs`` that reaches one of them."""
    real = (known - defs.keys()) | GATES
    grew = True
    while grew:
        grew = False
        for name, fn in defs.items():
            if name not in real and _uses(fn) & real:
                real.add(name)
                grew = True
    return real


def _shared_real() -> set[str]:
    real: set[str] = set()
    for path in SHARED:
        real = _needing_parts(_functions(ast.parse(path.read_text(encoding="utf-8"))), real) | real
    return real


def unmarked_real_part_tests(source: str, shared: set[str]) -> list[str]:
    """Tests in ``source`` that need a real part (directly or through ``shared`` names) but are not marked."""
    tree = ast.parse(source)
    if _pytestmark(tree.body):
        return []
    found = []
    scopes: list[tuple[str, list[ast.stmt], bool]] = [("", tree.body, False)]
    scopes += [(f"{c.name}::", c.body, _pytestmark(c.body) or any(_is_integration(d) for d in c.decorator_list))
               for c in tree.body if isinstance(c, ast.ClassDef)]
    real = _needing_parts(_functions(tree), shared)
    for prefix, body, marked in scopes:
        for fn in body:
            if (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test") and not marked
                    and not any(_is_integration(d) for d in fn.decorator_list) and (_uses(fn) - {"self"}) & real):
                found.append(prefix + fn.name)
    return found


def _with_folder_conftests(test_file: Path, shared: set[str]) -> set[str]:
    """``shared`` as seen from ``test_file``: a fixture a ``conftest.py`` under ``tests/unit/`` defines on its way
    shadows a shared one of the same name (a unit ``world`` is not the integration ``world``), unless it too
    reaches a real part."""
    real = shared
    folders = [UNIT]
    for part in test_file.parent.relative_to(UNIT).parts:
        folders.append(folders[-1] / part)
    for folder in folders:
        conftest = folder / "conftest.py"
        if conftest.is_file():
            real = _needing_parts(_functions(ast.parse(conftest.read_text(encoding="utf-8"))), real)
    return real


def test_every_unit_test_that_runs_a_real_part_is_marked_integration():
    shared = _shared_real()
    assert {"sshd", "gpg_partner", "gpg_home", "chromium"} <= shared  # the check is not vacuous
    unmarked = {str(p.relative_to(TESTS)): unmarked_real_part_tests(p.read_text(encoding="utf-8"),
                                                                    _with_folder_conftests(p, shared))
                for p in sorted(UNIT.rglob("test_*.py"))}
    assert {path: tests for path, tests in unmarked.items() if tests} == {}


def test_a_unit_conftest_fixture_shadows_the_integration_one_of_the_same_name():
    shared = _shared_real()
    assert "world" in shared  # tests/integration/conftest.py: sshd, gpg and PostgreSQL
    assert "world" not in _with_folder_conftests(UNIT / "retention" / "test_purge.py", shared)  # a real directory
    assert "world" in _with_folder_conftests(UNIT / "test_files.py", shared)


def test_every_integration_test_file_is_marked_as_a_whole():
    unmarked = [p.name for p in sorted((TESTS / "integration").glob("test_*.py"))
                if not _pytestmark(ast.parse(p.read_text(encoding="utf-8")).body)]
    assert unmarked == []


@pytest.mark.parametrize(("source", "unmarked"), [
    ("def test_a(gpg_home): pass", ["test_a"]),
    ("import pytest\n@pytest.mark.integration\ndef test_a(gpg_home): pass", []),
    ("import pytest\npytestmark = [pytest.mark.integration]\ndef test_a(sshd): pass", []),
    ("import pytest\n@pytest.fixture\ndef key(gpg_partner): pass\ndef test_a(key): pass", ["test_a"]),
    ("def helper(tmp):\n    require_part('gpg', False)\ndef test_a(tmp_path):\n    helper(tmp_path)", ["test_a"]),
    ("def helper(tmp):\n    require_part('chattr +i', False)\ndef test_a(tmp_path):\n    helper(tmp_path)", []),
    ("import subprocess\ndef test_a():\n    subprocess.run(['gpg', '--version'])", ["test_a"]),
    ("import pytest\n@pytest.mark.usefixtures('chromium')\ndef test_a(): pass", ["test_a"]),
    ("class TestA:\n    def test_a(self, sshd): pass", ["TestA::test_a"]),
    ("def helper(sshd): pass\ndef test_a(tmp_path):\n    helper(tmp_path)", []),
    ("import pytest\n@pytest.fixture\ndef sshd(): pass\ndef test_a(sshd): pass", []),  # a local stand-in
    ("import subprocess\ndef test_a(tmp_path):\n    subprocess.run(['chattr', '+i', str(tmp_path)])", []),
])
def test_the_marker_check_finds_what_it_should(source, unmarked):
    assert unmarked_real_part_tests(source, _shared_real()) == unmarked
