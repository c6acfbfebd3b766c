"""Re-running a finished campaign: the second run should generate and encode nothing.

    python benchmarks/rerun.py [--brief examples/briefs/lumen-fizz.yaml] [--json FILE]

Runs the brief twice in one process against a fresh embedded state (SQLite + local asset folder in a
temporary directory), after warming up Prefect's ephemeral server so neither run pays its start-up.
Prints a table of wall time, scenes generated / reused and deliverables encoded / reused, and the
second run's time as a fraction of the first (target: under 20%).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brief", type=Path, default=ROOT / "examples" / "briefs" / "lumen-fizz.yaml")
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="syncreel-bench-"))
    from syncreel.schemas.settings import embedded_environment

    os.environ.update(embedded_environment(state))
    from prefect import flow

    from syncreel.flows.campaign import produce_campaign
    from syncreel.schemas.brief import load_brief

    @flow
    def warm_up() -> None:
        """Start the ephemeral Prefect server before timing anything."""

    warm_up()
    brief = load_brief(args.brief)
    rows = []
    for label in ("first run", "second run"):
        started = time.perf_counter()
        summary = produce_campaign(brief)
        seconds = time.perf_counter() - started
        encoded = sum(not d.cached for d in summary.deliverables)
        rows.append(
            {
                "run": label,
                "seconds": round(seconds, 2),
                "scenes_generated": summary.generated,
                "scenes_reused": summary.reused,
                "deliverables_encoded": encoded,
                "deliverables_reused": len(summary.deliverables) - encoded,
                "status": summary.status,
            }
        )
    ratio = rows[1]["seconds"] / rows[0]["seconds"]

    header = (
        "run",
        "seconds",
        "scenes_generated",
        "scenes_reused",
        "deliverables_encoded",
        "deliverables_reused",
        "status",
    )
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(header, widths, strict=True)))
    print(f"second / first = {ratio:.3f}  (target < 0.20)  brief: {args.brief.name}, state: {state}")
    if args.json:
        args.json.write_text(json.dumps({"brief": str(args.brief), "runs": rows, "second_over_first": ratio}, indent=2))
    return 0 if rows[1]["scenes_generated"] == 0 and rows[1]["deliverables_encoded"] == 0 else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
