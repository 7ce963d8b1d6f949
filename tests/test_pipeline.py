"""`motorcade pipeline`: stage order, pinned as-of, configuration errors."""

import datetime as dt

import pytest

from motorcade.config import load_config
from motorcade.errors import ConfigError
from motorcade.pipeline import pinned_as_of, run_pipeline


def test_stages_run_in_pipeline_order_each_once(motorcade_project):
    results = run_pipeline(motorcade_project, stages=["run", "tags", "run"])
    assert [r.stage for r in results] == ["tags", "run"]
    assert all(r.seconds >= 0 for r in results)


def _configure(project, text):
    path = project.directory / "motorcade.toml"
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")
    project.config = load_config(path)


def test_pinned_as_of_is_in_the_project_time_zone(motorcade_project):
    _configure(motorcade_project, '\n[pipeline]\nas_of = "2026-11-21T10:30:00"\n')
    assert pinned_as_of(motorcade_project) == dt.datetime(2026, 11, 21, 10, 30, tzinfo=motorcade_project.config.tz)


def test_bad_pipeline_settings_are_config_errors(motorcade_project):
    # both are named when the file is loaded, before any stage runs
    with pytest.raises(ConfigError) as info:
        _configure(motorcade_project, '\n[pipeline]\nas_of = "yesterday"\nstages = "tags"\n')
    assert "as_of = 'yesterday': expected a date or time" in str(info.value)
    assert "stages = 'tags': expected list of" in str(info.value)
