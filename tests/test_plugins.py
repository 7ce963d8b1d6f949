"""Plugin discovery, registration, validation and failure isolation."""

import json
import textwrap

import click
import pytest
from click.testing import CliRunner

import motorcade
from motorcade import hookspecs
from motorcade.activation.channel import Channel, ChannelCapabilities, DeliveryResult
from motorcade.errors import PluginError
from motorcade.plugins import load_plugins
from motorcade.sources.base import Source
from motorcade.tags.base import TagCalculator, TagDefinition


class EchoChannel(Channel):
    name = "echo"
    capabilities = ChannelCapabilities(address_type="phone")

    def send(self, batch):
        return [DeliveryResult(m.idempotency_key, "sent") for m in batch]


class ListSource(Source):
    type_name = "list"

    def read(self, cursor=None):
        yield []


class ConstantTags(TagCalculator):
    name = "constant"
    produces = (TagDefinition("always_one", "number", "always 1"),)

    def compute(self, context):
        return []


class InMemoryPlugin:
    @motorcade.hookimpl
    def register_channels(self, register):
        register(EchoChannel)

    @motorcade.hookimpl
    def register_sources(self, register):
        register(ListSource)

    @motorcade.hookimpl
    def register_tag_calculators(self, register):
        register(ConstantTags())

    @motorcade.hookimpl
    def register_commands(self, cli):
        @cli.command(name="hello-plugin")
        def hello():
            click.echo("hello from a plugin")


def test_in_memory_plugin_registers_every_kind(motorcade_pm, register_plugin):
    register_plugin(InMemoryPlugin(), name="in-memory")
    registry = motorcade_pm.registry()
    assert registry.channel_class("echo") is EchoChannel
    assert registry.source_class("list") is ListSource
    assert isinstance(registry.tag_calculator("constant"), ConstantTags)
    info = {i.name: i for i in motorcade_pm.plugin_infos()}["in-memory"]
    assert info.kinds == ("channel", "command", "source", "tag")
    assert info.provides == ("constant", "echo", "list")


def test_unregistering_forgets_what_the_plugin_registered(motorcade_pm, register_plugin):
    register_plugin(InMemoryPlugin(), name="in-memory")
    assert "echo" in motorcade_pm.registry().channels
    motorcade_pm.unregister(name="in-memory")
    assert "echo" not in motorcade_pm.registry().channels


def test_duplicate_names_are_rejected_naming_both_plugins(motorcade_pm, register_plugin):
    register_plugin(InMemoryPlugin(), name="first")
    register_plugin(InMemoryPlugin(), name="second")
    with pytest.raises(PluginError) as excinfo:
        motorcade_pm.registry()
    assert "'first'" in str(excinfo.value) and "'second'" in str(excinfo.value)


def test_invalid_objects_are_rejected(motorcade_pm, register_plugin):
    class Bad:
        @motorcade.hookimpl
        def register_channels(self, register):
            register(object)

    register_plugin(Bad(), name="bad")
    with pytest.raises(PluginError, match="expected a subclass of motorcade.activation.channel.Channel"):
        motorcade_pm.registry()


def test_unknown_name_suggests_the_closest(motorcade_pm, register_plugin):
    register_plugin(InMemoryPlugin(), name="in-memory")
    with pytest.raises(PluginError) as excinfo:
        motorcade_pm.registry().channel_class("ecko")
    assert "did you mean `echo`" in str(excinfo.value)


def test_misspelled_hook_is_caught():
    class Typo:
        @motorcade.hookimpl
        def register_chanels(self, register):  # noqa: misspelled on purpose
            pass

    pm = load_plugins(entry_points=False)
    pm.register(Typo(), name="typo")
    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError):
        pm.check_pending()


def test_every_hook_has_a_docstring_saying_what_it_receives_and_returns():
    hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert set(hooks) == {"register_sources", "register_tag_calculators", "register_channels", "register_commands"}
    for name in hooks:
        doc = getattr(hookspecs, name).__doc__
        assert doc and "Receives" in doc and "Returns" in doc and "Called" in doc, name


def test_bundled_plugins_are_found_through_real_entry_points():
    pm = load_plugins()
    infos = {i.name: i for i in pm.plugin_infos()}
    installed = [i for i in infos.values() if i.distribution and i.distribution.startswith("motorcade-")]
    assert installed, "no bundled plugin distribution is installed (run `make test`, which installs them)"
    for info in installed:
        assert info.version and info.hooks and info.kinds


def _fake_distribution(tmp_path, dist, module, body):
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(body))
    # dist-info folders use the normalised name (underscores), as installers write them
    info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[motorcade]\n{module} = {module}\n")


def test_broken_plugin_is_reported_by_name_and_does_not_break_the_cli(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "motorcade-broken", "motorcade_broken_plugin",
                       "import this_module_does_not_exist\n")
    _fake_distribution(tmp_path, "motorcade-fine", "motorcade_fine_plugin", """
        import motorcade
        @motorcade.hookimpl
        def register_commands(cli):
            @cli.command(name="fine-hello")
            def hello():
                print("fine")
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MOTORCADE_LOAD_PLUGINS", "motorcade-broken,motorcade-fine")
    pm = load_plugins()
    assert [e.name for e in pm.load_errors] == ["motorcade_broken_plugin"]
    error = pm.load_errors[0]
    assert error.distribution == "motorcade-broken"
    assert "ModuleNotFoundError" in error.error and "this_module_does_not_exist" in error.error
    info = {i.name: i for i in pm.plugin_infos()}["motorcade_fine_plugin"]
    assert (info.distribution, info.version, info.kinds) == ("motorcade-fine", "1.2.3", ("command",))

    from motorcade import cli as cli_module
    from motorcade.plugins import set_plugin_manager

    set_plugin_manager(pm)
    try:
        result = CliRunner().invoke(cli_module.build_cli(), ["plugins", "--json"])
        assert result.exit_code == 1, result.output  # a plugin failed to load
        payload = json.loads(result.output)
        assert payload["errors"][0]["name"] == "motorcade_broken_plugin"
        result = CliRunner().invoke(cli_module.build_cli(), ["fine-hello"])
        assert result.output.strip() == "fine"
    finally:
        set_plugin_manager(None)
        cli_module.build_cli()  # back to the commands of the default manager


def test_block_list_skips_a_plugin(monkeypatch):
    pm_all = load_plugins()
    names = [i.name for i in pm_all.plugin_infos() if i.distribution and i.distribution.startswith("motorcade-")]
    assert names
    monkeypatch.setenv("MOTORCADE_BLOCK_PLUGINS", names[0])
    pm = load_plugins()
    assert names[0] not in {i.name for i in pm.plugin_infos()}


def test_trace_switch_prints_hook_calls(monkeypatch, capsys, register_plugin):
    monkeypatch.setenv("MOTORCADE_TRACE_PLUGINS", "1")
    pm = load_plugins(entry_points=False)
    pm.register(InMemoryPlugin(), name="in-memory")
    pm.registry()
    err = capsys.readouterr().err
    assert "call register_channels -> ['in-memory']" in err
