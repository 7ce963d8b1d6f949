"""No traceback reaches an operator from any command: every command, found by walking the CLI (so a new command is
covered without editing this file), is run with hostile input: no project, a corrupt database file, and garbage in
each argument and option. An unexpected error prints one line naming the error and the log file with its details,
and exits 1."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import motorcade
from motorcade import cli as cli_module
from motorcade.cli import build_cli, main

HOSTILE_TEXT = "💥'; DROP TABLE people;-- ../../etc/passwd"
# Commands that reach the network or change the environment (pip): covered by their own tests.
NOT_RUN = {("install",), ("uninstall",)}
TIMEOUT_SECONDS = 60


class Hung(BaseException):
    pass


def leaf_commands():
    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                yield from walk(sub, (*path, name))
        else:
            yield path, command

    return [(path, command) for path, command in walk(build_cli(), ()) if path not in NOT_RUN]


def argument_positions(command) -> list:
    return [p for p in command.params if isinstance(p, click.Argument) and p.required]


def required_arguments(command, tmp_path: Path) -> list[str]:
    # `serve` keeps running through errors by design (a database may come back): bound it
    values = ["--max-passes", "2"] if command.name == "serve" else []
    for param in command.params:
        if not isinstance(param, click.Argument) or not param.required:
            continue
        if isinstance(param.type, click.Choice):
            values.append(param.type.choices[0])
        elif isinstance(param.type, click.types.IntParamType):
            values.append("9999")
        elif isinstance(param.type, click.Path):
            values.append(str(tmp_path / "new-dir"))
        else:
            values.append(HOSTILE_TEXT)
    return values


def garbage_for(param) -> list[str]:
    kind = param.type
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return ["not-a-number", "-1", "99999999999999999999999", "nan"]
    if isinstance(kind, click.Choice):
        return ["bogus"]
    if isinstance(kind, (click.Path, click.File)):
        return ["/nonexistent/dir/x"]
    if isinstance(kind, click.DateTime) or "as_of" in (param.name or "") or param.name in ("since", "until"):
        return ["31/02/2020 25:99", "9999-12-31T23:59:59-10:00", "0000-00-00"]
    return [HOSTILE_TEXT, ""]


def invoke(args, capsys, cwd) -> tuple[int, str]:
    def alarm(*_):
        raise Hung(f"motorcade {' '.join(args)} still running after {TIMEOUT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT_SECONDS)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(here)
    out = capsys.readouterr()
    return code, out.out + out.err


def assert_operator_friendly(args, code, output):
    where = f"motorcade {' '.join(args)} -> exit {code}:\n{output}"
    assert "Traceback (most recent call last)" not in output, where
    assert code in (0, 1, 2), where
    for line in output.splitlines():
        if "details in " in line:
            log = Path(line.rsplit("details in ", 1)[1].rstrip(")"))
            assert log.is_file() and "Traceback" in log.read_text(encoding="utf-8"), where


@pytest.fixture
def projects(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTORCADE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("MOTORCADE_PROJECT", raising=False)
    assert main(["init", str(tmp_path / "valid")]) == 0
    assert main(["init", str(tmp_path / "corrupt")]) == 0
    database = tmp_path / "corrupt" / "motorcade.db"
    for leftover in tmp_path.glob("corrupt/motorcade.db*"):
        leftover.unlink()
    database.write_bytes(b"this is not a database\x00" * 300)
    return tmp_path


def test_every_command_without_a_project_and_with_a_corrupt_database(projects, capsys):
    for path, command in leaf_commands():
        args = [*path, *required_arguments(command, projects)]
        for project in ("missing", "corrupt"):
            full = ["--project", str(projects / project), *args]
            code, output = invoke(full, capsys, projects)
            assert_operator_friendly(full, code, output)


def test_every_option_and_argument_with_garbage(projects, capsys):
    for path, command in leaf_commands():
        required = required_arguments(command, projects)
        base = ["--project", str(projects / "valid"), *path]
        invocations = [[*base, "--no-such-option", *required]]
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag:
                for value in garbage_for(param):
                    if path == ("serve",) and value.isdigit():
                        continue  # a valid, huge number of passes: serve would rightly keep serving
                    invocations.append([*base, *required, param.opts[0], value])
            elif isinstance(param, click.Argument) and param.type.name in ("text", "integer"):
                offset = 2 if path == ("serve",) else 0
                for value in garbage_for(param):
                    args = list(required)
                    if param.required:
                        args[offset + argument_positions(command).index(param)] = value
                    else:
                        args.append(value)
                    invocations.append([*base, *args])
        for args in invocations:
            code, output = invoke(args, capsys, projects)
            assert_operator_friendly(args, code, output)
            if any(v in args for v in ("not-a-number", "99999999999999999999999", "nan", "bogus")):
                # a number or choice that cannot be used is the operator's mistake, said as such
                assert "details in" not in output, f"motorcade {' '.join(args)}:\n{output}"


def test_an_unexpected_error_prints_one_line_and_logs_the_traceback(tmp_path, monkeypatch, capsys,
                                                                    register_plugin):
    monkeypatch.setenv("MOTORCADE_LOG_DIR", str(tmp_path / "logs"))

    class Crashing:
        @motorcade.hookimpl
        def register_commands(self, cli):
            @cli.command(name="crash-now")
            def crash():
                raise RuntimeError("the provider SDK exploded")

    register_plugin(Crashing(), name="crashing")
    try:
        code = main(["crash-now"])
    finally:
        build_cli()
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert "RuntimeError: the provider SDK exploded" in line and "details in " in line
    log = Path(line.rsplit("details in ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "logs"
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "crash-now" in text
    assert "the provider SDK exploded" in text


def test_the_log_goes_into_the_project_when_there_is_one(tmp_path, monkeypatch, capsys, register_plugin):
    monkeypatch.delenv("MOTORCADE_LOG_DIR", raising=False)
    assert main(["init", str(tmp_path / "p")]) == 0

    class Crashing:
        @motorcade.hookimpl
        def register_commands(self, cli):
            @cli.command(name="crash-in-project")
            @click.pass_context
            def crash(ctx):
                ctx.obj.project  # the command found its project, then failed
                raise ValueError("bad luck")

    register_plugin(Crashing(), name="crashing")
    try:
        assert main(["--project", str(tmp_path / "p"), "crash-in-project"]) == 1
    finally:
        build_cli()
    line = capsys.readouterr().err.strip()
    log = Path(line.rsplit("details in ", 1)[1].rstrip(")"))
    assert log.is_relative_to((tmp_path / "p").resolve()), log


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_the_error_line_is_one_line_of_bounded_length(message):
    line = cli_module.one_line(RuntimeError(message), limit=120)
    assert "\n" not in line and "\r" not in line and len(line) <= 120
    assert line.startswith("RuntimeError:")
