"""A mutation run's outcomes, kept in the repository so a fresh clone resumes where the last run stopped.

cosmic-ray keeps its results in a session file under build/ (not committed), and a full run of every module
takes hours on two cores. After each module, run.py writes ``tests/mutation/results/<module>.json``: the
SHA-256 of the module's source the run mutated and, per mutant (operator and occurrence, as cosmic-ray
numbers them), its outcome — with the diff for survivors, which the report lists. A new session of the same
source takes those outcomes over and runs only the mutants without one; once the module's source changes,
the file no longer applies and every mutant runs again.

Outcomes kept: ``killed``, ``timeout`` (killed because the tests hung), ``survived`` and ``incompetent``
(the mutant could not be tested, e.g. it broke cosmic-ray itself). ``run.py --survivors`` still re-runs the
survivors against the current tests.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from tests_per_line import TIMEOUT

NOTE = "restored from tests/mutation/results (a run of the same source)"
SHARD_NOTE = "set aside: another shard's (run.py --shard)"


def source_digest(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def _outcome(worker: str, test: str | None, output: str | None) -> str | None:
    if worker == "SKIPPED":
        return None  # the operator filter's; a new session's filter marks them again
    if worker != "NORMAL":
        return "incompetent"
    if test == "SURVIVED":
        return "survived"
    return "timeout" if output == "timeout" or TIMEOUT in (output or "") else "killed"


def export(session: Path, module: str, source: bytes, out: Path) -> int:
    """Write the session's outcomes for ``module`` (whose unmutated text is ``source``) to ``out``; the number
    of mutants with one."""
    with sqlite3.connect(session) as db:
        rows = db.execute(
            "SELECT s.operator_name, s.occurrence, s.start_pos_row, r.worker_outcome, r.test_outcome, r.output, "
            "r.diff FROM mutation_specs s JOIN work_results r USING (job_id) WHERE s.module_path = ? "
            "ORDER BY s.operator_name, s.occurrence", (module,)).fetchall()
    mutants = []
    for operator, occurrence, line, worker, test, output, diff in rows:
        outcome = _outcome(worker, test, output)
        if outcome is None:
            continue
        item = {"operator": operator, "occurrence": occurrence, "line": line, "outcome": outcome}
        if outcome == "survived":
            item["diff"] = diff
        mutants.append(item)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps({"module": module, "source_sha256": source_digest(source)}, ensure_ascii=False)[:-1]
    body = ",\n".join(json.dumps(m, ensure_ascii=False) for m in mutants)  # a mutant a line: readable diffs
    out.write_text(f'{head}, "mutants": [\n{body}\n]}}\n', encoding="utf-8")
    return len(mutants)


def restore(session: Path, module: str, source: bytes, kept: Path) -> int:
    """Give the session's mutants of ``module`` the outcomes kept in ``kept`` when it describes this very
    source; the number restored (0 when the file is missing or of another source)."""
    if not kept.exists():
        return 0
    data = json.loads(kept.read_text(encoding="utf-8"))
    if data.get("module") != module or data.get("source_sha256") != source_digest(source):
        return 0
    by_key = {(m["operator"], m["occurrence"]): m for m in data["mutants"]}
    restored = 0
    with sqlite3.connect(session) as db:
        specs = db.execute("SELECT job_id, operator_name, occurrence FROM mutation_specs WHERE module_path = ? "
                           "AND job_id NOT IN (SELECT job_id FROM work_results)", (module,)).fetchall()
        for job_id, operator, occurrence in specs:
            mutant = by_key.get((operator, occurrence))
            if mutant is None:
                continue
            outcome = mutant["outcome"]
            worker = "EXCEPTION" if outcome == "incompetent" else "NORMAL"
            test = {"survived": "SURVIVED", "incompetent": "INCOMPETENT"}.get(outcome, "KILLED")
            output = "timeout" if outcome == "timeout" else NOTE
            db.execute("INSERT INTO work_results (worker_outcome, output, test_outcome, diff, job_id) "
                       "VALUES (?, ?, ?, ?, ?)", (worker, output, test, mutant.get("diff", ""), job_id))
            restored += 1
    return restored


def set_aside(session: Path, module: str, shard: int, shards: int) -> int:
    """Split the mutants of ``module`` into ``shards`` by their order (operator, occurrence) — all of them, not
    just the pending ones, so the split is the same in every session of the same source whatever each has run
    (a stopped shard resumes its own half, and the halves never overlap or leave a gap) — and mark the pending
    ones not of ``shard`` (1-based) as skipped so that ``cosmic-ray exec`` leaves them to another checkout;
    the number set aside. Undone by :func:`take_back`; :func:`export` never keeps them."""
    with sqlite3.connect(session) as db:
        mutants = db.execute("SELECT job_id, job_id IN (SELECT job_id FROM work_results) FROM mutation_specs "
                             "WHERE module_path = ? ORDER BY operator_name, occurrence", (module,)).fetchall()
        others = [(SHARD_NOTE, job_id) for i, (job_id, done) in enumerate(mutants) if i % shards != shard - 1
                  and not done]
        db.executemany("INSERT INTO work_results (worker_outcome, output, test_outcome, diff, job_id) "
                       "VALUES ('SKIPPED', ?, NULL, '', ?)", others)
    return len(others)


def take_back(session: Path) -> int:
    """Make the mutants :func:`set_aside` marked pending again; how many."""
    with sqlite3.connect(session) as db:
        return db.execute("DELETE FROM work_results WHERE worker_outcome = 'SKIPPED' AND output = ?",
                          (SHARD_NOTE,)).rowcount
