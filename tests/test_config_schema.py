"""The schema of motorcade.toml: every wrong key is named at load, and docs/config.md is the schema."""

from pathlib import Path

import pytest

from motorcade.config import load_config
from motorcade.config_schema import render_reference
from motorcade.errors import ConfigError
from motorcade.project import Project
from motorcade.testing import plugin_manager_limited_to

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_MODULES = {p.name for p in ROOT.glob("plugins/*/*/motorcade_*")}


def project_with(tmp_path, text: str, pm=None) -> Project:
    (tmp_path / "motorcade.toml").write_text(text, encoding="utf-8")
    return Project(tmp_path, plugin_manager=pm)


def bundled_pm():
    """The built-ins plus the bundled plugins only (whatever else is installed stays out)."""
    return plugin_manager_limited_to(BUNDLED_MODULES)


@pytest.mark.parametrize("text, expected", [
    ("[activation]\nclaim_batch = 0\n", r"\[activation\] claim_batch = 0: expected whole number ≥ 1"),
    ("[activation]\nclaim_seconds = -5\n", r"\[activation\] claim_seconds = -5: expected number > 0"),
    ("[activation]\nmax_attempts = 0\n", r"max_attempts = 0: expected whole number ≥ 1"),
    ("[activation]\nclaim_bacth = 10\n", r"unknown key 'claim_bacth' \(did you mean 'claim_batch'\?\)"),
    ('[guardrails]\nfrequency_cap = { count = "two", days = 7 }\n', r"frequency_cap = .*count = 'two': expected"),
    ('[guardrails]\nquiet_hours = { start = "25:00", end = "09:00" }\n', r'quiet_hours.*"HH:MM"'),
    ('[guardrails]\nconsent = "maybe"\n', r'consent = \'maybe\': expected one of "opt_out", "opt_in"'),
    ("[guardrail]\nconsent = 'opt_in'\n", r"unknown table \[guardrail\] \(did you mean \[guardrails\]\?\)"),
    ('[pipeline]\nstages = ["ingest", "tag"]\n', r"stages = .*item 2 must be one of"),
    ("[identity]\nmax_records_per_source = 'many'\n", r"\[identity\] max_records_per_source = 'many'"),
    ("[identity.crm_id]\njunks = ['0']\n", r"\[identity.crm_id\] unknown key 'junks' \(did you mean 'junk'\?\)"),
    ('[project]\ntimezone = "Mars/Olympus"\n', r"timezone = 'Mars/Olympus': expected an IANA time zone"),
    ("[project]\ntimezone = 8\n", r"timezone = 8: expected text"),
    ("[project]\nrules = 5\n", r"rules = 5: expected text or list of text"),
    ('[sources.crm]\npath = "x.csv"\n', r"\[sources.crm\] needs a `type`"),
    ("[tags]\ncoverage_drift = 3\n", r"\[tags\] coverage_drift = 3: expected number from 0 to 1"),
])
def test_core_tables_are_checked_at_load_naming_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, text))


def _write(tmp_path, text):
    path = tmp_path / "motorcade.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "[activation]\nclaim_batch = 0\nmax_attempts = -1\n[pipline]\n"))
    message = str(info.value)
    assert "3 settings are wrong" in message
    assert "claim_batch" in message and "max_attempts" in message and "[pipline]" in message


@pytest.mark.parametrize("text, expected", [
    ('[channels.webhook]\nurl = "http://127.0.0.1:9/"\nsecret = "s"\nbatch_size = "ten"\n',
     r"\[channels.webhook\] batch_size = 'ten': expected whole number ≥ 1"),
    ('[channels.webhook]\nurl = "http://127.0.0.1:9/"\nsecret = "s"\ntimeout = "soon"\n',
     r"timeout = 'soon': expected number > 0"),
    ('[channels.webhook]\nurl = "http://127.0.0.1:9/"\nsecret = "s"\nrate_limit_per_second = "fast"\n',
     r"rate_limit_per_second = 'fast'"),
    ('[channels.webhook]\nsecret = "s"\n', r"\[channels.webhook\] url is required"),
    ('[sources.crm]\ntype = "csv"\npath = "a.csv"\nbatch_size = "lots"\n',
     r"\[sources.crm\] batch_size = 'lots': expected whole number ≥ 1"),
    ('[sources.crm]\ntype = "csv"\npath = "a.csv"\nencoding = "utf-9"\n', r"encoding = 'utf-9': expected a text encoding"),
    ('[sources.crm]\ntype = "csv"\npath = "a.csv"\ndelimiter = ";;"\n', r"delimiter = ';;': expected exactly one"),
    ('[sources.crm]\ntype = "csv"\npath = "a.csv"\ndelimeter = ";"\n', r"unknown key 'delimeter' \(did you mean 'delimiter'\?\)"),
    ('[sources.ev]\ntype = "jsonl"\npath = "e.jsonl"\nformat = "xml"\n', r"format = 'xml': expected one of"),
    ('[tags.activity]\nwindow_days = "ninety"\n', r"\[tags.activity\] window_days = 'ninety': expected number"),
])
def test_plugin_tables_are_checked_against_the_plugins_schema(tmp_path, text, expected):
    project = project_with(tmp_path, text, bundled_pm())
    with pytest.raises(ConfigError, match=expected):
        project.plugins


def test_numbers_from_environment_references_reach_the_plugin_as_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_BATCH", "25")
    project = project_with(tmp_path, '[channels.webhook]\nurl = "http://127.0.0.1:9/"\nsecret = "007"\n'
                                     'batch_size = "${HOOK_BATCH}"\n', bundled_pm())
    project.plugins
    assert project.config.channels["webhook"]["batch_size"] == 25
    assert project.config.channels["webhook"]["secret"] == "007"  # text stays text


def test_a_plugin_without_a_schema_is_not_checked(tmp_path, motorcade_pm, register_plugin):
    import motorcade
    from motorcade.activation.channel import Channel, ChannelCapabilities

    class Loose(Channel):
        name = "loose"
        capabilities = ChannelCapabilities(address_type="phone")

    class Plugin:
        @motorcade.hookimpl
        def register_channels(self, register):
            register(Loose)

    register_plugin(Plugin(), name="loose")
    project = project_with(tmp_path, "[channels.loose]\nanything = { goes = 1 }\n", motorcade_pm)
    project.plugins
    assert project.config.channels["loose"] == {"anything": {"goes": 1}}


def test_the_example_project_passes(tmp_path):
    project = Project(ROOT / "examples" / "dealer_group", plugin_manager=bundled_pm())
    project.plugins


def test_docs_config_md_is_the_rendered_schema():
    """docs/config.md cannot drift: it is what `motorcade config reference` prints for the bundled plugins."""
    expected = render_reference(bundled_pm().registry())
    actual = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/config.md is stale: run `motorcade config reference > docs/config.md`"


def test_every_bundled_plugin_declares_its_settings():
    registry = bundled_pm().registry()
    undeclared = [name for table in (registry.sources, registry.channels) for name, r in table.items()
                  if r.obj.__module__.split(".")[0] in BUNDLED_MODULES and r.obj.settings_schema is None]
    assert undeclared == []


def test_config_check_command(tmp_path):
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    (tmp_path / "motorcade.toml").write_text("[activation]\nclaim_batch = 0\n", encoding="utf-8")
    result = CliRunner().invoke(build_cli(), ["--project", str(tmp_path), "config", "check"],
                                standalone_mode=False)
    assert isinstance(result.exception, ConfigError) and "claim_batch" in str(result.exception)


def test_an_unopenable_database_path_is_a_config_error_naming_it(tmp_path):
    from motorcade.store import open_store

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"database '.*a_file/m.db' cannot be opened"):
        open_store("a_file/m.db", base_dir=tmp_path)
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(ConfigError, match=r"database '.*a_folder' cannot be opened"):
        open_store("a_folder", base_dir=tmp_path)


def test_sends_retry_refuses_a_state_that_cannot_be_retried_as_a_usage_error(motorcade_project):
    from motorcade.cli import main

    code = main(["--project", str(motorcade_project.directory), "sends", "retry", "--status", "sent", "--all"])
    assert code == 2
