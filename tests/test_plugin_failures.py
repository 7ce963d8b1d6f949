"""A plugin that fails to load, or that clashes with a built-in command, never bricks the CLI and is named
with its distribution wherever it matters (`plugins`, `check`, the registry)."""

import json
import os
import subprocess
import sys
import textwrap

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import motorcade
from motorcade.errors import PluginError, PluginNotLoaded
from motorcade.plugins import load_plugins, plugin_load_failures

RULES = """
segment everyone {
  where profile.name is not null
}
campaign hello {
  audience everyone
  schedule daily at 10:00
  send to all members
  via jsonfile template "hello"
}
"""


def fake_distribution(site, dist, entry_point, module, body):
    """A module plus a dist-info folder declaring it under the `motorcade` entry-point group."""
    (site / f"{module}.py").write_text(textwrap.dedent(body), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[motorcade]\n{entry_point} = {module}\n")


def run(site, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("MOTORCADE_LOAD_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "motorcade.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


@pytest.fixture
def broken_jsonfile(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "motorcade-channel-jsonfile", "jsonfile", "motorcade_channels_jsonfile",
                      "import jsonfile_provider_sdk_missing\n")
    return site


def test_plugins_exits_1_and_names_the_distribution_when_a_plugin_failed_to_load(broken_jsonfile):
    result = run(broken_jsonfile, "plugins")
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "motorcade-channel-jsonfile" in text and "jsonfile_provider_sdk_missing" in text
    as_json = run(broken_jsonfile, "plugins", "--json")
    assert as_json.returncode == 1
    errors = json.loads(as_json.stdout)["errors"]
    assert errors[0]["distribution"] == "motorcade-channel-jsonfile"
    # every other command keeps working
    assert run(broken_jsonfile, "--help").returncode == 0


def test_check_says_the_channel_plugin_failed_to_load_not_that_the_channel_is_unknown(tmp_path, broken_jsonfile):
    project = tmp_path / "p"
    assert run(broken_jsonfile, "init", str(project)).returncode == 0
    (project / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (project / "templates").mkdir()
    (project / "templates" / "hello.txt").write_text("hello", encoding="utf-8")
    result = run(broken_jsonfile, "--project", str(project), "check")
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "failed to load" in out and "motorcade-channel-jsonfile" in out, out
    assert "jsonfile_provider_sdk_missing" in out, out
    assert "unknown channel" not in out and "no channel named" not in out, out


def test_registry_lookup_of_a_name_whose_plugin_failed_raises_plugin_not_loaded(broken_jsonfile, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_jsonfile))
    monkeypatch.setenv("MOTORCADE_LOAD_PLUGINS", "motorcade-channel-jsonfile")
    pm = load_plugins()
    [failure] = plugin_load_failures(pm)
    assert (failure.name, failure.distribution) == ("jsonfile", "motorcade-channel-jsonfile")
    assert "jsonfile_provider_sdk_missing" in failure.error
    with pytest.raises(PluginNotLoaded) as excinfo:
        pm.registry().channel_class("jsonfile")
    assert excinfo.value.failure == failure
    assert isinstance(excinfo.value, PluginError)
    # a name no failed plugin could have provided is still "not installed", with the failure in the hint
    with pytest.raises(PluginError) as other:
        pm.registry().channel_class("carrier_pigeon")
    assert not isinstance(other.value, PluginNotLoaded)
    assert "motorcade-channel-jsonfile" in str(other.value)


STATUS_CLASH = """
import click
import motorcade

@motorcade.hookimpl
def register_commands(cli):
    @cli.command(name="status")
    def status():
        click.echo("the plugin's status")

    @cli.command(name="clash-extra")
    def extra():
        click.echo("extra works")
"""


def test_a_plugin_command_named_like_a_built_in_is_skipped_with_a_warning(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "motorcade-clash", "clash", "motorcade_clash", STATUS_CLASH)
    project = tmp_path / "p"
    assert run(site, "init", str(project)).returncode == 0
    for args in (["--help"], ["plugins"], ["--project", str(project), "status"]):
        result = run(site, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "'status'" in result.stderr and "'clash'" in result.stderr, result.stderr
        assert "motorcade-clash" in result.stderr, result.stderr
    status = run(site, "--project", str(project), "status")
    assert "the plugin's status" not in status.stdout and "Project" in status.stdout
    assert run(site, "clash-extra").stdout.strip() == "extra works"  # its other commands still work


def test_an_installed_plugin_with_a_misspelled_hook_is_a_load_failure_not_a_broken_cli(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "motorcade-typo", "typo", "motorcade_typo", """
        import motorcade

        @motorcade.hookimpl
        def register_chanels(register):
            pass
    """)
    assert run(site, "--help").returncode == 0
    result = run(site, "plugins")
    assert result.returncode == 1 and "register_chanels" in result.stderr and "motorcade-typo" in result.stderr


BUILT_INS = ["status", "check", "ingest", "plugins"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(BUILT_INS + ["alpha", "beta", "gamma"]), max_size=4, unique=True),
                min_size=1, max_size=4))
def test_plugin_commands_never_replace_a_taken_name(commands_per_plugin):
    """Whatever names plugins choose, built-ins stay, the first plugin to take a free name keeps it, and every
    command that was skipped has one warning naming its plugin."""
    group = click.Group("root")
    for name in BUILT_INS:
        group.add_command(click.Command(name), name)
    built_in = dict(group.commands)
    pm = load_plugins(entry_points=False)
    for index, names in enumerate(commands_per_plugin):
        pm.register(CommandPlugin(index, names), name=f"plugin{index}")
    warnings = pm.add_plugin_commands(group)
    first_owner = {}
    expected_skips = 0
    for index, names in enumerate(commands_per_plugin):
        for name in names:
            if name in built_in or name in first_owner:
                expected_skips += 1
            else:
                first_owner[name] = index
    for name, command in built_in.items():
        assert group.commands[name] is command
    for name, index in first_owner.items():
        assert group.commands[name].help == f"plugin{index}"
    assert len(warnings) == expected_skips
    assert all("plugin 'plugin" in w and "skipped" in w for w in warnings)


class CommandPlugin:
    def __init__(self, index, names):
        self.index, self.names = index, names

    @motorcade.hookimpl
    def register_commands(self, cli):
        for name in self.names:
            cli.add_command(click.Command(name, help=f"plugin{self.index}"), name)
