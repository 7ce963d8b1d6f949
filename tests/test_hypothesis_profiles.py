"""The Hypothesis profiles of tests/conftest.py do what README.md#testing says: ``thorough`` runs ten times
the examples a test asks for, ``ci`` draws a fresh seed each run, prints it, and replays it when given."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROBE = '''
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st

LOG = Path(__file__).with_name("calls.log")

@settings(max_examples=7, database=None)
@given(st.integers())
def test_explicit(n):
    with LOG.open("a") as f:
        f.write(f"explicit {n}\\n")

@pytest.mark.parametrize("k", [1, 2])
@settings(max_examples=3, database=None)
@given(st.integers())
def test_parametrized(k, n):
    with LOG.open("a") as f:
        f.write(f"param{k} {n}\\n")
'''


def run_probe(tmp_path: Path, profile: str | None, *args: str) -> tuple[str, list[str]]:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "calls.log").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    if profile:
        env["HYPOTHESIS_PROFILE"] = profile
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py"), *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, (tmp_path / "calls.log").read_text().splitlines()


def counts(calls: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in calls:
        out[line.split()[0]] = out.get(line.split()[0], 0) + 1
    return out


def test_thorough_runs_ten_times_the_examples_each_test_asks_for(tmp_path):
    _, dev = run_probe(tmp_path, "dev")
    _, thorough = run_probe(tmp_path, "thorough")
    # Hypothesis may stop early when the space is exhausted; integers() is not, so the counts are exact
    assert counts(dev) == {"explicit": 7, "param1": 3, "param2": 3}
    assert counts(thorough) == {"explicit": 70, "param1": 30, "param2": 30}


def test_ci_prints_a_fresh_seed_that_replays_the_same_examples(tmp_path):
    out1, calls1 = run_probe(tmp_path, "ci")
    out2, _ = run_probe(tmp_path, "ci")
    seeds = [re.search(r"--hypothesis-seed=(\d+)", out).group(1) for out in (out1, out2)]
    assert seeds[0] != seeds[1]  # a fresh seed each run (2**32 choices)
    replay_out, replayed = run_probe(tmp_path, "ci", f"--hypothesis-seed={seeds[0]}")
    assert f"--hypothesis-seed={seeds[0]}" in replay_out
    assert replayed == calls1
