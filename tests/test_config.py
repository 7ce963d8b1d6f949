"""motorcade.toml: defaults, validation, environment references."""

import pytest

from motorcade.config import load_config
from motorcade.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "motorcade.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert (config.name, config.timezone, config.database, config.rules) == (
        tmp_path.name, "Asia/Shanghai", "motorcade.db", ("rules",))


def test_environment_references(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.delenv("SMTP_PORT", raising=False)
    config = load_config(write(tmp_path, '[channels.webhook]\nurl = "${HOOK_URL}"\n'
                                         '[channels.email]\nport = "${SMTP_PORT:-2525}"\nfrom = "a${X:-b}c"\n'))
    assert config.channels["webhook"]["url"] == "http://127.0.0.1:9/hook"
    assert config.channels["email"]["port"] == "2525"  # text: channels convert the settings they need
    assert config.channels["email"]["from"] == "abc"


def test_missing_environment_variable_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"channels.sms.secret refers to \$\{NOPE_SECRET\}"):
        load_config(write(tmp_path, '[channels.sms]\nsecret = "${NOPE_SECRET}"\n'))


def test_bad_timezone_and_source_without_type(tmp_path):
    with pytest.raises(ConfigError, match="expected an IANA time zone"):
        load_config(write(tmp_path, '[project]\ntimezone = "Mars/Olympus"\n'))
    with pytest.raises(ConfigError, match=r"\[sources.crm\] needs a `type`"):
        load_config(write(tmp_path, '[sources.crm]\npath = "x.csv"\n'))


def test_a_secret_of_digits_keeps_its_leading_zeros(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "00012345")
    config = load_config(write(tmp_path, '[channels.webhook]\nsecret = "${HOOK_SECRET}"\n'))
    assert config.channels["webhook"]["secret"] == "00012345"


def test_settings_of_the_wrong_type_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="timezone = 8: expected text"):
        load_config(write(tmp_path, "[project]\ntimezone = 8\n"))
    with pytest.raises(ConfigError, match="rules = 5: expected text or list of text"):
        load_config(write(tmp_path, "[project]\nrules = 5\n"))


def test_init_escapes_the_project_name(tmp_path):
    from motorcade.project import init_project

    project = init_project(tmp_path / "q", name='Bao "Yue" \\ 集团')
    assert project.config.name == 'Bao "Yue" \\ 集团'
