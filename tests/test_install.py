"""`motorcade install` / `uninstall` (pip into Motorcade's own environment, no network: a wheel built here) and
one-off plugins as plain .py files (`--plugins-dir`, MOTORCADE_PLUGINS_DIR, `[project] plugins_dir`)."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile

import pytest

DIST = "motorcade-channel-pigeon"

PIGEON = '''
import click
import motorcade
from motorcade.activation.channel import Channel, ChannelCapabilities, DeliveryResult


class PigeonChannel(Channel):
    name = "pigeon_post"
    capabilities = ChannelCapabilities(address_type="phone")

    def send(self, batch):
        return [DeliveryResult(m.idempotency_key, "sent") for m in batch]


@motorcade.hookimpl
def register_channels(register):
    register(PigeonChannel)


@motorcade.hookimpl
def register_commands(cli):
    @cli.command(name="pigeon-hello")
    def hello():
        click.echo("coo")
'''


def motorcade(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MOTORCADE_LOAD_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "motorcade.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd)


def build_wheel(directory):
    """A real wheel (RECORD with hashes), written by hand so no build backend or index is needed."""
    module = "motorcade_channels_pigeon"
    info = "motorcade_channel_pigeon-0.1.0.dist-info"
    files = {
        f"{module}/__init__.py": PIGEON,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.1.0\nRequires-Dist: motorcade\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: motorcade-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[motorcade]\npigeon_post = {module}\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / "motorcade_channel_pigeon-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def plugin_names(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)["plugins"]}


OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_install_and_uninstall_a_plugin_into_motorcades_environment(tmp_path):
    wheel = build_wheel(tmp_path)
    try:
        installed = motorcade("install", str(wheel), env=OFFLINE)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        plugins = plugin_names(motorcade("plugins", "--json"))
        assert plugins["pigeon_post"]["distribution"] == DIST and plugins["pigeon_post"]["provides"] == ["pigeon_post"]
        assert motorcade("pigeon-hello").stdout.strip() == "coo"
        removed = motorcade("uninstall", "-y", DIST, env=OFFLINE)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert "pigeon_post" not in plugin_names(motorcade("plugins", "--json"))
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", DIST], capture_output=True)


def test_install_reports_a_pip_failure_and_refuses_to_remove_motorcade(tmp_path):
    failed = motorcade("install", str(tmp_path / "no-such-plugin-0.1-py3-none-any.whl"), env=OFFLINE)
    assert failed.returncode == 1 and "pip install failed" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert motorcade("install").returncode == 2
    refused = motorcade("uninstall", "-y", "motorcade")
    assert refused.returncode == 2 and "refusing" in refused.stderr


@pytest.fixture
def plugins_dir(tmp_path):
    directory = tmp_path / "one-off"
    directory.mkdir()
    (directory / "pigeon.py").write_text(PIGEON, encoding="utf-8")
    return directory


def test_plugins_dir_option_and_environment_load_plain_py_files(plugins_dir):
    for args, env in (([ "--plugins-dir", str(plugins_dir)], None), ([], {"MOTORCADE_PLUGINS_DIR": str(plugins_dir)})):
        plugins = plugin_names(motorcade(*args, "plugins", "--json", env=env))
        assert plugins["pigeon"]["provides"] == ["pigeon_post"]
        assert plugins["pigeon"]["path"] == str(plugins_dir / "pigeon.py")
        assert motorcade(*args, "pigeon-hello", env=env).stdout.strip() == "coo"
        assert "pigeon-hello" in motorcade(*args, "--help", env=env).stdout
    assert "pigeon" not in plugin_names(motorcade("plugins", "--json"))  # nothing loads unless asked


def test_project_setting_loads_its_plugins_dir(tmp_path, plugins_dir):
    project = tmp_path / "p"
    assert motorcade("init", str(project)).returncode == 0
    config = project / "motorcade.toml"
    config.write_text(config.read_text().replace('rules = ["rules"]', 'rules = ["rules"]\nplugins_dir = "plugins"'))
    plugins_dir.rename(project / "plugins")
    (project / "rules" / "main.mc").write_text(
        'segment everyone {\n  where profile.name is not null\n}\n'
        'campaign hello {\n  audience everyone\n  schedule daily at 10:00\n  send to all members\n'
        '  via pigeon_post template "hello"\n}\n', encoding="utf-8")
    (project / "templates").mkdir()
    (project / "templates" / "hello.txt").write_text("hello", encoding="utf-8")
    check = motorcade("--project", str(project), "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert motorcade("pigeon-hello", cwd=project).stdout.strip() == "coo"
    assert plugin_names(motorcade("--project", str(project), "plugins", "--json"))["pigeon"]["provides"] == ["pigeon_post"]


def test_a_broken_py_file_is_a_load_failure_named_by_its_path(plugins_dir):
    (plugins_dir / "broken.py").write_text("raise RuntimeError('half-written plugin')\n", encoding="utf-8")
    result = motorcade("--plugins-dir", str(plugins_dir), "plugins")
    assert result.returncode == 1
    assert str(plugins_dir / "broken.py") in result.stderr and "half-written plugin" in result.stderr
    assert motorcade("--plugins-dir", str(plugins_dir), "pigeon-hello").stdout.strip() == "coo"
    missing = motorcade("--plugins-dir", str(plugins_dir / "nope"), "status")
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_a_failed_py_file_is_reported_by_lookups_of_its_name(plugins_dir, motorcade_pm):
    from motorcade.errors import PluginNotLoaded

    motorcade_pm.load_plugins_dir(plugins_dir)
    assert motorcade_pm.registry().channel_class("pigeon_post").name == "pigeon_post"
    # a file added later fails to load; the registry built before must not hide the failure
    (plugins_dir / "carrier.py").write_text("import carrier_sdk_missing\n", encoding="utf-8")
    assert motorcade_pm.load_plugins_dir(plugins_dir) == []
    with pytest.raises(PluginNotLoaded, match="carrier_sdk_missing") as excinfo:
        motorcade_pm.registry().channel_class("carrier")
    assert str(plugins_dir / "carrier.py") in str(excinfo.value)
