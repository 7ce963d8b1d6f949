"""`make bench`: run every benchmark module and print one table of seconds and ratios.

Each module in :data:`MODULES` exposes ``run(report)``; ``report(name, seconds, baseline_seconds=None,
note="")`` records one row. A baseline is measured in the same process (a hand-written query, the
reference evaluator, a one-by-one loop), so ratios compare like with like on this machine.

    python -m benchmarks                 # everything
    python -m benchmarks segments sends  # only these
    BENCH_SIZE=small python -m benchmarks  # a quick pass on a small data set
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time

from rich.console import Console
from rich.table import Table

MODULES = {
    "ingest": "benchmarks.bench_ingest",
    "tags": "benchmarks.bench_tags",
    "segments": "benchmarks.bench_segments",
    "sends": "benchmarks.bench_sends",
    "realtime": "benchmarks.bench_realtime",
    "journeys": "benchmarks.bench_journeys",
    "stores": "benchmarks.bench_stores",
    "engines": "benchmarks.bench_engines",
}


def main(argv: list[str]) -> int:
    wanted = argv or list(MODULES)
    rows: list[tuple[str, str, float, float | None, str]] = []
    console = Console(width=int(os.environ.get("COLUMNS", "160")))  # the table stays readable in a log
    failures = 0
    for key in wanted:
        module_name = MODULES[key]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            console.print(f"[yellow]{key}: {module_name} is not there yet, skipped[/yellow]")
            continue

        def report(name: str, seconds: float, baseline_seconds: float | None = None, note: str = "",
                   _group: str = key) -> None:
            rows.append((_group, name, seconds, baseline_seconds, note))
            console.print(f"  {_group}: {name}: {seconds:.3f} s {note}")

        console.print(f"[bold]{key}[/bold] ({module_name})")
        started = time.perf_counter()
        try:
            module.run(report)
        except Exception as exc:  # one failing benchmark must not hide the others' figures
            failures += 1
            console.print(f"[red]{key} failed: {type(exc).__name__}: {exc}[/red]")
        console.print(f"  ({time.perf_counter() - started:.1f} s in all)")

    table = Table(title=f"Motorcade benchmarks — {platform.processor() or platform.machine()}, "
                        f"{os.cpu_count()} cores, Python {platform.python_version()}")
    for column in ("group", "benchmark", "seconds", "baseline s", "ratio", "note"):
        table.add_column(column, justify="right" if column in ("seconds", "baseline s", "ratio") else "left")
    for group, name, seconds, baseline, note in rows:
        ratio = f"{seconds / baseline:.2f}×" if baseline else "-"
        table.add_row(group, name, f"{seconds:.3f}", f"{baseline:.3f}" if baseline else "-", ratio, note)
    console.print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
