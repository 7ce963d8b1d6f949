"""`make mutation`'s own parts (tests/mutation/): which tests a mutant runs, and outcomes kept across clones.

Both decide what a mutation score means: a mutant given too few tests survives wrongly, and outcomes
restored onto another source would score code that was never mutated.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "mutation"))
import kept_outcomes  # noqa: E402
import tests_per_line  # noqa: E402

MAPPING = {"order": ["t::a", "t::b", "t::c"], "lines": {"3": ["t::b"], "4": ["t::c", "t::a"], "9": ["*"]}}


def test_a_mutant_runs_the_tests_of_its_lines_in_the_selections_order():
    assert tests_per_line.tests_for(MAPPING, [3, 4]) == ["t::a", "t::b", "t::c"]
    assert tests_per_line.tests_for(MAPPING, [4]) == ["t::a", "t::c"]
    assert tests_per_line.tests_for(MAPPING, [3]) == ["t::b"]


def test_a_mutants_tests_run_quickest_first_and_ties_keep_the_selections_order():
    timed = {**MAPPING, "durations": {"t::a": 9.0, "t::b": 0.5, "t::c": 0.5}}
    assert tests_per_line.tests_for(timed, [3, 4]) == ["t::b", "t::c", "t::a"]
    assert tests_per_line.tests_for(timed, [9]) == ["t::b", "t::c", "t::a"]
    assert tests_per_line.tests_for(timed, None) == ["t::b", "t::c", "t::a"]


def test_the_mutated_modules_cached_bytecode_is_deleted_and_only_its_own(tmp_path):
    import importlib.util
    import py_compile

    module, other = tmp_path / "m.py", tmp_path / "n.py"
    for source in (module, other):
        source.write_text("X = 1\n")
        py_compile.compile(str(source))
    tests_per_line.forget_compiled(module)
    assert not Path(importlib.util.cache_from_source(str(module))).exists()
    assert Path(importlib.util.cache_from_source(str(other))).exists()
    tests_per_line.forget_compiled(module)  # nothing left to delete is fine


def test_a_line_run_at_import_or_an_unreadable_diff_runs_everything_and_an_unrun_line_nothing():
    assert tests_per_line.tests_for(MAPPING, [3, 9]) == MAPPING["order"]
    assert tests_per_line.tests_for(MAPPING, None) == MAPPING["order"]
    assert tests_per_line.tests_for(MAPPING, [5]) == []


def _repo(tmp_path: Path, text: str) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "m.py").write_text(text, encoding="utf-8")
    subprocess.run(["git", "-C", str(tmp_path), "add", "m.py"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m"],
                   check=True)
    return tmp_path


def test_the_changed_lines_are_read_from_the_working_copy_against_the_commit(tmp_path):
    root = _repo(tmp_path, "a = 1\nb = 2\nc = 3\nd = 4\n")
    assert tests_per_line.changed_lines(root, "m.py") is None  # nothing changed: run everything
    (root / "m.py").write_text("a = 1\nb = 0\nc = 3\nd = 5\n", encoding="utf-8")
    assert tests_per_line.changed_lines(root, "m.py") == [2, 4]
    (root / "m.py").write_text("a = 1\nb = 2\nc = 3\n", encoding="utf-8")  # a line deleted
    assert tests_per_line.changed_lines(root, "m.py") == [4]


def test_a_line_is_widened_to_the_smallest_statement_holding_it():
    source = "def f(x):\n    return (x +\n            1)\n\n\ny = 2\n"
    spans = tests_per_line._statement_spans(source)
    assert tests_per_line._smallest_statement(spans, 3) == (2, 3)  # the return, not the def
    assert tests_per_line._smallest_statement(spans, 6) == (6, 6)


SCHEMA = """
CREATE TABLE work_items (job_id VARCHAR NOT NULL PRIMARY KEY);
CREATE TABLE mutation_specs (module_path VARCHAR, operator_name VARCHAR, operator_args JSON, occurrence INTEGER,
  start_pos_row INTEGER, start_pos_col INTEGER, end_pos_row INTEGER, end_pos_col INTEGER, definition_name VARCHAR,
  job_id VARCHAR NOT NULL PRIMARY KEY);
CREATE TABLE work_results (worker_outcome VARCHAR(9), output TEXT, test_outcome VARCHAR(11), diff TEXT,
  job_id VARCHAR NOT NULL PRIMARY KEY);
"""
SPECS = [("core/AddNot", 0, 5), ("core/AddNot", 1, 8), ("core/NumberReplacer", 0, 9), ("core/NumberReplacer", 1, 9),
         ("core/ZeroIterationForLoop", 0, 12)]


def _session(path: Path, outcomes: dict[int, tuple]) -> Path:
    """A cosmic-ray session (its tables as cosmic-ray 8 writes them) with the given results by spec index."""
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        for i, (operator, occurrence, line) in enumerate(SPECS):
            db.execute("INSERT INTO work_items VALUES (?)", (f"job{i}",))
            db.execute("INSERT INTO mutation_specs VALUES ('m.py', ?, '{}', ?, ?, 0, ?, 1, 'f', ?)",
                       (operator, occurrence, line, line, f"job{i}"))
        for i, (worker, output, test, diff) in outcomes.items():
            db.execute("INSERT INTO work_results VALUES (?, ?, ?, ?, ?)", (worker, output, test, diff, f"job{i}"))
    return path


def _results(path: Path) -> dict[tuple, tuple]:
    with sqlite3.connect(path) as db:
        return {(op, occ): (worker, test, output == "timeout", diff) for op, occ, worker, test, output, diff in db.execute(
            "SELECT operator_name, occurrence, worker_outcome, test_outcome, output, diff FROM mutation_specs "
            "JOIN work_results USING (job_id)")}


def test_kept_outcomes_restore_into_a_new_session_of_the_same_source_and_only_there(tmp_path):
    ran = _session(tmp_path / "ran.sqlite", {
        0: ("NORMAL", "1 failed", "KILLED", "-a\n+b"),
        1: ("NORMAL", "9 passed", "SURVIVED", "--- a/m.py\n+++ b/m.py\n-x < 1\n+x <= 1"),
        2: ("NORMAL", "timeout", "KILLED", "-1\n+2"),
        3: ("SKIPPED", "excluded operator", None, ""),
        # 4 was not run yet
    })
    kept = tmp_path / "results" / "m.json"
    assert kept_outcomes.export(ran, "m.py", b"source one", kept) == 3
    data = json.loads(kept.read_text(encoding="utf-8"))
    assert [m["outcome"] for m in data["mutants"]] == ["killed", "survived", "timeout"]
    assert "diff" not in data["mutants"][0] and data["mutants"][1]["diff"].endswith("+x <= 1")

    fresh = _session(tmp_path / "fresh.sqlite", {3: ("SKIPPED", "excluded operator", None, "")})
    assert kept_outcomes.restore(fresh, "m.py", b"source two", kept) == 0  # another source: everything runs again
    assert set(_results(fresh)) == {("core/NumberReplacer", 1)}
    assert kept_outcomes.restore(fresh, "m.py", b"source one", kept) == 3
    restored = _results(fresh)
    assert restored[("core/AddNot", 0)][:3] == ("NORMAL", "KILLED", False)
    assert restored[("core/AddNot", 1)] == ("NORMAL", "SURVIVED", False, data["mutants"][1]["diff"])
    assert restored[("core/NumberReplacer", 0)][:3] == ("NORMAL", "KILLED", True)
    assert ("core/ZeroIterationForLoop", 0) not in restored  # still pending
    assert kept_outcomes.restore(fresh, "m.py", b"source one", kept) == 0  # nothing twice


def test_no_kept_file_restores_nothing(tmp_path):
    fresh = _session(tmp_path / "fresh.sqlite", {})
    assert kept_outcomes.restore(fresh, "m.py", b"x", tmp_path / "missing.json") == 0


@pytest.mark.parametrize("kept", sorted((Path(__file__).parent / "mutation" / "results").glob("*.json")),
                         ids=lambda p: p.stem)
def test_every_kept_file_names_a_module_under_mutation_testing_and_reads(kept):
    sys.path.insert(0, str(Path(__file__).parent / "mutation"))
    import run

    data = json.loads(kept.read_text(encoding="utf-8"))
    assert data["module"] in run.MODULES and kept.stem == run.slug(data["module"])
    assert {m["outcome"] for m in data["mutants"]} <= {"killed", "timeout", "survived", "incompetent"}
    assert all("diff" in m for m in data["mutants"] if m["outcome"] == "survived")


def test_a_mutants_time_limit_is_five_times_its_own_tests_and_at_least_a_minute():
    mapping = {"durations": {"t::a": 30.0, "t::b": 2.0}}
    assert tests_per_line.timeout_for(mapping, ["t::a", "t::b"]) == 160.0
    assert tests_per_line.timeout_for(mapping, ["t::b"]) == 60.0


def test_a_hang_is_kept_as_a_timeout(tmp_path):
    ran = _session(tmp_path / "ran.sqlite", {0: ("NORMAL", f"....\n{tests_per_line.TIMEOUT} after 60 s\n", "KILLED", "")})
    kept = tmp_path / "m.json"
    kept_outcomes.export(ran, "m.py", b"s", kept)
    assert [m["outcome"] for m in json.loads(kept.read_text(encoding="utf-8"))["mutants"]] == ["timeout"]


def _pending(path: Path) -> set[tuple]:
    with sqlite3.connect(path) as db:
        return set(db.execute("SELECT operator_name, occurrence FROM mutation_specs WHERE job_id NOT IN "
                              "(SELECT job_id FROM work_results)"))


def test_two_shards_run_complementary_halves_and_one_takes_the_others_outcomes_over(tmp_path):
    done = {0: ("NORMAL", "1 failed", "KILLED", "-a\n+b"), 3: ("SKIPPED", "excluded operator", None, "")}
    first, second = _session(tmp_path / "a.sqlite", done), _session(tmp_path / "b.sqlite", done)
    everything = _pending(first)
    assert kept_outcomes.set_aside(first, "m.py", 1, 2) == 1 and kept_outcomes.set_aside(second, "m.py", 2, 2) == 2
    mine, theirs = _pending(first), _pending(second)
    assert mine | theirs == everything and not mine & theirs and len(mine) == 2
    (ran,) = theirs
    with sqlite3.connect(second) as db:  # the second shard runs its mutant: it survives
        db.execute("INSERT INTO work_results SELECT 'NORMAL', '3 passed', 'SURVIVED', '+x', job_id FROM "
                   "mutation_specs WHERE operator_name = ? AND occurrence = ?", ran)
    kept = tmp_path / "b.json"
    assert kept_outcomes.export(second, "m.py", b"src", kept) == 2  # killed + survived; set-aside ones not kept
    assert kept_outcomes.take_back(second) == 2 and kept_outcomes.take_back(first) == 1
    assert _pending(first) == everything
    assert kept_outcomes.restore(first, "m.py", b"src", kept) == 1  # the other shard's survivor
    assert _pending(first) == everything - {ran}


def test_a_stopped_shard_resumes_its_own_half_whatever_the_other_checkout_has_run(tmp_path):
    first, second = _session(tmp_path / "a.sqlite", {}), _session(tmp_path / "b.sqlite", {})
    everything = _pending(first)
    kept_outcomes.set_aside(first, "m.py", 1, 2)
    kept_outcomes.set_aside(second, "m.py", 2, 2)
    halves = _pending(first), _pending(second)
    ran = set()
    for session, half in zip((first, second), halves):  # each runs one of its mutants, then both are stopped
        one = sorted(half)[0]
        ran.add(one)
        with sqlite3.connect(session) as db:
            db.execute("INSERT INTO work_results SELECT 'NORMAL', '1 failed', 'KILLED', '', job_id FROM "
                       "mutation_specs WHERE operator_name = ? AND occurrence = ?", one)
        kept_outcomes.take_back(session)
    kept_outcomes.set_aside(first, "m.py", 1, 2)  # resumed, each with only its own outcomes
    kept_outcomes.set_aside(second, "m.py", 2, 2)
    left = _pending(first), _pending(second)
    assert left[0] == halves[0] - ran and left[1] == halves[1] - ran  # no overlap, no gap
    assert left[0] | left[1] | ran == everything


def test_a_session_made_on_another_source_of_the_module_is_never_kept(tmp_path, monkeypatch):
    import run

    monkeypatch.setattr(run, "OUT", tmp_path / "build")
    monkeypatch.setattr(run, "ROOT", tmp_path)
    monkeypatch.setattr(run, "committed", lambda module: b"source now")
    (tmp_path / "build").mkdir()
    session = _session(tmp_path / "build" / "m.sqlite", {0: ("NORMAL", "1 failed", "KILLED", "")})
    kept = tmp_path / "tests" / "mutation" / "results" / "m.json"
    for digest in (None, kept_outcomes.source_digest(b"source before")):  # no digest kept, another source's
        if digest:
            run.digest_file(session).write_text(digest + "\n", encoding="utf-8")
        run.keep("m.py")
        assert not kept.exists()
    run.digest_file(session).write_text(kept_outcomes.source_digest(b"source now") + "\n", encoding="utf-8")
    run.keep("m.py")
    assert [m["outcome"] for m in json.loads(kept.read_text(encoding="utf-8"))["mutants"]] == ["killed"]
