"""The benchmark scripts in ``bench/`` still import: a name the package moves or renames fails here, not on
the day someone runs a bench.

Each script is imported as ``python bench/<script>.py`` would (``bench/`` first on the path, for its
``timing`` helper) without running ``main``. Importing alone would miss the names a script imports inside
``main``, so every ``import`` statement in a script, at any depth, is also resolved: the module must import
and every name taken from it must exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))
LOCAL = {p.stem for p in SCRIPTS}  # bench/ modules the scripts import from each other (``timing``)


def test_there_are_benches_to_check():
    assert {"bench_e2e", "bench_pipeline", "bench_privacy", "bench_quality", "bench_retention", "timing"} <= LOCAL


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_bench_script_imports_without_running(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    name = f"bench_script_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)  # the ``__main__`` guard keeps ``main`` from running
    if script.stem.startswith("bench_"):
        assert callable(module.main)


def _imports(script: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every import in ``script``, at any depth; ``name`` is None for ``import x``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_name_a_bench_imports_exists_even_inside_main(script):
    missing = []
    for module_name, name in _imports(script):
        if module_name.split(".")[0] in LOCAL or module_name == "__future__":
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing.append(f"{module_name}: {exc}")
            continue
        if name is not None and not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")  # ``from package import submodule``
            except ImportError:
                missing.append(f"{module_name}.{name}")
    assert missing == [], f"{script.name} imports names that do not exist: {missing}"


def test_the_import_check_catches_a_moved_name(tmp_path):
    script = tmp_path / "bench_gone.py"
    script.write_text("def main():\n    from transfers.pipeline import Staging\n    from transfers import staging\n")
    assert _imports(script) == [("transfers.pipeline", "Staging"), ("transfers", "staging")]
    with pytest.raises(AssertionError, match=r"transfers\.pipeline\.Staging"):
        test_every_name_a_bench_imports_exists_even_inside_main(script)


def _load(stem: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_script_{stem}", BENCH / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_bench_workers_counts_a_mapped_step_s_plan_parts_and_seal_as_one_stage(monkeypatch):
    stage_of = _load("bench_workers", monkeypatch).stage_of(["police"])
    assert {t for t, s in stage_of.items() if s == "quality"} == {"quality", "quality_part", "quality_seal"}
    assert {t for t, s in stage_of.items() if s == "encrypt_police"} == {
        "encrypt_police", "encrypt_police_part", "seal_police"}
    assert stage_of["extract"] == "extract" and stage_of["deliver_police"] == "deliver_police"


def test_bench_workers_takes_worker_counts_and_a_store_and_refuses_a_zero_count(monkeypatch, capsys):
    bench = _load("bench_workers", monkeypatch)
    args = bench.parse_args(["3000000", "--workers", "1", "2", "--store", "volume"])
    assert (args.rows, args.workers, args.store, args.part_rows) == (3_000_000, [1, 2], "volume", None)
    assert bench.parse_args(["10"]).store == "s3"
    with pytest.raises(SystemExit):
        bench.parse_args(["10", "--workers", "0"])
    assert "--workers" in capsys.readouterr().err
