"""Every code block in README.md, docs/*.md and the bundled plugins' and examples' READMEs is checked, so
the docs cannot drift from the code. A block's language says how it is checked:

- ``mc``: rules. They parse and pass `check`. A block may use rules defined in other ``mc`` blocks of the same
  page (the page's blocks form one pool; a name defined in several blocks is taken from the first); only
  problems located in the block itself are reported against it.
- ``mctest``: a rule test; it runs against the page's pool of rules and every expectation passes.
- ``toml``: a motorcade.toml fragment; it loads against the config schema (core and bundled plugins). A block
  whose first line is a comment naming ``pyproject.toml`` is a package file and only has to be valid TOML.
- ``sh``: shell; every ``motorcade …`` command named in it exists.
- ``python``: compiles.
- ``text``, ``json``, ``jinja``, ``csv``, ``sql``, ``console``, ``http``: shown as they are (output, payloads).
A block without a language fails: say what it is.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from motorcade.config_schema import validate_plugin_settings
from motorcade.dsl.errors import ERROR, DslError
from motorcade.testing import plugin_manager_limited_to

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("plugins/*/*/README.md"),
                *ROOT.glob("examples/*/README.md")])
BUNDLED_MODULES = {p.name for p in ROOT.glob("plugins/*/*/motorcade_*")}
SHOWN_AS_IS = {"text", "json", "jinja", "csv", "sql", "console", "http"}
CHECKED = {"mc", "mctest", "toml", "sh", "python"}
FENCE = re.compile(r"^(\s*)```(.*)$")


def blocks(page: Path) -> list[tuple[int, str, str]]:
    """``(line, language, text)`` of every fenced block of ``page``."""
    out, current = [], None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if match and current is None:
            current = (number, match.group(2).strip().split(" ")[0], match.group(1), [])
        elif match and current is not None and match.group(2).strip() == "":
            start, language, indent, lines = current
            out.append((start, language, "\n".join(l[len(indent):] if l.startswith(indent) else l
                                                   for l in lines) + "\n"))
            current = None
        elif current is not None:
            current[3].append(line)
    assert current is None, f"{page}: a code block opened at line {current[0]} is never closed"
    return out


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


ALL_BLOCKS = [(page, line, language, text) for page in PAGES for line, language, text in blocks(page)]


def block_id(item) -> str:
    page, line, language, _ = item
    return f"{page_id(page)}:{line}:{language or 'unlabelled'}"


@pytest.mark.parametrize("item", ALL_BLOCKS, ids=block_id)
def test_every_block_says_what_it_is(item):
    page, line, language, _ = item
    assert language in CHECKED | SHOWN_AS_IS, (
        f"{page_id(page)}:{line}: label the code block (```{' | ```'.join(sorted(CHECKED | SHOWN_AS_IS))})")


def _pool(page: Path):
    """The page's rules: every mc block parsed, first definition of a name kept."""
    from motorcade.dsl import ast
    from motorcade.dsl.parser import parse_text

    files = []
    seen: set[tuple[str, str]] = set()
    for line, language, text in blocks(page):
        if language != "mc":
            continue
        rule_file = parse_text(text, f"{page_id(page)}:{line}")
        keep = []
        for rule in rule_file.rules:
            key = (ast.RULE_KINDS[type(rule)], rule.name)
            if key not in seen:
                seen.add(key)
                keep.append(rule)
        files.append(ast.RuleFile(tuple(keep), rule_file.filename, rule_file.source, rule_file.comments))
    return files


def _rule_set_for(page: Path, line: int, text: str):
    """The block's own rules plus the page's other rules whose names the block does not define."""
    from motorcade.dsl import ast
    from motorcade.dsl.parser import parse_text
    from motorcade.dsl.rules import build_rule_set

    own = parse_text(text, f"{page_id(page)}:{line}")
    names = {(ast.RULE_KINDS[type(r)], r.name) for r in own.rules}
    others = []
    for rule_file in _pool(page):
        if rule_file.filename == own.filename:
            continue
        rules = tuple(r for r in rule_file.rules if (ast.RULE_KINDS[type(r)], r.name) not in names)
        others.append(ast.RuleFile(rules, rule_file.filename, rule_file.source, rule_file.comments))
    return own, build_rule_set([own, *others])


MC_BLOCKS = [item for item in ALL_BLOCKS if item[2] == "mc"]


@pytest.mark.parametrize("item", MC_BLOCKS, ids=block_id)
def test_rule_blocks_parse_and_pass_check(item):
    from motorcade.dsl.check import check

    page, line, _, text = item
    try:
        own, rule_set = _rule_set_for(page, line, text)
    except DslError as exc:
        pytest.fail(f"{page_id(page)}:{line}: the rules do not parse:\n{exc}")
    problems = [d for d in check(rule_set) if d.severity == ERROR and d.file == own.filename]
    assert not problems, "\n".join(d.render() for d in problems)


MCTEST_BLOCKS = [item for item in ALL_BLOCKS if item[2] == "mctest"]


@pytest.mark.parametrize("item", MCTEST_BLOCKS, ids=block_id)
def test_rule_test_blocks_pass(item, tmp_path):
    from motorcade.dsl.rules import build_rule_set
    from motorcade.dsl.ruletest import run_rule_tests

    page, line, _, text = item
    test_file = tmp_path / "docs.test.mc"
    test_file.write_text(text, encoding="utf-8")
    report = run_rule_tests([test_file], build_rule_set(_pool(page)))
    failed = [f"{r.name}: {r.message}" for r in report.results if not r.passed]
    assert report.results and not failed, f"{page_id(page)}:{line}: " + "\n".join(failed)


TOML_BLOCKS = [item for item in ALL_BLOCKS if item[2] == "toml"]


@pytest.mark.parametrize("item", TOML_BLOCKS, ids=block_id)
def test_toml_blocks_load_against_the_config_schema(item, tmp_path):
    from motorcade.config import load_config

    page, line, _, text = item
    if text.lstrip().startswith("#") and "pyproject.toml" in text.lstrip().splitlines()[0]:
        tomllib.loads(text)  # a package's pyproject.toml, not a project's configuration
        return
    path = tmp_path / "motorcade.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)  # the core's tables
    validate_plugin_settings(config, plugin_manager_limited_to(BUNDLED_MODULES).registry())


SH_BLOCKS = [item for item in ALL_BLOCKS if item[2] == "sh"]


def _command_paths(text: str) -> list[list[str]]:
    out = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            while words and ("=" in words[0] and not words[0].startswith("-")):
                words = words[1:]  # VAR=value prefixes
            if words and words[0].split("/")[-1] == "motorcade":
                out.append(words[1:])
    return out


@pytest.mark.parametrize("item", SH_BLOCKS, ids=block_id)
def test_shell_blocks_name_commands_that_exist(item):
    import click

    from motorcade.cli import build_cli

    page, line, _, text = item
    root = build_cli()
    for words in _command_paths(text):
        command, path = root, ["motorcade"]
        args = iter(words)
        for word in args:
            if word.startswith("-"):
                if word in ("--project", "--as"):  # root options that take a value
                    next(args, None)
                continue
            if isinstance(command, click.Group):
                assert word in command.commands, (
                    f"{page_id(page)}:{line}: `{' '.join(path)} {word}` is not a command "
                    f"({', '.join(sorted(command.commands))})")
                command, path = command.commands[word], [*path, word]
            else:
                break
        assert command is not root, f"{page_id(page)}:{line}: `motorcade {' '.join(words)}` names no command"


PYTHON_BLOCKS = [item for item in ALL_BLOCKS if item[2] == "python"]


@pytest.mark.parametrize("item", PYTHON_BLOCKS, ids=block_id)
def test_python_blocks_compile(item):
    page, line, _, text = item
    compile(text, f"{page_id(page)}:{line}", "exec")


def test_the_docs_have_blocks_of_every_checked_kind():
    """The checks above are not vacuous: each kind occurs."""
    languages = {language for _, _, language, _ in ALL_BLOCKS}
    assert {"mc", "mctest", "toml", "sh", "python"} <= languages
