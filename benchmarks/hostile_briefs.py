"""How fast and how cheaply `syncreel validate` refuses hostile briefs: seconds and peak memory per case.

    python benchmarks/hostile_briefs.py [--json FILE]

Each case runs `syncreel validate` in its own process (``python -m syncreel.cli validate``) and reads that
process's own peak resident memory from ``wait4``; the example brief is the baseline measured in the
same run, so the ratios say what a hostile brief costs over a good one. The issue's targets: a 50 MB
brief and a billion-laughs brief refused with exit 2 in under 2 s and under 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "briefs" / "lumen-fizz.yaml"


def fifty_megabytes(path: Path) -> Path:
    with path.open("w") as handle:
        handle.write("campaign_id: big\nnotes: |\n")
        for _ in range(50 * 1024):
            handle.write("  " + "x" * 1021 + "\n")
    return path


def billion_laughs(path: Path, levels: int = 9) -> Path:
    lines = ['lol: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    path.write_text("\n".join([*lines, f"campaign_id: *a{levels}"]) + "\n")
    return path


def deep(path: Path) -> Path:
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    return path


def deep_json(path: Path) -> Path:
    path.write_text("[" * 200_000 + "]" * 200_000)
    return path


def measure(brief: Path) -> dict[str, float | int]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "syncreel.cli", "validate", str(brief)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    return {
        "exit": process.returncode,
        "seconds": seconds,
        "peak_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
        "traceback": "Traceback" in stderr,
        "size_mb": brief.stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syncreel-hostile-") as folder:
        scratch = Path(folder)
        cases = {
            "example brief (baseline)": EXAMPLE,
            "50 MB brief": fifty_megabytes(scratch / "big.yaml"),
            "billion laughs (10^9 values)": billion_laughs(scratch / "laughs.yaml"),
            "5,000 nested lists": deep(scratch / "deep.yaml"),
            "200,000 nested JSON arrays": deep_json(scratch / "deep.json"),
        }
        rows = {name: measure(path) for name, path in cases.items()}
    base = rows["example brief (baseline)"]
    print(f"{'case':<30} {'MB in':>7} {'exit':>4} {'seconds':>8} {'× base':>7} {'peak MB':>8} {'× base':>7}  traceback")
    for name, row in rows.items():
        print(
            f"{name:<30} {row['size_mb']:>7.2f} {row['exit']:>4} {row['seconds']:>8.2f} "
            f"{row['seconds'] / base['seconds']:>7.2f} {row['peak_mb']:>8.1f} {row['peak_mb'] / base['peak_mb']:>7.2f}"
            f"  {'yes' if row['traceback'] else 'no'}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
