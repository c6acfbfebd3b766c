"""benchmarks/load.py's parts that need no stack: its arguments, its percentiles and how it counts a Prefect
server's errors in a log (the load run itself is a benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def load() -> ModuleType:
    """benchmarks/load.py (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("syncreel_load", ROOT / "benchmarks" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_arguments_default_to_twenty_campaigns_and_refuse_none(load: ModuleType, capsys: pytest.CaptureFixture):
    args = load.parse_args(["--json", "out.json", "--keep"])
    assert (args.campaigns, args.json, args.keep, args.submit) == (20, Path("out.json"), True, None)
    with pytest.raises(SystemExit):
        load.parse_args(["--campaigns", "0"])
    assert "--campaigns must be at least 1, got 0" in capsys.readouterr().err


def test_percentiles_interpolate_between_ranks(load: ModuleType):
    values = [float(n) for n in range(20, 0, -1)]  # 20 latencies, unordered
    assert load.percentile(values, 50) == pytest.approx(10.5)
    assert load.percentile(values, 95) == pytest.approx(19.05)
    assert load.percentile([7.0], 95) == 7.0


def test_server_errors_count_5xx_access_lines_error_lines_and_tracebacks(load: ModuleType, tmp_path: Path):
    log = tmp_path / "server.log"
    log.write_text(
        '02:00:28.144 | INFO    | uvicorn.error - 127.0.0.1:49336 - "WebSocket /api/events/out" [accepted]\n'
        '02:00:28.147 | INFO    | uvicorn.access - 127.0.0.1:49290 - "GET /api/flow_runs/1 HTTP/1.1" 200\n'
        '02:00:28.335 | INFO    | uvicorn.access - 127.0.0.1:39072 - "POST /api/deployments/ HTTP/1.1" 201\n'
        '02:00:29.001 | INFO    | uvicorn.access - 127.0.0.1:39074 - "POST /api/task_runs/ HTTP/1.1" 503\n'
        "02:00:29.123 | INFO    | prefect.server - a message that says ERROR in its text\n"
        "02:00:29.124 | ERROR   | prefect.server - Encountered exception in request:\n"
        "Traceback (most recent call last):\n"
        "ValueError: boom\n"
        "prefect server ready\n"
    )
    assert load.server_errors(log) == {"error_lines": 1, "tracebacks": 1, "requests": 3, "http_5xx": 1}
