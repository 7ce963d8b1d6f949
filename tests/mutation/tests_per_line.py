"""Run, for one mutant, only the tests that execute the code it changed.

Before a module's mutants run, :func:`build_map` runs the module's test selection once under coverage with one
context per test (pytest-cov's ``--cov-context=test``) and writes, for every line of the module, the tests that
execute the statement holding that line, in the selection's own order. Then cosmic-ray's test command is
``run.py --tests-for MODULE``: it reads which lines the mutant changed from ``git diff`` (cosmic-ray edits the
file in place and the module has no uncommitted changes of its own, which run.py checks) and runs only those
tests with ``pytest -x``.

Why this is sound: the selection's tests are deterministic under the ``mutation`` Hypothesis profile
(derandomized, no database), so a test that never executes a statement of the unmutated module meets the same
inputs with the mutant in place and never executes the mutated statement either; it passes as before and
running it proves nothing. Conservative where that reasoning does not hold:

* a statement executed outside any test (at import: module constants, ``def`` lines with their defaults and
  decorators, class bodies) or while a fixture was set up or torn down (a fixture's result can reach tests
  that never execute the statement themselves) selects the whole selection;
* a line is widened to the smallest statement holding it (coverage records a multi-line statement on some of
  its lines only); a compound statement's header takes the tests of its whole body;
* a mutant whose diff cannot be read selects the whole selection.

A mutant on a statement no test executes survives without running anything, which is what running every test
would also have found.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ALL = "*"  # in a line's list: run the whole selection


def _statement_spans(source: str) -> list[tuple[int, int]]:
    return sorted(((node.lineno, node.end_lineno or node.lineno) for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.stmt)), key=lambda span: span[1] - span[0])


def _smallest_statement(spans: list[tuple[int, int]], line: int) -> tuple[int, int]:
    for start, end in spans:  # narrowest first
        if start <= line <= end:
            return start, end
    return line, line


def collect_order(python: str, root: Path, tests: list[str]) -> list[str]:
    """The selection's test ids in the order pytest runs them."""
    out = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", "-p",
                          "no:cacheprovider", *tests], cwd=root, capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if "::" in line]


def build_map(python: str, root: Path, module: str, tests: list[str], out: Path, env: dict[str, str]) -> dict:
    """Run ``tests`` once under coverage (its data beside ``out``, where the caller keeps the map): for each
    line of ``module``, the tests to run."""
    order = collect_order(python, root, tests)
    data_file = out.with_suffix(".coverage")
    data_file.unlink(missing_ok=True)
    started = time.perf_counter()
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                          f"--cov={Path(module).parent}", "--cov-context=test", "--cov-report=", "--durations=0",
                          "--durations-min=0", *tests],
                         cwd=root, env={**env, "COVERAGE_FILE": str(data_file)}, capture_output=True, text=True)
    print(run.stdout[-2000:], run.stderr[-2000:], sep="\n", flush=True)
    if run.returncode:
        raise SystemExit(f"the tests of {module} fail without any mutant: fix them first")
    seconds = time.perf_counter() - started
    durations: dict[str, float] = {}
    for took, test in re.findall(r"^\s*([\d.]+)s (?:setup|call|teardown)\s+(\S.*?)\s*$", run.stdout, flags=re.M):
        durations[test] = durations.get(test, 0.0) + float(took)
    import coverage

    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    path = str((root / module).resolve())
    by_line = data.contexts_by_lineno(path)
    if not by_line:
        raise SystemExit(f"coverage recorded nothing for {module}: are its tests importing this checkout?")
    rank = {test: index for index, test in enumerate(order)}
    source = (root / module).read_text(encoding="utf-8")
    spans = _statement_spans(source)
    lines: dict[str, list[str]] = {}
    for line in range(1, source.count("\n") + 2):
        start, end = _smallest_statement(spans, line)
        tests_here: set[str] = set()
        everything = False
        for covered in range(start, end + 1):
            for context in by_line.get(covered, ()):
                test, _, phase = context.partition("|")
                if not test or phase != "run" or test not in rank:
                    everything = True
                else:
                    tests_here.add(test)
        if everything:
            lines[str(line)] = [ALL]
        elif tests_here:
            lines[str(line)] = sorted(tests_here, key=rank.__getitem__)
    return {"module": module, "order": order, "lines": lines, "seconds": round(seconds, 1),
            "durations": {test: round(durations.get(test, 0.0), 2) for test in order}}


def changed_lines(root: Path, module: str) -> list[int] | None:
    """Lines of the committed ``module`` that the working copy changes (None if the diff cannot be read)."""
    diff = subprocess.run(["git", "diff", "-U0", "HEAD", "--", module], cwd=root, capture_output=True,
                          text=True).stdout
    lines: list[int] = []
    for start, count in re.findall(r"^@@ -(\d+)(?:,(\d+))? \+", diff, flags=re.M):
        first, n = int(start), 1 if count == "" else int(count)
        lines += list(range(first, first + n)) if n else [first, first + 1]  # pure insertion: the lines around it
    return lines or None


def tests_for(mapping: dict, lines: list[int] | None) -> list[str]:
    """The tests a mutant on ``lines`` runs, quickest first (as long as the unmutated module took them; the
    selection's order among equals): ``pytest -x`` stops at the first failure, so a killed mutant costs its
    quickest failing test, not the slow properties listed before it."""
    if lines is None:
        chosen = set(mapping["order"])
    else:
        chosen = set()
        for line in lines:
            tests = mapping["lines"].get(str(line), [])
            if ALL in tests:
                chosen = set(mapping["order"])
                break
            chosen.update(tests)
    durations = mapping.get("durations") or {}
    in_order = [test for test in mapping["order"] if test in chosen]
    return sorted(in_order, key=lambda test: durations.get(test, 0.0))  # stable: ties keep the selection's order


TIMEOUT = "mutation: timeout"  # how a hang is told apart in cosmic-ray's output (kept_outcomes.py, run.py)


def timeout_for(mapping: dict, tests: list[str]) -> float:
    """Seconds after which the mutant's tests count as hanging (a loop that never ends, a wait never met): five
    times what they took under coverage on the unmutated module, at least a minute, so a mutant that only slows
    its tests down is not taken for a hang."""
    durations = mapping.get("durations") or {}
    return max(60.0, 5 * sum(durations.get(test, 10.0) for test in tests))


def forget_compiled(source: Path) -> None:
    """Delete ``source``'s cached bytecode. The mutation runs write bytecode (compiling every module and
    rewriting every test's asserts again for each mutant cost about 2 s of its 3-6), and Python trusts a cached
    file whose recorded modification second and size match the source's: two mutants of equal size written
    within one second would otherwise share one compiled file."""
    Path(importlib.util.cache_from_source(str(source))).unlink(missing_ok=True)


def run_tests_for_mutant(python: str, root: Path, module: str, mapping_file: Path) -> int:
    """cosmic-ray's test command: 0 when the chosen tests pass (the mutant survived)."""
    mapping = json.loads(mapping_file.read_text(encoding="utf-8"))
    tests = tests_for(mapping, changed_lines(root, module))
    if not tests:
        print("no test executes the changed statement")
        return 0
    limit = timeout_for(mapping, tests)
    forget_compiled(root / module)
    process = subprocess.Popen([python, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                                *tests], cwd=root, env=os.environ.copy(), start_new_session=True)
    try:
        return process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the tests and whatever they started
        process.wait()
        print(f"{TIMEOUT} after {limit:.0f} s", flush=True)
        return 1


if __name__ == "__main__":  # pragma: no cover - run.py is the entry point
    sys.exit("use tests/mutation/run.py")
