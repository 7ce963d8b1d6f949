"""The example project's segments compute through the compiler and agree with the reference evaluator.

The data are random but built from what the rules mention (event names, tag values, attributes, car
models, property values), so every segment has members and non-members to get right.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import zoneinfo
from pathlib import Path

import pytest

from motorcade.dsl import ast
from motorcade.dsl.evaluate import evaluate_segment
from motorcade.model import Car, Consent, Event, Ownership
from motorcade.segments import compute_segments
from motorcade.segments.dataset import load_dataset

EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "examples" / "dealer_group" / "rules"
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
AS_OF = dt.datetime(2026, 11, 20, 9, 30, tzinfo=TZ)


def _mentions(rule_set):
    events, tags, attrs_, literals = set(), {}, set(), set()
    for segment in rule_set.segments.values():
        for node in ast.walk(segment.where):
            if isinstance(node, (ast.Did, ast.Aggregate)):
                events.add(node.event)
            elif isinstance(node, ast.DidAny):
                events.update(node.events)
            elif isinstance(node, ast.Sequence):
                events.update(node.steps)
            elif isinstance(node, ast.ProfileRef):
                attrs_.add(node.name)
            elif isinstance(node, ast.Literal) and isinstance(node.value, (str, int)):
                literals.add(node.value)
            if isinstance(node, (ast.Compare, ast.InList)) and isinstance(node.subject, ast.TagRef):
                values = [node.value] if isinstance(node, ast.Compare) else list(node.items)
                tags.setdefault(node.subject.name, set()).update(
                    v.value for v in values if isinstance(v, ast.Literal))
            elif isinstance(node, ast.TagRef):
                tags.setdefault(node.name, set())
    return sorted(events), {t: sorted(v, key=str) for t, v in tags.items()}, sorted(attrs_), sorted(literals, key=str)


@pytest.mark.skipif(not EXAMPLE_RULES.is_dir(), reason="the example project's rules are not in this checkout")
def test_example_segments_compute_through_the_compiler(motorcade_project):
    rules_dir = motorcade_project.directory / "rules"
    for path in EXAMPLE_RULES.glob("*.mc"):
        if not path.name.endswith(".test.mc"):
            shutil.copy(path, rules_dir / path.name)
    rule_set = motorcade_project.rules()
    assert rule_set.segments, "the example rules define no segments"
    events, tags, attrs_, literals = _mentions(rule_set)
    strings = [v for v in literals if isinstance(v, str)] + ["other"]
    numbers = [v for v in literals if isinstance(v, int) and not isinstance(v, bool)] + [0]
    rng = random.Random(4)
    store = motorcade_project.store
    with store.transaction():
        for i in range(300):
            pid = store.create_person({a: rng.choice([rng.choice(numbers), 1980 + rng.randint(0, 25), None])
                                       for a in attrs_ if rng.random() < 0.7})
            store.write_tag_values([(pid, t, rng.choice(v or strings)) for t, v in tags.items() if rng.random() < 0.85],
                                   tags=[], calculator="t", calculator_version="1", computed_at=AS_OF, person_ids=[])
            if rng.random() < 0.5:
                vin = f"VIN{pid:06d}"
                bought = AS_OF.date() - dt.timedelta(days=rng.randint(10, 12 * 365))
                store.upsert_cars([Car(vin, "BMW", rng.choice(strings), bought.year, bought, None)])
                store.add_ownership(Ownership(pid, vin, bought, None if rng.random() < 0.9 else AS_OF.date(), "t"))
            if rng.random() < 0.6:
                store.set_consent(Consent(pid, rng.choice(["sms", "wecom", "*"]), rng.random() < 0.8, AS_OF, "t"))
            store.insert_events([
                Event(person_id=pid, name=rng.choice(events),
                      ts=AS_OF - dt.timedelta(seconds=rng.randint(0, 800 * 86400)),
                      properties={"topic": rng.choice(strings), "model": rng.choice(strings),
                                  "amount": rng.choice([1000, 300_000, 600_000, 900_000]),
                                  "campaign": rng.choice(strings)},
                      source="t", dedup_key=f"{pid}-{k}")
                for k in range(rng.randint(0, 25))])
    results = compute_segments(motorcade_project, as_of=AS_OF)
    assert {r.name for r in results} == set(rule_set.segments)
    dataset = load_dataset(store)
    sizes = {}
    for result in results:
        assert not result.plan.startswith("reference evaluator"), (result.name, result.plan)
        expected = evaluate_segment(rule_set, result.name, dataset, AS_OF, TZ)
        assert set(store.segment_member_ids(result.name)) == expected, result.name
        sizes[result.name] = len(expected)
    # the data make most segments non-trivial (neither empty nor everyone)
    assert sum(1 for n in sizes.values() if 0 < n < 300) >= len(sizes) // 2, sizes
