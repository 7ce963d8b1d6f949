"""The CLI: init, status, plugins, --version, exit codes; the plugin docs cover every hook."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from motorcade import __version__, hookspecs
from motorcade.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(args, **kw):
    return subprocess.run([sys.executable, "-m", "motorcade.cli", *args], capture_output=True, text=True, **kw)


def test_version_and_help():
    result = run(["--version"])
    assert result.returncode == 0 and __version__ in result.stdout
    assert "Commands:" in run(["--help"]).stdout


def test_init_then_status(tmp_path):
    result = run(["init", str(tmp_path / "proj"), "--name", "demo"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "proj" / "motorcade.toml").exists()
    result = run(["--project", str(tmp_path / "proj"), "status", "--json"])
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["project"] == "demo" and payload["people"] == 0 and payload["sends"] == 0


def test_project_from_environment(tmp_path):
    run(["init", str(tmp_path / "p")])
    result = run(["status", "--json"], env={"MOTORCADE_PROJECT": str(tmp_path / "p"), "PATH": ""})
    assert result.returncode == 0, result.stderr


def test_exit_codes(tmp_path):
    assert run(["--project", str(tmp_path / "missing"), "status"]).returncode == 2  # no project: usage
    assert run(["no-such-command"]).returncode == 2  # usage
    run(["init", str(tmp_path / "p")])
    again = run(["init", str(tmp_path / "p")])
    assert again.returncode == 1 and "already exists" in again.stderr  # domain error
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "motorcade.toml").write_text("[project\nname=")
    bad = run(["--project", str(tmp_path / "bad"), "status"])
    assert bad.returncode == 1 and "not valid TOML" in bad.stderr


def test_plugins_json_lists_each_bundled_kind():
    result = run(["plugins", "--json"])
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["errors"] == []
    kinds = {kind for p in payload["plugins"] if (p["distribution"] or "").startswith("motorcade-")
             for kind in p["kinds"]}
    for p in payload["plugins"]:
        assert p["version"], p
    assert {"source", "tag", "channel"} <= kinds  # at least one bundled plugin of each kind


def test_plugin_docs_show_every_hook_with_its_exact_signature():
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("register_"):
            continue
        signature = f"{name}{inspect.signature(fn)}".replace("'", "")
        assert f"`{signature}`" in docs, signature


def test_main_maps_domain_errors_to_exit_1(tmp_path, capsys):
    assert main(["init", str(tmp_path / "x")]) == 0
    assert main(["init", str(tmp_path / "x")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_building_the_cli_imports_no_heavy_dependency():
    """`motorcade --help` stays fast however many plugins are installed: heavy imports happen on use."""
    code = ("import sys; from motorcade.cli import build_cli; build_cli(); "
            "print(sorted(m for m in ('sqlglot', 'jinja2', 'phonenumbers', 'sqlite_utils', 'rich') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_arguments_and_no_project_are_usage_errors(tmp_path):
    run(["init", str(tmp_path / "p")])
    ingest = run(["--project", str(tmp_path / "p"), "ingest"])
    assert ingest.returncode == 2, ingest.stderr
    assert "--all" in ingest.stderr  # says what to pass
    split = run(["--project", str(tmp_path / "p"), "identity", "split", "1"])
    assert split.returncode == 2 and "--identifier" in split.stderr, split.stderr
    outside = tmp_path / "elsewhere"
    (outside / "rules").mkdir(parents=True)
    (outside / "rules" / "a.mc").write_text("segment a {\n  where profile.name is not null\n}\n")
    for command in (["check"], ["test"], ["fmt"], ["fmt", "--check"]):
        result = run(command, cwd=outside, env={"PATH": "", "HOME": str(tmp_path)})
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "0 files" not in result.stdout
        assert "motorcade.toml" in result.stderr and "--project" in result.stderr, result.stderr
    # naming the files works anywhere
    assert run(["check", "rules/a.mc"], cwd=outside).returncode == 0
    empty = outside / "empty"
    empty.mkdir()
    nothing = run(["check", str(empty)], cwd=outside)
    assert nothing.returncode == 2 and "no rule files" in nothing.stderr, nothing.stdout + nothing.stderr
