"""Hypothesis profiles, one per setting (README.md#testing).

* ``dev`` (default on a developer's machine): Hypothesis's defaults; the example database under
  ``.hypothesis/`` replays a failure first on the next run.
* ``ci`` (default when ``CI`` is set): a fresh random seed every run, printed at the end of the log (and
  in the header unless ``-q``), so CI explores new examples each time and a failure replays exactly with
  ``pytest --hypothesis-seed=<seed>``. (Hypothesis's own ``ci`` profile is derandomized: it replays the very
  same examples on every run, which is the weakness issue 24 fixed.)
* ``thorough`` (``make thorough``): every property test runs ten times its examples.
* ``mutation`` (``make mutation``): derandomized and without a database, so every mutant meets the same
  examples and a result never depends on luck; no shrinking (a mutant is killed by any failure, and
  shrinking a failure can take minutes); a fifth of the examples (at least 10), since every mutant runs
  the module's tests again. A mutant that survives this is re-checked at full strength before it is
  listed in tests/MUTANTS.md.

Pick one with ``HYPOTHESIS_PROFILE=<name>`` or ``--hypothesis-profile=<name>``.

Scaling: a property test sets the examples it needs for an everyday run with
``@settings(max_examples=N)`` as usual; the current profile's multiplier (:data:`EXAMPLES_MULTIPLIER`) is
applied to every Hypothesis test at collection, explicit ``max_examples`` included, so ``make thorough``
runs 10 x N without any change to the test.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import Phase, settings

settings.register_profile("dev", print_blob=True)
settings.register_profile("ci", derandomize=False, database=None, print_blob=True)
settings.register_profile("thorough", print_blob=True)
settings.register_profile("mutation", derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])

EXAMPLES_MULTIPLIER = {"dev": 1, "ci": 1, "thorough": 10, "mutation": 0.2}


def chosen_profile() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")


def base_profile() -> str:
    """The profile in force, without the ``-with-…`` suffixes Hypothesis adds for ``--hypothesis-verbosity``."""
    return settings.get_current_profile_name().split("-with-")[0]


@pytest.hookimpl(tryfirst=True)  # before Hypothesis's own plugin reads --hypothesis-seed
def pytest_configure(config):
    settings.load_profile(chosen_profile())
    if config.getoption("hypothesis_seed", None) is None and chosen_profile() == "ci":
        config.option.hypothesis_seed = str(random.SystemRandom().randrange(2**32))


def seed_line(config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    line = f"hypothesis profile {base_profile()!r}, examples x{EXAMPLES_MULTIPLIER.get(base_profile(), 1)}"
    if seed is not None:
        line += f", seed {seed} (replay with: pytest --hypothesis-seed={seed})"
    return line


def pytest_report_header(config):
    return seed_line(config)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    _pg_terminal_summary(terminalreporter)
    if config.getoption("hypothesis_seed", None) is not None or exitstatus:
        terminalreporter.write_line(seed_line(config))


def pytest_collection_modifyitems(config, items):
    factor = EXAMPLES_MULTIPLIER.get(base_profile(), 1)
    if factor == 1:
        return
    scaled = set()  # a parametrized test is one function under several items: scale it once
    for item in items:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        current = getattr(test, "_hypothesis_internal_use_settings", None)  # where @given/@settings keep them
        if current is not None and getattr(test, "is_hypothesis_test", False) and id(test) not in scaled:
            scaled.add(id(test))
            examples = round(current.max_examples * factor)
            if factor < 1:  # scaled down: keep at least 10 (or all the test asked for, if fewer)
                examples = max(examples, min(10, current.max_examples))
            test._hypothesis_internal_use_settings = settings(current, max_examples=examples)


# -- PostgreSQL: a throwaway cluster for the store tests that run on both stores ---------------------------
# One server per test session (initdb in a temporary folder, as the `postgres` user when run as root),
# one fresh database per test. Without PostgreSQL binaries these tests are skipped with an install hint;
# under CI=true such a skip fails the run (CI must test both stores).

PG_SKIP_MARK = "PostgreSQL tests skipped"
_pg_skips: list[str] = []


@pytest.fixture(scope="session")
def pg_cluster():
    from motorcade.store.postgres.cluster import INSTALL_HINT, ThrowawayCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(f"{PG_SKIP_MARK}: no PostgreSQL server binaries found; {INSTALL_HINT}")
    cluster = ThrowawayCluster(bin_dir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """The URL of a new, empty PostgreSQL database (dropped after the test)."""
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_database(request, tmp_path):
    """The ``database`` setting of a new, empty store, once per store implementation."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("pg_url")


def pytest_runtest_logreport(report):
    if report.skipped and PG_SKIP_MARK in str(report.longrepr):
        _pg_skips.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _pg_skips and os.environ.get("CI") and exitstatus == 0:
        session.exitstatus = 1


def _pg_terminal_summary(terminalreporter):  # called from pytest_terminal_summary below
    if _pg_skips:
        line = f"{len(_pg_skips)} {PG_SKIP_MARK} (no PostgreSQL binaries)"
        if os.environ.get("CI"):
            line += ": CI=true requires them, so this run FAILS"
        terminalreporter.write_line(line, red=bool(os.environ.get("CI")), yellow=not os.environ.get("CI"))
