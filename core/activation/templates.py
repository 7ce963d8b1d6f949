"""Message templates: Jinja2's sandbox over the person's attributes, tags, car, advisor and store.

Templates are files in the project's ``templates/`` folder (``[activation] templates = "..."`` moves it).
For ``via sms template "service_recall"`` the first file that exists wins:
``templates/service_recall.sms.txt``, ``templates/service_recall.txt``, ``templates/service_recall.html``
(and the same names with ``.j2``). A template may start with a ``Subject: ...`` line followed by a blank line
(e-mail subject, card title). ``.html`` templates are auto-escaped; text templates are not (SMS, WeCom text).

Names a template can use::

    person.NAME / profile.NAME   profile attributes (person.id is the person id)
    tags.NAME                    tag values
    car.vin .brand .model .model_year .purchase_date .store_id   the person's newest owned car (cars: all)
    advisor.id .name .phone .store_id .role                        the person's sales (else service) advisor
    store.id .name .group .city .brand                             the person's store
    origin.kind .name   event.NAME (event triggers: the event's properties)   now (local time)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from motorcade.errors import MotorcadeError

CAR_FIELDS = ("vin", "brand", "model", "model_year", "purchase_date", "store_id")
ADVISOR_FIELDS = ("id", "name", "phone", "store_id", "role")
STORE_FIELDS = ("id", "name", "group", "city", "brand")
ORIGIN_FIELDS = ("kind", "name")
ROOTS = ("person", "profile", "tags", "car", "cars", "advisor", "store", "origin", "event", "now", "loop")
TEXT_SUFFIXES = (".txt", ".txt.j2", ".j2")
HTML_SUFFIXES = (".html", ".html.j2")


class TemplateError(MotorcadeError):
    """A template is missing, does not parse, or cannot be rendered for a person."""


@attrs.frozen
class Rendered:
    subject: str | None
    body: str


@attrs.frozen
class TemplateProblem:
    """One finding of :func:`check_template`: file, line and what to do."""

    template: str
    path: str
    line: int | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def make_environment(*, autoescape: bool) -> SandboxedEnvironment:
    """The sandbox: no access to Python internals; undefined names render empty (check reports them)."""
    return SandboxedEnvironment(autoescape=autoescape, undefined=jinja2.ChainableUndefined, finalize=_finalize,
                                keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)


def split_subject(text: str) -> tuple[str | None, str, int]:
    """``Subject: ...`` header: (subject source, body source, line number where the body starts)."""
    first, sep, rest = text.partition("\n")
    if first.lower().startswith("subject:"):
        rest_lines = rest.split("\n")
        body_line = 2
        if rest_lines and rest_lines[0].strip() == "":
            rest_lines = rest_lines[1:]
            body_line = 3
        return first.split(":", 1)[1].strip(), "\n".join(rest_lines), body_line
    return None, text, 1


class TemplateStore:
    """Finds, compiles (once) and renders the project's templates."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._text_env = make_environment(autoescape=False)
        self._html_env = make_environment(autoescape=True)
        self._cache: dict[tuple[str, str], tuple[Path, Any, Any]] = {}

    def candidates(self, name: str, channel: str) -> list[Path]:
        out = []
        for suffix in TEXT_SUFFIXES + HTML_SUFFIXES:
            out.append(self.directory / f"{name}.{channel}{suffix}")
        for suffix in TEXT_SUFFIXES + HTML_SUFFIXES:
            out.append(self.directory / f"{name}{suffix}")
        return out

    def path_of(self, name: str, channel: str) -> Path:
        for path in self.candidates(name, channel):
            if path.is_file():
                return path
        raise TemplateError(
            f"template {name!r} for channel {channel} not found in {self.directory}",
            hint=f"create {self.directory / (name + '.txt')} (or {name}.{channel}.txt for this channel only)",
        )

    def source(self, name: str, channel: str) -> tuple[Path, str]:
        path = self.path_of(name, channel)
        return path, path.read_text(encoding="utf-8")

    def _compiled(self, name: str, channel: str):
        key = (name, channel)
        if key not in self._cache:
            path, text = self.source(name, channel)
            env = self._html_env if path.name.endswith(HTML_SUFFIXES) else self._text_env
            subject_src, body_src, _ = split_subject(text)
            try:
                subject = None if subject_src is None else self._text_env.from_string(subject_src)
                body = env.from_string(body_src)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"{path}:{exc.lineno}: template syntax error: {exc.message}",
                                    hint="fix the template; see docs/activation.md#templates") from None
            self._cache[key] = (path, subject, body)
        return self._cache[key]

    def render(self, name: str, channel: str, context: dict[str, Any]) -> Rendered:
        path, subject, body = self._compiled(name, channel)
        try:
            return Rendered(
                subject=None if subject is None else " ".join(subject.render(context).split()),
                body=body.render(context).strip(),
            )
        except jinja2.TemplateError as exc:  # includes SecurityError from the sandbox
            raise TemplateError(f"{path}: cannot render: {type(exc).__name__}: {exc}",
                                hint="see docs/activation.md#templates for the names a template can use") from None


# -- checking (motorcade check) ---------------------------------------------------------------------


def _attr_chain(node) -> tuple[str, list[str]] | None:
    """``person.name`` / ``tags["x"]`` -> ("person", ["name"]) / ("tags", ["x"])."""
    path: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            path.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            return node.name, list(reversed(path))
        else:
            return None


def check_template(name: str, path: Path, text: str, *, attributes: set[str] | None = None,
                   tags: set[str] | None = None, max_length: int | None = None,
                   channel: str | None = None) -> list[TemplateProblem]:
    """Fields a template uses that do not exist, and a body longer than the channel accepts.

    ``attributes`` / ``tags``: the names known in the project (None = unknown, not checked). The length
    check counts the template's literal text only (the floor of what any person's message will be).
    """
    problems: list[TemplateProblem] = []
    subject_src, body_src, body_line = split_subject(text)
    env = make_environment(autoescape=path.name.endswith(HTML_SUFFIXES))
    known_fields = {"car": set(CAR_FIELDS), "advisor": set(ADVISOR_FIELDS), "store": set(STORE_FIELDS),
                    "origin": set(ORIGIN_FIELDS)}
    if attributes is not None:
        known_fields["person"] = set(attributes) | {"id"}
        known_fields["profile"] = set(attributes)
    if tags is not None:
        known_fields["tags"] = set(tags)
    for part_src, offset in ((subject_src, 0), (body_src, body_line - 1)):
        if part_src is None:
            continue
        try:
            tree = env.parse(part_src)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(TemplateProblem(name, str(path), (exc.lineno or 1) + offset,
                                            f"syntax error: {exc.message}"))
            continue
        local_names = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        reported: set[tuple] = set()
        for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
            chain = _attr_chain(node)
            if chain is None:
                continue
            root, fields = chain
            if isinstance(node, nodes.Name) and node.ctx != "load":
                continue
            if root in local_names:
                continue
            line = (node.lineno or 1) + offset
            if root not in ROOTS:
                key = (root,)
                if key not in reported:
                    reported.add(key)
                    import difflib

                    close = difflib.get_close_matches(root, ROOTS, n=1)
                    problems.append(TemplateProblem(
                        name, str(path), line, f"unknown name `{root}`",
                        f"did you mean `{close[0]}`?" if close else f"templates can use {', '.join(ROOTS[:-1])}"))
                continue
            if not fields or root not in known_fields:
                continue
            field = fields[0]
            key = (root, field)
            if field not in known_fields[root] and key not in reported:
                reported.add(key)
                import difflib

                close = difflib.get_close_matches(field, sorted(known_fields[root]), n=1)
                problems.append(TemplateProblem(
                    name, str(path), line, f"`{root}.{field}` does not exist",
                    f"did you mean `{root}.{close[0]}`?" if close else
                    f"known: {', '.join(sorted(known_fields[root])[:12]) or 'none'}"))
    if max_length is not None:
        literal = "".join(n.data for n in env.parse(body_src).find_all(nodes.TemplateData)) if not any(
            p.message.startswith("syntax error") for p in problems) else ""
        literal = literal.strip()
        if len(literal) > max_length:
            problems.append(TemplateProblem(
                name, str(path), None,
                f"{len(literal)} characters of fixed text; {channel or 'the channel'} accepts at most {max_length}",
                "shorten the template (an SMS over the limit is split or refused by the provider)"))
    return problems
