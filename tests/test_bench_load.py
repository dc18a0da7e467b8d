"""bench/load.py: its registry for the service under test (the versions, routed as asked),
the median of repeated wrk runs, and its report (a table with a row per server and
concurrency and the ratios to the service, and the chart)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from registry import RoutingTable

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("load_bench", ROOT / "bench" / "load.py")
load_bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load_bench)
import load_report  # noqa: E402  (bench/, on the path once load.py is loaded)
import load_servers  # noqa: E402


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
    assert ("| service, dynamic batching | 32 | 600 | 2.00 | 3.00 | 4.00 | 0 | 75 % | 12.0x "
            "| 1.00x | 1.00x | 1.00x |") in text
    assert "| naive FastAPI app | 32 | 50 | 2.00 | 3.00 | 4.00 | 0 | 6 % | 1.0x | 0.08x |" in text


SERVERS = ("service, dynamic batching", "service, no cross-request batching",
           "LitServe 0.2.19, dynamic batching (max 32, 2 ms)",
           "BentoML 1.4.40, adaptive batching (max 32)")


def _fabricated_rows() -> list[dict]:
    """Every server at every level; LitServe ahead of the service at 128 clients only."""
    rows = []
    for i, app in enumerate(SERVERS):
        for c in load_bench.CONCURRENCY:
            rps = 400.0 + c - 50 * i + (300 if app.startswith("LitServe") and c == 128 else 0)
            rows.append({"app": app, "concurrency": c, "rps": rps, "p50_ms": c / 4 + i,
                         "p95_ms": c / 3 + i, "p99_ms": c / 2 + 2 * i, "errors": 0})
    return rows


def test_the_report_has_a_row_per_server_and_level_with_ratios_and_says_who_is_ahead() -> None:
    rows = _fabricated_rows()
    ceil = {"b1_p50_ms": 0.8, "b1": 1000.0, "b32": 1100.0}
    text = load_bench.markdown(rows, ceil, "b32", "sst2/8", 8, "python bench/load.py", 3,
                               "benchmarks-load.png", "a CPU, 2 cores", registered_b1_ms=0.4)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header = next(line for line in table if line.startswith("| app |"))
    assert header.endswith("| req/s vs service | p50 vs service | p99 vs service |")
    rows_of = [line.split(" | ")[0][2:] for line in table if " | --- " not in line]
    assert sorted(rows_of) == sorted(["app", "batch size", "sentences/s"]
                                     + [app for app in SERVERS for _ in load_bench.CONCURRENCY])
    assert ("| LitServe 0.2.19, dynamic batching (max 32, 2 ms) | 128 | 728 | 34.00 | 44.67 | "
            "68.00 | 0 | 66 % | 1.38x | 1.06x | 1.06x |") in table
    assert "this machine ran 2.0x as slow in this run" in text
    assert "the median of 3 such runs" in text and "Machine: a CPU, 2 cores." in text
    assert "pip install -e '.[bench]'" in text
    assert ("- LitServe 0.2.19, dynamic batching (max 32, 2 ms) answers more requests/s than "
            "the service at 128 clients (1.38x).") in text
    assert "BentoML 1.4.40, adaptive batching (max 32) answers more" not in text
    assert text.endswith("![requests/s and p99 against clients, one line per server]"
                         "(benchmarks-load.png)")


def test_the_chart_is_written_as_a_png(tmp_path: Path) -> None:
    chart = load_bench.write_chart(_fabricated_rows(), 1100.0, tmp_path / "docs" / "load.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 10_000


def test_repeated_runs_report_each_figure_as_its_median() -> None:
    runs = [{"rps": r, "p50_ms": p, "p99_ms": 3 * p, "errors": e, "requests": 10,
             "status_errors": 0} for r, p, e in ((100, 5, 0), (300, 1, 1), (200, 9, 0))]
    assert load_servers.median_of(runs) == {"rps": 200, "p50_ms": 5, "p99_ms": 15,
                                            "errors": 1, "requests": 30, "status_errors": 0}


def test_the_ceiling_streams_every_text_once_in_batches_across_the_workers() -> None:
    texts = [f"t{i}" for i in range(23)]
    seen: list[list[str]] = []
    load_bench._in_order(seen.append, texts, 4, workers=3)
    assert sorted(t for batch in seen for t in batch) == sorted(texts)
    assert sorted(len(batch) for batch in seen) == [3, 4, 4, 4, 4, 4]


def test_the_overload_benchmark_loads_with_the_load_helpers() -> None:
    """bench/overload.py imports its helpers from load.py and load_servers.py (an import
    that went stale once when load.py was split)."""
    spec = importlib.util.spec_from_file_location("overload_bench", ROOT / "bench" / "overload.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main) and module.wrk is load_servers.wrk


def test_the_cpu_table_bounds_the_share_of_the_ceiling_two_shared_cores_allow() -> None:
    row = {"app": "service, dynamic batching", "concurrency": 32, "rps": 1000.0,
           "p50_ms": 2.0, "p95_ms": 3.0, "p99_ms": 4.0, "errors": 0,
           "server_cpu_ms": 1.6, "wrk_cpu_ms": 0.4}
    ceil = {"b1_p50_ms": 0.8, "b32": 2000.0, "cpu_ms_b32": 1.0}
    lines = load_report.cpu_lines([row], ceil, "b32", cores=2)
    # 2 ms of CPU a request on 2 cores: at most 1,000 requests/s, half the ceiling.
    assert "| 32 | 1.60 | 0.60 | 0.40 | 1000 | 50 % | 1000 |" in lines
    assert lines[-1].startswith("90 % of the ceiling is 1800 requests/s: 2 cores then have "
                                "1.11 ms of CPU a request, of which the model alone takes "
                                "1.00, leaving 0.11 ms")
    assert load_report.cpu_lines([{**row, "app": "LitServe"}], ceil, "b32") == []


def test_a_server_sessions_cpu_time_is_read_from_proc() -> None:
    """A server in a session of its own (as `load_servers.start` runs it) that has burnt
    0.3 s of CPU is seen to have, while it lives."""
    import subprocess
    import sys

    burn = ("import sys, time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\nprint('burnt', flush=True)\n"
            "sys.stdin.read()")
    server = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert server.stdout.readline() == b"burnt\n"
        assert load_servers.session_cpu_s(server.pid) >= 0.3
    finally:
        server.communicate(b"", timeout=60)
    assert load_servers.session_cpu_s(server.pid) == 0.0  # nothing left of it
