"""``make mutation``: mutation testing with cosmic-ray over the modules where a silent wrong answer costs most.

For each module below, cosmic-ray changes the source one small way at a time (``<`` to ``<=``, ``and`` to
``or``, a constant, an added ``not``...) and runs the module's tests; a mutant the tests do not notice
("survived") is a behaviour no test pins down. Survivors are either killed with a new test or listed, with
the reason they are equivalent, in tests/MUTANTS.md.

cosmic-ray edits the file in place and puts it back after each mutant, so this refuses to start when a
module to mutate has uncommitted changes (``git checkout -- <module>`` restores it if the run is killed),
and checks on the way out that every module is unchanged. Sessions are kept in build/mutation/ and a
second run only does the mutants still pending, so a long run can be stopped and resumed. Each module's
outcomes are also written to tests/mutation/results/ (kept_outcomes.py): committed, they let a fresh clone resume
too, for as long as the module's source is the one they were found on.

Each mutant runs only the tests of the module's selection that execute the statement it changed
(tests_per_line.py: one coverage run per module maps lines to tests), and counts as killed when they fail
or hang (five times what they took under coverage on the unmutated module, at least a minute).

    python tests/mutation/run.py                         # every module
    python tests/mutation/run.py dsl/format.py ...       # some of them
    python tests/mutation/run.py --fresh dsl/format.py   # forget earlier results for these
    python tests/mutation/run.py --survivors dsl/format.py  # after adding tests: re-run only the survivors
    python tests/mutation/run.py --keep-only             # write tests/mutation/results/ from the sessions

One module on two cores: two checkouts of the module's same source run ``--shard 1/2`` and ``--shard 2/2``
(each runs every other mutant in a fixed order, so a stopped shard resumes its own half); then
``--keep-only --restore-from OTHER_CHECKOUT/tests/mutation/results/<module>.json`` in one of them takes the
other's outcomes over and keeps them all.

The report (per-module score and every surviving mutant as a diff) is build/mutation/report.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import kept_outcomes
import tests_per_line

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "mutation"

# module -> the tests that exercise it (fast, deterministic ones first: pytest -x stops at the first failure).
# A mutant runs only those of them that execute the statement it changed (tests_per_line.py), so a slow test
# costs time only for the mutants on its lines: the agreement property on PostgreSQL, DuckDB and ClickHouse
# (20-80 s each) runs for the compiler's and the planner's engine-only code (set-shaped plans, dialects), which
# nothing else executes. Left out on purpose: the SIGKILL delivery properties of tests/test_activation_crash.py
# (100-150 s each, real worker processes killed mid-delivery), whose lines the unit tests execute too. `make test`
# still runs all of them.
AGREEMENT = ["tests/test_segments_agreement.py::test_windows_local_dates_and_relations_match_the_tests_own_oracle",
             "tests/test_segments_agreement.py::test_compiled_sql_agrees_with_the_reference_evaluator[sqlite]"]
ENGINE_PLANS = [
    "tests/test_segments_dialects.py", "tests/test_segments_column_plans.py",
    "tests/test_segments_agreement.py::test_compiled_sql_agrees_with_the_reference_evaluator_on_each_engine[duckdb]",
    "tests/test_segments_agreement.py::test_compiled_sql_agrees_with_the_reference_evaluator_on_each_engine[clickhouse]",
    "tests/test_segments_agreement.py::test_compiled_sql_agrees_with_the_reference_evaluator[postgresql]"]
MODULES: dict[str, list[str]] = {
    # journeys (test_journeys_dsl.py: their round trip) and the example rule files (scope lines, cron schedules)
    # are formatted only there
    "dsl/format.py": ["tests/test_dsl_format_text.py", "tests/test_dsl_roundtrip.py", "tests/test_dsl_errors.py",
                      "tests/test_journeys_dsl.py", "tests/test_example_rules.py::test_rule_files_are_canonical"],
    "core/activation/guardrails.py": ["tests/test_activation_guardrail_rules.py", "tests/test_activation_parts.py",
                                      "tests/test_activation_guardrails.py", "tests/test_activation_runtime.py"],
    "dsl/evaluate.py": ["tests/test_dsl_evaluate.py", "tests/test_dsl_ruletest.py", *AGREEMENT],
    # test_recommendations.py: the only fast tests of `recommendation R includes` (c_Recommended)
    "core/segments/compiler.py": ["tests/test_segments_sql.py", "tests/test_segments_compute.py",
                                  "tests/test_recommendations.py", *AGREEMENT, *ENGINE_PLANS],
    "core/segments/plan.py": ["tests/test_segments_plan.py", "tests/test_segments_sql.py",
                              "tests/test_segments_compute.py", *AGREEMENT, *ENGINE_PLANS],
    "core/activation/dispatcher.py": [
        # test_activation_plugins.py after the runtime tests: a mutant that defers a missing channel's sends into
        # the past (line 167) makes its pass loop until the timeout, while a runtime test fails at once
        "tests/test_activation_parts.py", "tests/test_activation_runtime.py", "tests/test_activation_plugins.py",
        "tests/test_activation_guardrails.py",
        "tests/test_activation_crash.py::test_a_send_posted_but_never_recorded_is_redelivered_with_the_same_key_and_bytes"],
    "core/activation/planner.py": ["tests/test_activation_runtime.py", "tests/test_activation_guardrails.py"],
    "core/sources/clean.py": ["tests/test_sources_clean.py"],
    "core/identity/resolver.py": ["tests/test_identity_resolver.py", "tests/test_identity_properties.py",
                                  "tests/test_identity_split.py", "tests/test_identity_speed_cache.py"],
    "core/identity/guards.py": ["tests/test_identity_junk.py", "tests/test_identity_properties.py"],
}

# Operators that model a slip a person makes. Left out: replacing an arithmetic operator by a bitwise, shift,
# power or modulo one (on text or dates they only raise TypeError; on numbers `+`/`-` and `*`/`/` already
# test the same line) and `==` / `<` ... by `is` / `is not` (identity of ints and strings is an
# implementation detail of CPython, not a behaviour).
EXCLUDED_OPERATORS = [
    r"core/ReplaceBinaryOperator_(?!Add_Sub$|Sub_Add$|Mul_Div$|Div_Mul$|FloorDiv_Div$|Div_FloorDiv$).*",
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
]


def slug(module: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", module.removesuffix(".py"))


def timeout_for(mapping: dict) -> float:
    """cosmic-ray's own limit, a backstop: each mutant's tests have theirs (tests_per_line.timeout_for)."""
    return max(120.0, 6 * float(mapping.get("seconds", 60)))


def config_for(module: str, mapping: dict) -> Path:
    """cosmic-ray's configuration for ``module`` (``mapping``: its tests per line, for the timeout)."""
    OUT.mkdir(parents=True, exist_ok=True)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__)))} --tests-for {shlex.quote(module)}"
    path = OUT / f"{slug(module)}.toml"
    excluded = ", ".join(json.dumps(e) for e in EXCLUDED_OPERATORS)
    path.write_text(f"""[cosmic-ray]
module-path = "{module}"
timeout = {timeout_for(mapping)}
excluded-modules = []
test-command = {json.dumps(command)}

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [{excluded}]
""", encoding="utf-8")
    return path


# Bytecode is written (PYTHONDONTWRITEBYTECODE dropped): each mutant's pytest then reuses the compiled modules
# and rewritten test files instead of compiling them all again; the mutated module's own is deleted before its
# tests run (tests_per_line.forget_compiled).
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "HYPOTHESIS_PROFILE": "mutation"}


def run(*args: str) -> None:
    subprocess.run(args, cwd=ROOT, check=True, env=ENV)


def head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def line_map(module: str, fresh: bool) -> Path:
    """The module's tests per line (tests_per_line.py), built once per commit."""
    path = OUT / f"{slug(module)}.lines.json"
    commit = head()
    if not fresh and path.exists() and json.loads(path.read_text(encoding="utf-8")).get("commit") == commit:
        return path
    print(f"== {module}: mapping which tests execute each line (one coverage run of its tests)", flush=True)
    mapping = tests_per_line.build_map(sys.executable, ROOT, module, MODULES[module], path, ENV)
    mapping["commit"] = commit
    path.write_text(json.dumps(mapping, indent=0), encoding="utf-8")
    covered = sum(1 for tests in mapping["lines"].values() if tests_per_line.ALL not in tests)
    print(f"   {len(mapping['order'])} tests; {covered} lines pick their own tests, "
          f"{len(mapping['lines']) - covered} run them all", flush=True)
    return path


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def mutate(module: str, fresh: bool, survivors: bool = False, shard: tuple[int, int] | None = None) -> None:
    config = config_for(module, {})
    session = OUT / f"{slug(module)}.sqlite"
    # a session made on another source of the module (it changed since) mutated other code: start again
    if session.exists() and not fresh and not made_on_committed_source(module, session):
        print(f"== {module}: its source changed since {session.relative_to(ROOT)} was made: a new session",
              flush=True)
        session.unlink()
    if survivors and session.exists() and not fresh:
        with sqlite3.connect(session) as db:  # forget their results: `exec` runs what has none
            db.execute("DELETE FROM work_results WHERE lower(test_outcome) = 'survived'")
    if fresh or not session.exists():
        session.unlink(missing_ok=True)
        run(tool("cosmic-ray"), "init", str(config), str(session))
        digest_file(session).write_text(kept_outcomes.source_digest(committed(module)) + "\n", encoding="utf-8")
        run(tool("cr-filter-operators"), str(session), str(config))
        run(tool("cr-filter-pragma"), str(session))
        if not fresh:
            restored = kept_outcomes.restore(session, module, committed(module), kept_results(module))
            if restored:
                print(f"== {module}: {restored} outcomes restored from {kept_results(module).relative_to(ROOT)}",
                      flush=True)
    kept_outcomes.take_back(session)  # a stopped sharded run's
    if shard is not None:
        aside = kept_outcomes.set_aside(session, module, *shard)
        print(f"== {module}: shard {shard[0]}/{shard[1]}: {aside} mutants left to the other shards", flush=True)
    print(f"== {module}: {pending(session)} mutants to run", flush=True)
    try:
        if not pending(session):
            return
        config_for(module, json.loads(line_map(module, fresh).read_text(encoding="utf-8")))  # its timeout
        run(tool("cosmic-ray"), "exec", str(config), str(session))
    finally:  # also when stopped: what ran is kept
        kept_outcomes.take_back(session)
        keep(module)


def committed(module: str) -> bytes:
    """The module as committed: what was mutated (a module with changes of its own is refused), even while a
    stopped run has left a mutant in the file."""
    return subprocess.run(["git", "show", f"HEAD:{module}"], cwd=ROOT, capture_output=True, check=True).stdout


def digest_file(session: Path) -> Path:
    """Where the SHA-256 of the module source a session was made on is kept, beside the session."""
    return session.with_suffix(".sha256")


def made_on_committed_source(module: str, session: Path) -> bool:
    """Whether ``session`` mutated the module as committed now (a session without a digest kept: unknown, no)."""
    kept = digest_file(session)
    return kept.exists() and kept.read_text(encoding="utf-8").strip() == kept_outcomes.source_digest(
        committed(module))


def kept_results(module: str) -> Path:
    return ROOT / "tests" / "mutation" / "results" / f"{slug(module)}.json"


def keep(module: str, restore_from: Path | None = None) -> None:
    """Write the module's outcomes so far to tests/mutation/results/ (commit it to let a fresh clone resume),
    first taking over the outcomes kept in ``restore_from`` (another checkout's shard) for mutants without one."""
    session = OUT / f"{slug(module)}.sqlite"
    if session.exists() and not made_on_committed_source(module, session):
        print(f"== {module}: {session.relative_to(ROOT)} was made on another source of the module: not kept",
              flush=True)
        return
    if session.exists():
        if restore_from is not None:
            count = kept_outcomes.restore(session, module, committed(module), restore_from)
            print(f"== {module}: {count} outcomes taken over from {restore_from}", flush=True)
        count = kept_outcomes.export(session, module, committed(module), kept_results(module))
        print(f"== {module}: {count} outcomes kept in {kept_results(module).relative_to(ROOT)}", flush=True)


def pending(session: Path) -> int:
    with sqlite3.connect(session) as db:
        return db.execute("SELECT count(*) FROM mutation_specs WHERE job_id NOT IN "
                          "(SELECT job_id FROM work_results)").fetchone()[0]


def summary(session: Path) -> tuple[dict[str, int], list[str]]:
    """Counts by outcome and the diff of every survivor (skipped mutants are not counted)."""
    dump = subprocess.run([tool("cosmic-ray"), "dump", str(session)], capture_output=True, text=True,
                          check=True).stdout
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "pending": 0, "timeout": 0}
    survivors = []
    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None:
            counts["pending"] += 1
        elif result.get("worker_outcome") == "skipped":
            continue
        elif result.get("worker_outcome") != "normal":
            counts["incompetent"] += 1
        elif result.get("test_outcome") == "survived":
            counts["survived"] += 1
            survivors.append(result.get("diff") or "")
        else:
            counts["killed"] += 1
            output = result.get("output") or ""
            counts["timeout"] += output == "timeout" or tests_per_line.TIMEOUT in output
    return counts, survivors


def report() -> Path:
    lines = ["# Mutation testing report (cosmic-ray)", "",
             "score = killed / mutants run; killed includes mutants whose tests hung or could not start.",
             "Survivors: kill them with a test or explain them in tests/MUTANTS.md.", "",
             "| module | mutants run | killed | of them by timeout | survived | not run yet | score |",
             "|---|---|---|---|---|---|---|"]
    details = []
    for module in MODULES:
        session = OUT / f"{slug(module)}.sqlite"
        if not session.exists():
            lines.append(f"| {module} | 0 | | | | all | not run |")
            continue
        counts, survivors = summary(session)
        done = counts["killed"] + counts["survived"] + counts["incompetent"]
        killed = counts["killed"] + counts["incompetent"]  # a mutant that breaks import or hangs is caught
        score = f"{100 * killed / done:.1f}%" if done else "-"
        lines.append(f"| {module} | {done} | {killed} | {counts['timeout']} | {counts['survived']} | "
                     f"{counts['pending']} | {score} |")
        if survivors:
            details += [f"## Survivors in {module}", ""]
            details += [f"```diff\n{d.strip()}\n```\n" for d in survivors]
    path = OUT / "report.md"
    path.write_text("\n".join(lines + [""] + details) + "\n", encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results for these modules")
    parser.add_argument("--survivors", action="store_true", help="re-run only the mutants that survived last time")
    parser.add_argument("--tests-for", metavar="MODULE", help=argparse.SUPPRESS)  # cosmic-ray's test command
    parser.add_argument("--keep-only", action="store_true",
                        help="only write tests/mutation/results/ from the sessions in build/mutation/")
    parser.add_argument("--report-only", action="store_true", help="only write build/mutation/report.md")
    parser.add_argument("--shard", metavar="K/N", help="run only every N-th mutant (in a fixed order), from the K-th "
                        "(another checkout runs the others)")
    parser.add_argument("--restore-from", metavar="FILE", type=Path,
                        help="with --keep-only and one module: take over the outcomes kept in FILE first")
    args = parser.parse_args()
    if args.tests_for:
        return tests_per_line.run_tests_for_mutant(sys.executable, ROOT, args.tests_for,
                                                   OUT / f"{slug(args.tests_for)}.lines.json")
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"not a module under mutation testing: {', '.join(unknown)} (choose from {', '.join(MODULES)})")
    shard = None
    if args.shard:
        k, _, n = args.shard.partition("/")
        if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
            parser.error(f"--shard {args.shard}: give K/N with 1 <= K <= N, e.g. --shard 1/2")
        shard = (int(k), int(n))
    if args.restore_from and not (args.keep_only and len(modules) == 1):
        parser.error("--restore-from goes with --keep-only and one module")
    if args.keep_only:
        for module in modules:
            keep(module, args.restore_from)
        return 0
    if not args.report_only:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *modules], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        if dirty:
            print(f"uncommitted changes in modules to mutate (cosmic-ray edits them in place):\n{dirty}\n"
                  "commit or stash them first", file=sys.stderr)
            return 2
        try:
            for module in modules:
                mutate(module, args.fresh, args.survivors, shard)
        finally:
            changed = subprocess.run(["git", "status", "--porcelain", "--", *modules], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip()
            if changed:
                print(f"a module was left mutated; restore it with git checkout -- <module>:\n{changed}",
                      file=sys.stderr)
    print(f"report: {report()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
