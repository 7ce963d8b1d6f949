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
    track(URL)   a tracked short link to URL      open_pixel()   an e-mail open pixel (motorcade.activation.tracking)
    recommendation.NAME          the person's top item of `recommend NAME` (.items ranked, .ranked with the
                                 rule that chose each, .for_car(vin) for a `per car` recommendation)
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import attrs
import jinja2
import markupsafe
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from motorcade.errors import MotorcadeError

CAR_FIELDS = ("vin", "brand", "model", "model_year", "purchase_date", "store_id")
ADVISOR_FIELDS = ("id", "name", "phone", "store_id", "role")
STORE_FIELDS = ("id", "name", "group", "city", "brand")
ORIGIN_FIELDS = ("kind", "name")
ROOTS = ("person", "profile", "tags", "car", "cars", "advisor", "store", "origin", "event", "now", "recommendation",
         "loop")
HELPERS = ("track", "open_pixel")  # tracked short links and the e-mail open pixel (motorcade.activation.tracking)
TEXT_SUFFIXES = (".txt", ".txt.j2", ".j2")
HTML_SUFFIXES = (".html", ".html.j2")


class TemplateError(MotorcadeError):
    """A template is missing, does not parse, or cannot be rendered for a person."""


class TemplateRuntimeError(TemplateError):
    """A template parsed but failed while rendering for one person (an exception or a render limit)."""


@attrs.frozen
class RenderLimits:
    """What rendering one message may cost (``[activation]`` ``render_*`` settings).

    ``seconds``: wall-clock time; ``max_chars``: the message and any text or list built on the way;
    ``max_loops``: loop iterations plus function and macro calls. A render over a limit fails for
    that person only (the send is dead-lettered with the reason).
    """

    seconds: float = 2.0
    max_chars: int = 100_000
    max_loops: int = 10_000


class RenderLimitExceeded(Exception):
    """Raised inside a render that went over one of its :class:`RenderLimits`."""


class _Budget:
    __slots__ = ("limits", "deadline", "steps")

    def __init__(self, limits: RenderLimits):
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.steps = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_loops:
            raise RenderLimitExceeded(f"more than {self.limits.max_loops} loop iterations and calls "
                                      "(render_max_loops)")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"rendering took longer than {self.limits.seconds:g} s (render_seconds)")

    def size(self, length: int) -> None:
        if length > self.limits.max_chars:
            raise RenderLimitExceeded(f"builds a text or list of {length} items; the limit is "
                                      f"{self.limits.max_chars} (render_max_chars)")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("motorcade_render_budget", default=None)
_SIZED = (str, list, tuple, bytes)
_PADDING_METHODS = {"ljust", "rjust", "center", "zfill", "expandtabs"}
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d*)(?:\.(\*|\d*))?")
_FORMAT_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")


def _check_replace(budget: _Budget, text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        budget.size(len(text) + (text.count(old) if old else len(text) + 1) * len(new))


def _check_percent(budget: _Budget, fmt: Any) -> None:
    if not isinstance(fmt, str):
        return
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for value in (width, precision):
            if value == "*":
                raise RenderLimitExceeded("`%*` widths are not allowed in templates")
            if value:
                budget.size(int(value))


def _check_format(budget: _Budget, fmt: str) -> None:
    if re.search(r"\{[^{}]*:[^{}]*\{", fmt):
        raise RenderLimitExceeded("nested format fields are not allowed in templates")
    for spec in _FORMAT_SPEC.findall(fmt):
        for digits in re.findall(r"\d+", spec):
            budget.size(int(digits))


class _LimitLoops(NodeTransformer):
    """Route every ``for`` loop's items and every ``~`` concatenation through the render budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("limited_iter"), [node.iter], [], None, None,
                               lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("limited_text"), [node], [], None, None, lineno=node.lineno)


class LimitedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox plus render limits: time, size of what is built, loop iterations and calls.

    Outside :meth:`TemplateStore.render` (no budget set) it behaves as the plain sandbox.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        # no constant folding: it would run `'x' | center(10**9)` at compile time, outside the limits
        self.optimized = False
        for name in ("center", "indent", "format", "replace", "wordwrap", "truncate"):
            self.filters[name] = self._limited_filter(self.filters[name], name)

    def _generate(self, source, name, filename, defer_init=False):  # type: ignore[override]
        # The code generator folds constant output (`{{ 'x' | center(10**9) }}`) at compile time: fold
        # within the limits too (a fold over them is left to the render, where it fails with the reason).
        token = _BUDGET.set(_Budget(RenderLimits()))
        try:
            return super()._generate(_LimitLoops().visit(source), name, filename, defer_init=defer_init)
        finally:
            _BUDGET.reset(token)

    @staticmethod
    def limited_iter(iterable: Iterable[Any]) -> Iterator[Any]:
        budget = _BUDGET.get()
        for item in iterable:
            if budget is not None:
                budget.tick()
            yield item

    @staticmethod
    def limited_text(value: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.size(len(value))
        return value

    @staticmethod
    def _limited_filter(function: Any, name: str) -> Any:
        @functools.wraps(function)
        def limited(*args: Any, **kwargs: Any) -> Any:
            budget = _BUDGET.get()
            if budget is not None:
                values = [a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.Environment))]
                if name in ("center", "indent", "wordwrap", "truncate"):
                    for value in [*values[1:], *kwargs.values()]:
                        if isinstance(value, int):
                            budget.size(value)
                elif name == "format" and values:
                    _check_percent(budget, values[0])
                elif name == "replace" and len(values) >= 3:
                    _check_replace(budget, str(values[0]), values[1], values[2])
            result = function(*args, **kwargs)
            if budget is not None and isinstance(result, _SIZED):
                budget.size(len(result))
            return result

        return limited

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if isinstance(seq, _SIZED) and isinstance(times, int):
                        budget.size(len(seq) * times)
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * abs(left).bit_length() > 4 * budget.limits.max_chars:
                    raise RenderLimitExceeded(f"{left} ** {right} is too large a number")
            elif operator == "%":
                _check_percent(budget, left)
        result = super().call_binop(context, operator, left, right)
        if budget is not None and isinstance(result, _SIZED):
            budget.size(len(result))
        return result

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (jinja's signature)
        budget = _BUDGET.get()
        if budget is not None:
            budget.tick()
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str):
                if getattr(__obj, "__name__", "") in _PADDING_METHODS:
                    for value in [*args, *kwargs.values()]:
                        if isinstance(value, int):
                            budget.size(value)
                elif getattr(__obj, "__name__", "") == "replace" and len(args) >= 2:
                    _check_replace(budget, owner, args[0], args[1])
        result = super().call(__context, __obj, *args, **kwargs)
        if budget is not None and isinstance(result, _SIZED):
            budget.size(len(result))
        return result

    def wrap_str_format(self, value: Any):  # type: ignore[override]
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__

        def limited(*args: Any, **kwargs: Any) -> str:
            budget = _BUDGET.get()
            if budget is not None:
                _check_format(budget, fmt)
            return wrapper(*args, **kwargs)

        return limited


_MISSING = object()
# Names a direct template may look up: the context's own (``loop`` and Jinja's special names are not).
_DIRECT_NAMES = frozenset(ROOTS) - {"loop"}
# A plain dict's attributes: `d.name` is d["name"] in the sandbox unless `name` is one of these.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class DirectTemplate:
    """A template made only of text and lookups such as ``{{ person.name }}`` or ``{{ tags["level"] }}`` (most
    SMS and WeCom texts), rendered without building a Jinja context for each message.

    It yields the same chunks as the Jinja template compiled from the same text: each run of text as one
    chunk, each lookup resolved by the sandbox's own ``getattr`` / ``getitem``, finalised and (in an HTML
    template) escaped as Jinja's generated code does. :meth:`from_source` returns None for any other
    template, which Jinja renders. ``tests/test_activation_templates.py`` holds the two to the same output
    and errors over generated templates and contexts."""

    def __init__(self, env: LimitedSandbox, chunks: tuple):
        self.env = env
        self.globals = dict(env.globals)
        self.chunks = chunks  # text, or (name, ((is_attribute, key), ...))
        self.to_text = markupsafe.escape if env.autoescape else str

    @classmethod
    def from_source(cls, env: LimitedSandbox, source: str) -> "DirectTemplate | None":
        chunks: list = []
        for output in env.parse(source).body:
            if not isinstance(output, nodes.Output):
                return None
            text: list[str] = []
            for node in output.nodes:
                if isinstance(node, nodes.TemplateData):
                    text.append(node.data)
                    continue
                lookup = cls._lookup(node)
                if lookup is None:
                    return None
                if text:
                    chunks.append("".join(text))
                    text = []
                chunks.append(lookup)
            if text:
                chunks.append("".join(text))
        return cls(env, tuple(chunks))

    @staticmethod
    def _lookup(node) -> tuple | None:
        path = []
        while True:
            if isinstance(node, nodes.Getattr):
                path.append((True, node.attr))
            elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                    and isinstance(node.arg.value, (str, int)) and not isinstance(node.arg.value, bool):
                path.append((False, node.arg.value))
            elif isinstance(node, nodes.Name) and node.ctx == "load" and node.name in _DIRECT_NAMES:
                return node.name, tuple(reversed(path))
            else:
                return None
            node = node.node

    def generate(self, context: dict[str, Any]) -> Iterator[str]:
        env = self.env
        for chunk in self.chunks:
            if chunk.__class__ is str:
                yield chunk
                continue
            name, path = chunk
            value = context.get(name, _MISSING)
            if value is _MISSING:
                value = self.globals.get(name, _MISSING)
                if value is _MISSING:
                    value = env.undefined(name=name)
            for is_attribute, key in path:
                if value.__class__ is dict and (key in value if not is_attribute else key not in _DICT_ATTRIBUTES):
                    # what the sandbox's getattr / getitem give for a plain dict, without their exceptions
                    value = value[key] if key in value else env.undefined(obj=value, name=key)
                else:
                    value = env.getattr(value, key) if is_attribute else env.getitem(value, key)
            yield self.to_text(env.finalize(value))


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
    column: int | None = None  # where on ``line`` (rule clauses); None: the line's first character
    severity: str = "error"  # "error": the rule is not planned; "warning": reported by check only

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def make_environment(*, autoescape: bool) -> LimitedSandbox:
    """The sandbox: no access to Python internals; undefined names render empty (check reports them)."""
    return LimitedSandbox(autoescape=autoescape, undefined=jinja2.ChainableUndefined, finalize=_finalize,
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

    def __init__(self, directory: Path, limits: RenderLimits | None = None):
        self.directory = Path(directory)
        self.limits = limits or RenderLimits()
        self._text_env = make_environment(autoescape=False)
        self._html_env = make_environment(autoescape=True)
        self._cache: dict[tuple[str, str], tuple[Path, Any, Any]] = {}
        self._roots: dict[tuple[str, str], frozenset[str] | None] = {}

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
            for template in (subject, body):
                if template is not None:  # a plain dict: Jinja copies the globals into every render's context,
                    template.globals = dict(template.globals)  # and a ChainMap is slow to copy
            # text and lookups only: rendered directly (the same output, without a Jinja context per message)
            subject = subject if subject_src is None else DirectTemplate.from_source(self._text_env, subject_src) \
                or subject
            body = DirectTemplate.from_source(env, body_src) or body
            self._roots[key] = self._loaded_roots(env, (subject_src, body_src))
            self._cache[key] = (path, subject, body)
        return self._cache[key]

    def roots(self, name: str, channel: str) -> frozenset[str] | None:
        """The context names (:data:`ROOTS`, :data:`HELPERS`) the template reads, or None when that cannot be known from its
        text (it includes, imports or extends another template). A caller may leave the other names out of
        the context: a name the template never loads cannot change what it renders. Raises
        :class:`TemplateError` as :meth:`render` does for a missing or broken template."""
        self._compiled(name, channel)
        return self._roots[(name, channel)]

    @staticmethod
    def _loaded_roots(env: LimitedSandbox, sources: Iterable[str | None]) -> frozenset[str] | None:
        names: set[str] = set()
        for source in sources:
            if source is None:
                continue
            tree = env.parse(source)
            if any(True for _ in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends))):
                return None
            names.update(n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"
                         and (n.name in ROOTS or n.name in HELPERS))
        return frozenset(names)

    def render(self, name: str, channel: str, context: dict[str, Any]) -> Rendered:
        """Render for one person within :class:`RenderLimits`.

        Raises :class:`TemplateError` when the template is missing or does not parse, and
        :class:`TemplateRuntimeError` when it fails for this person: any exception the template raises
        (``1/0``, ``person.name + 1``, a macro calling itself) or a render limit.
        """
        path, subject, body = self._compiled(name, channel)
        budget = _Budget(self.limits)
        token = _BUDGET.set(budget)
        try:
            return Rendered(
                subject=None if subject is None else " ".join(self._generate(subject, context, budget).split()),
                body=self._generate(body, context, budget).strip(),
            )
        except RenderLimitExceeded as exc:
            raise TemplateRuntimeError(f"{path}: cannot render: limit: {exc}",
                                       hint="see docs/activation.md#templates for the render limits") from None
        except RecursionError:
            raise TemplateRuntimeError(f"{path}: cannot render: a macro or loop calls itself too deeply",
                                       hint="see docs/activation.md#templates") from None
        except Exception as exc:  # noqa: BLE001 -- any error of a template (incl. the sandbox's SecurityError)
            raise TemplateRuntimeError(f"{path}: cannot render: {type(exc).__name__}: {exc}"[:1000],
                                       hint="see docs/activation.md#templates for the names a template can use"
                                       ) from None
        finally:
            _BUDGET.reset(token)

    @staticmethod
    def _generate(template: Any, context: dict[str, Any], budget: _Budget) -> str:
        parts, length = [], 0
        max_chars, deadline = budget.limits.max_chars, budget.deadline
        direct = template.__class__ is DirectTemplate  # a few lookups: its time is checked once, at the end
        for chunk in template.generate(context):
            length += len(chunk)
            if length > max_chars:
                budget.size(length)  # raises
            if not direct and time.monotonic() > deadline:
                budget.check_time()  # raises
            parts.append(chunk)
        if direct:
            budget.check_time()
        return "".join(parts)


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
                   channel: str | None = None, sms_link_length: int | None = None,
                   recommendations: set[str] | None = None) -> list[TemplateProblem]:
    """Fields a template uses that do not exist, and a body longer than the channel accepts.

    ``attributes`` / ``tags``: the names known in the project (None = unknown, not checked). The length
    check counts the template's literal text only (the floor of what any person's message will be).
    ``sms_link_length``: the channel sends SMS and a short link is this long: a warning says when the
    fixed text plus its ``track()`` links already needs more than one SMS segment.
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
    if recommendations is not None:  # the rules' `recommend NAME` blocks
        known_fields["recommendation"] = set(recommendations)
    for part_src, offset in ((subject_src, 0), (body_src, body_line - 1)):
        if part_src is None:
            continue
        try:
            tree = env.parse(part_src)
            env.compile(tree)  # some mistakes only the compiler sees (`{% for loop in ... %}`): rendering would fail
        except jinja2.TemplateSyntaxError as exc:
            problems.append(TemplateProblem(name, str(path), (exc.lineno or 1) + offset,
                                            f"syntax error: {exc.message}"))
            continue
        local_names = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
        local_names |= {n.name for n in tree.find_all(nodes.Macro)}
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
            if root not in ROOTS and root not in HELPERS and root not in env.globals:  # range, dict, namespace, cycler, joiner, lipsum
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
    if sms_link_length is not None and not any(p.message.startswith("syntax error") for p in problems):
        tree = env.parse(body_src)
        literal = "".join(n.data for n in tree.find_all(nodes.TemplateData)).strip()
        links = sum(1 for n in tree.find_all(nodes.Call) if isinstance(n.node, nodes.Name) and n.node.name == "track")
        length = len(literal) + links * sms_link_length
        count = sms_segments(literal + "x" * (links * sms_link_length))
        if count > 1:
            single, part = (160, 153) if _gsm_text(literal) else (70, 67)
            problems.append(TemplateProblem(
                name, str(path), None,
                f"an SMS of at least {length} characters ({len(literal)} of fixed text"
                + (f", {links} short link(s) of {sms_link_length}" if links else "")
                + f"): {count} segments, each billed as one SMS ({single} characters fit one SMS, {part} each "
                "segment of a longer one)",
                "shorten the text to fit one segment, or accept the cost", severity="warning"))
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


_GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENDED = set("^{}\\[~]|€")


def _gsm_text(text: str) -> bool:
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text)


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` takes: GSM-7 text 160 characters in one SMS and 153 a segment of a
    longer one (an extended character such as ``€`` counts twice); any other text (Chinese) is UCS-2, 70
    in one SMS and 67 a segment."""
    if _gsm_text(text):
        length = len(text) + sum(1 for ch in text if ch in _GSM_EXTENDED)
        single, part = 160, 153
    else:
        length, single, part = len(text), 70, 67
    if length <= single:
        return 1
    return -(-length // part)


def tracking_calls(text: str) -> set[str]:
    """The tracking helpers (``track``, ``open_pixel``) a template calls (empty if it does not parse)."""
    _subject, body_src, _line = split_subject(text)
    try:
        tree = make_environment(autoescape=False).parse(body_src)
    except jinja2.TemplateSyntaxError:
        return set()
    return {n.node.name for n in tree.find_all(nodes.Call) if isinstance(n.node, nodes.Name)
            and n.node.name in HELPERS}
