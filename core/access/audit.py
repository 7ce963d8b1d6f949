"""The audit log: append-only, each entry carrying the hash of the previous one.

An entry's hash is SHA-256 over its canonical JSON (id, time, actor, action, arguments, affected and the
previous entry's hash). The table refuses UPDATE and DELETE (triggers), and :func:`verify_chain` recomputes
every hash, so an entry edited, removed or inserted through SQL behind the project's back is found.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import attrs

GENESIS = "0" * 64


def entry_hash(entry_id: int, at: str, actor: str, action: str, arguments: str, affected: str,
               prev_hash: str) -> str:
    canonical = json.dumps([entry_id, at, actor, action, arguments, affected, prev_hash], ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


@attrs.frozen
class ChainProblem:
    entry_id: int
    problem: str


def verify_chain(rows: Iterable[dict]) -> tuple[int, list[ChainProblem]]:
    """Check every entry (in id order): ids without gaps, each ``prev_hash`` the previous entry's hash, each
    hash recomputed. Returns the number of entries and the problems found."""
    problems: list[ChainProblem] = []
    prev_hash, expected_id, count = GENESIS, 1, 0
    for row in rows:
        count += 1
        if row["id"] != expected_id:
            problems.append(ChainProblem(row["id"], f"entries {expected_id}..{row['id'] - 1} are missing"))
        if row["prev_hash"] != prev_hash:
            problems.append(ChainProblem(row["id"], "does not follow the entry before it (prev_hash differs)"))
        if entry_hash(row["id"], row["at"], row["actor"], row["action"], row["arguments"], row["affected"],
                      row["prev_hash"]) != row["hash"]:
            problems.append(ChainProblem(row["id"], "was changed after it was written (its hash differs)"))
        prev_hash, expected_id = row["hash"], row["id"] + 1
    return count, problems
