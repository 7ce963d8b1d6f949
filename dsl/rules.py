"""RuleSet: every rule of a project, loaded from ``.mc`` files, with a content-hash revision."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import attrs

from motorcade.dsl import ast
from motorcade.dsl.errors import ERROR, Diagnostic, DslError, make
from motorcade.dsl.parser import parse_text

RULE_SUFFIX = ".mc"
TEST_SUFFIX = ".test.mc"


@attrs.define
class RuleSet:
    """All rules by kind and name. ``revision`` is the sha256 (hex) over the sorted (path, content) pairs
    of the files read; activation stamps it on every send so a send can be traced to the rules used."""

    files: list[ast.RuleFile] = attrs.field(factory=list)
    revision: str = ""
    segments: dict[str, ast.Segment] = attrs.field(factory=dict)
    campaigns: dict[str, ast.Campaign] = attrs.field(factory=dict)
    triggers: dict[str, ast.Trigger] = attrs.field(factory=dict)
    tags: dict[str, ast.TagRule] = attrs.field(factory=dict)
    funnels: dict[str, ast.Funnel] = attrs.field(factory=dict)
    journeys: dict[str, ast.Journey] = attrs.field(factory=dict)
    recommendations: dict[str, ast.Recommend] = attrs.field(factory=dict)

    def file_of(self, rule) -> ast.RuleFile | None:
        for rule_file in self.files:
            if any(r is rule for r in rule_file.rules):
                return rule_file
        return None

    def by_kind(self, kind: str) -> dict:
        return {"segment": self.segments, "campaign": self.campaigns, "trigger": self.triggers,
                "tag": self.tags, "funnel": self.funnels, "journey": self.journeys,
                "recommendation": self.recommendations}[kind]


def is_rule_file(path: Path) -> bool:
    return path.name.endswith(RULE_SUFFIX) and not path.name.endswith(TEST_SUFFIX)


def rule_file_paths(paths: Iterable[str | Path], suffix_test=is_rule_file) -> list[tuple[Path, str]]:
    """``(path, name used for the revision)`` of every rule file under ``paths`` (files or directories)."""
    found: dict[Path, str] = {}
    for given in paths:
        given = Path(given)
        if given.is_dir():
            for path in sorted(given.rglob("*")):
                if path.is_file() and suffix_test(path):
                    found[path] = path.relative_to(given).as_posix()
        elif given.is_file():
            found[given] = given.name
        else:
            raise DslError([Diagnostic(ERROR, f"no such file or directory: {given}", str(given),
                                       hint="give a rule file (.mc) or a directory of rule files")])
    return sorted(found.items(), key=lambda item: (item[1], str(item[0])))


def build_rule_set(rule_files: list[ast.RuleFile], revision: str = "") -> RuleSet:
    """Index parsed files by kind and name; duplicate names of one kind are errors (all reported)."""
    rule_set = RuleSet(files=list(rule_files), revision=revision)
    diagnostics = []
    where: dict[tuple[str, str], tuple[ast.RuleFile, object]] = {}
    for rule_file in rule_files:
        for rule in rule_file.rules:
            kind = ast.RULE_KINDS[type(rule)]
            key = (kind, rule.name)
            if key in where:
                first_file, first_rule = where[key]
                diagnostics.append(make(
                    ERROR, f"{kind} `{rule.name}` is defined twice", file=rule_file.filename,
                    source=rule_file.source, line=rule.line, column=rule.column,
                    hint=f"first defined at {first_file.filename}:{first_rule.line}; rename or remove one"))
                continue
            where[key] = (rule_file, rule)
            rule_set.by_kind(kind)[rule.name] = rule
    if diagnostics:
        raise DslError(diagnostics)
    return rule_set


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Read and parse every ``.mc`` file under ``paths`` (``*.test.mc`` rule tests are skipped).

    Raises :class:`DslError` with every syntax error of every file, or duplicate rule names.
    """
    digest = hashlib.sha256()
    rule_files, diagnostics = [], []
    for path, name in rule_file_paths(paths):
        text = path.read_text(encoding="utf-8")
        digest.update(name.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\0")
        try:
            rule_files.append(parse_text(text, str(path)))
        except DslError as exc:
            diagnostics.extend(exc.diagnostics)
    if diagnostics:
        raise DslError(diagnostics)
    return build_rule_set(rule_files, digest.hexdigest())


def rule_set_from_text(text: str, filename: str = "<text>") -> RuleSet:
    """A RuleSet from one string (tests, notebooks); revision = sha256 of the text."""
    rule_file = parse_text(text, filename)
    return build_rule_set([rule_file], hashlib.sha256(text.encode("utf-8")).hexdigest())
