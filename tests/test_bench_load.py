"""bench/load.py's registry for the service under test: the versions, routed as asked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from registry import RoutingTable

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("load_bench", ROOT / "bench" / "load.py")
load_bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load_bench)


def test_routed_registry_links_the_versions_and_splits_traffic(tmp_path: Path) -> None:
    models = tmp_path / "models"
    for version in ("3", "5", "7"):
        (models / "sst2" / version).mkdir(parents=True)
        (models / "sst2" / version / "manifest.json").write_text(version)
    folder = load_bench.routed_registry(tmp_path / "ab", models, "sst2", {"3": 50, "5": 50})
    assert RoutingTable.read(folder).routes == {"sst2": {"3": 50, "5": 50}}
    assert sorted(p.name for p in (folder / "sst2").iterdir()) == ["3", "5"]
    assert (folder / "sst2" / "5" / "manifest.json").read_text() == "5"


def test_routed_registry_refuses_a_missing_version(tmp_path: Path) -> None:
    (tmp_path / "models" / "sst2" / "3").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no version sst2/4"):
        load_bench.routed_registry(tmp_path / "ab", tmp_path / "models", "sst2",
                                   {"3": 50, "4": 50})


def test_markdown_explains_the_spinning_rows_and_compares_with_the_naive_app() -> None:
    row = {"p50_ms": 2.0, "p95_ms": 3.0, "p99_ms": 4.0, "errors": 0}
    rows = [{"app": "service, dynamic batching", "concurrency": 32, "rps": 600.0, **row},
            {"app": "service, dynamic batching, spinning threads", "concurrency": 32,
             "rps": 500.0, **row},
            {"app": "naive FastAPI app", "concurrency": 32, "rps": 50.0, **row}]
    ceil = {"b1_p50_ms": 1.1, "b1": 800.0, "b32": 700.0}
    text = load_bench.markdown(rows, ceil, "b1", "sst2/3", 10, "python bench/load.py")
    assert "APP_ALLOW_SPINNING=false" in text and '"spinning threads"' in text
    assert "| service, dynamic batching | 32 | 600 | 2.00 | 3.00 | 4.00 | 0 | 75 % | 12.0x |" \
        in text
