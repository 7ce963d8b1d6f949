"""Running tag calculators: dependency order, settings, incremental runs, provenance and health.

The engine is what ``motorcade tags compute`` calls:

1. :func:`plan` orders the calculators so every tag is computed after the tags it reads (a cycle, a tag
   produced twice, or a dependency on a tag nobody produces is an error that names it).
2. :func:`compute_tags` runs them in that order. Each gets a :class:`~motorcade.tags.base.TagContext` with
   ``as_of``, its settings (the ``[tags.NAME]`` table of ``motorcade.toml`` merged over the calculator's
   ``default_settings``) and, for incremental runs, the people whose inputs changed.
3. Values are checked against the tag definitions and written through ``store.write_tag_values`` with
   ``computed_at`` and the calculator's version; a ``tag_runs`` row records the health figures (coverage,
   distribution) and warns when they moved sharply since the calculator's previous run.

Incremental runs ("people whose inputs changed since the last run"): every run records the events'
high-water mark (the largest ``events.id`` when it started) and the latest ``people.updated_at`` with the
ids updated in that second. An incremental run of a calculator recomputes the people who have an event of
one of its input events (``depends_on_events``) with an id above its last run's mark, or whose person
record was updated after that run's people mark (attributes, merges), or whose upstream tags were
rewritten earlier in the same invocation. A calculator without a previous run, one that sets
``supports_incremental = False`` or one downstream of a full run runs in full. Time alone also changes
tags (recency, decay): run in full on a schedule (e.g. nightly) and incrementally in between.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

import attrs

from ..errors import ConfigError, MotorcadeError
from ..store.codec import utc_now
from .base import TagCalculator, TagContext, TagDefinition

# Engine settings: scalar keys of the [tags] table (tables under [tags] belong to calculators).
ENGINE_DEFAULTS: dict[str, Any] = {
    "coverage_drift": 0.10,  # warn when a tag's coverage moves by more than 10 percentage points
    "distribution_drift": 0.20,  # warn when the total-variation distance of its distribution exceeds 0.2
    "mean_drift": 0.5,  # numeric tags without a range: warn when the mean moves > 0.5 previous std devs
}


class TagError(MotorcadeError):
    """A calculator, its dependencies or its output cannot be used."""


# -- planning -------------------------------------------------------------------------------------


def plan(calculators: Mapping[str, TagCalculator], names: Iterable[str] | None = None, *,
         imported: Mapping[str, str] | None = None) -> list[TagCalculator]:
    """The calculators to run, dependencies first.

    ``names`` selects calculators (or tags: a tag name selects the calculator producing it); their
    upstream calculators are included so the selection is computed on fresh inputs. None = all.
    ``imported``: tags a source imports (tag -> source): calculators may read them; none may produce one.
    """
    imported = dict(imported or {})
    producer: dict[str, str] = {}
    for calc in calculators.values():
        for definition in calc.produces:
            if definition.name in imported:
                raise TagError(
                    f"tag {definition.name!r} is produced by both calculator {calc.name!r} and source "
                    f"{imported[definition.name]!r} ([sources.{imported[definition.name]}.tags])",
                    hint="a tag has one producer: rename the imported tag or the rule tag, or block the plugin "
                         "with MOTORCADE_BLOCK_PLUGINS")
            if definition.name in producer and producer[definition.name] != calc.name:
                raise TagError(
                    f"tag {definition.name!r} is produced by two calculators: {producer[definition.name]!r} "
                    f"and {calc.name!r}",
                    hint="rename one of the tags, or block one plugin with MOTORCADE_BLOCK_PLUGINS",
                )
            producer[definition.name] = calc.name
    upstream: dict[str, list[str]] = {}
    for calc in calculators.values():
        deps = []
        for tag in calc.depends_on_tags:
            if tag in imported:
                continue  # loaded by its source: nothing to run first
            if tag not in producer:
                raise TagError(
                    f"calculator {calc.name!r} depends on tag {tag!r}, which no installed calculator produces",
                    hint=f"install the plugin that computes {tag!r} (see `motorcade tags list`) or remove the "
                         "dependency",
                )
            if producer[tag] != calc.name and producer[tag] not in deps:
                deps.append(producer[tag])
        upstream[calc.name] = sorted(deps)

    if names is None:
        wanted = set(calculators)
    else:
        wanted = set()
        for name in names:
            if name in calculators:
                wanted.add(name)
            elif name in producer:
                wanted.add(producer[name])
            elif name in imported:
                raise TagError(f"tag {name!r} is imported by source {imported[name]!r}, not computed",
                               hint=f"load it with `motorcade ingest {imported[name]}`")
            else:
                from motorcade.dsl.errors import did_you_mean

                raise TagError(f"no tag calculator or tag named {name!r}",
                               hint=did_you_mean(name, [*calculators, *producer]) or
                               f"calculators: {', '.join(sorted(calculators)) or 'none installed'}")
        stack = list(wanted)
        while stack:
            for dep in upstream[stack.pop()]:
                if dep not in wanted:
                    wanted.add(dep)
                    stack.append(dep)

    # Depth-first topological sort; names sorted so the order is deterministic.
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"
    path: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise TagError(f"tag calculators depend on each other in a cycle: {' -> '.join(cycle)}",
                           hint="break the cycle: a calculator cannot read, directly or indirectly, its own tags")
        state[name] = "visiting"
        path.append(name)
        for dep in upstream[name]:
            visit(dep)
        path.pop()
        state[name] = "done"
        order.append(name)

    for name in sorted(calculators):  # visit all so a cycle anywhere is reported
        visit(name)
    return [calculators[name] for name in order if name in wanted]


def merge_settings(calc: TagCalculator, configured: Mapping[str, Any] | None) -> dict[str, Any]:
    """``[tags.NAME]`` over the calculator's defaults (tables merge one level deep). Unknown keys are errors."""
    settings = {k: (dict(v) if isinstance(v, dict) else v) for k, v in calc.default_settings.items()}
    for key, value in (configured or {}).items():
        if key not in settings:
            raise ConfigError(
                f"[tags.{calc.name}] has an unknown setting {key!r}",
                hint=f"settings of {calc.name!r}: {', '.join(sorted(settings)) or 'none'} (see docs/tags.md)",
            )
        if isinstance(settings[key], dict) and isinstance(value, dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return settings


def engine_settings(tags_table: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(ENGINE_DEFAULTS)
    for key, value in (tags_table or {}).items():
        if isinstance(value, dict):
            continue  # a calculator's table
        if key not in ENGINE_DEFAULTS:
            raise ConfigError(f"[tags] has an unknown setting {key!r}",
                              hint=f"engine settings: {', '.join(ENGINE_DEFAULTS)}; calculator settings go "
                                   "in [tags.NAME] tables")
        out[key] = value
    return out


# -- value checks ---------------------------------------------------------------------------------


def _check_value(calc: TagCalculator, definition: TagDefinition, person_id: int, value: Any) -> Any:
    """The value as stored, or a TagError naming calculator, tag, person and value."""

    def bad(why: str) -> TagError:
        return TagError(f"calculator {calc.name!r} produced {value!r} for tag {definition.name!r} "
                        f"(person {person_id}): {why}",
                        hint="fix the calculator or its settings in [tags." + calc.name + "]")

    kind = definition.type
    if kind == "boolean":
        if not isinstance(value, bool):
            raise bad("expected a boolean")
        value = int(value)
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("expected a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad("expected a finite number")
    elif kind == "string":
        if not isinstance(value, str):
            raise bad("expected a string")
    elif kind == "date":
        if isinstance(value, dt.date):
            value = value.isoformat()
        try:
            dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad("expected a date (YYYY-MM-DD)") from None
    if definition.allowed_values is not None:
        allowed = [int(v) if isinstance(v, bool) else v for v in definition.allowed_values]
        if value not in allowed:
            raise bad(f"not one of {', '.join(map(repr, definition.allowed_values))}")
    if definition.value_range is not None:
        low, high = definition.value_range
        if not (low <= value <= high):
            raise bad(f"outside the range [{low}, {high}]")
    return value


def _value_check(calc: TagCalculator, definition: TagDefinition) -> Callable[[int, Any], Any]:
    """``check(person_id, value)``: what :func:`_check_value` returns or raises, with the common cases (an
    ``int``, ``float``, ``str`` or ``bool`` of the declared type that passes the definition's allowed values
    and range) answered without its general dispatch. Built once per tag, called once per value."""
    allowed = None if definition.allowed_values is None else \
        [int(v) if isinstance(v, bool) else v for v in definition.allowed_values]
    low, high = definition.value_range if definition.value_range is not None else (None, None)
    ranged = definition.value_range is not None
    kind = definition.type
    isfinite = math.isfinite

    def slow(person_id: int, value: Any) -> Any:
        return _check_value(calc, definition, person_id, value)

    if kind == "number":
        def check(person_id: int, value: Any) -> Any:
            t = type(value)
            if (t is int or (t is float and isfinite(value))) and (allowed is None or value in allowed) \
                    and (not ranged or low <= value <= high):
                return value
            return slow(person_id, value)
    elif kind == "string":
        def check(person_id: int, value: Any) -> Any:
            if type(value) is str and (allowed is None or value in allowed) and (not ranged or low <= value <= high):
                return value
            return slow(person_id, value)
    elif kind == "boolean":
        def check(person_id: int, value: Any) -> Any:
            if type(value) is bool:
                stored = int(value)
                if (allowed is None or stored in allowed) and (not ranged or low <= stored <= high):
                    return stored
            return slow(person_id, value)
    else:
        check = slow
    return check


def _checked(calc: TagCalculator, values: Iterable[tuple], person_ids: frozenset[int] | None,
             written: dict[str, set[int]] | None,
             per_store: list[tuple[int, str, Any, str]] | None = None) -> Iterator[tuple[int, str, Any]]:
    """The person-level values, checked; a per-store value ``(person_id, tag, value, store_id)`` of a tag
    defined ``per_store`` is checked alike and appended to ``per_store``."""
    definitions = {d.name: d for d in calc.produces}
    checks = {d.name: _value_check(calc, d) for d in calc.produces}
    for item in values:
        if len(item) != 3:
            person_id, tag, value, *store = item
            definition = definitions.get(tag)
            if definition is None or not definition.per_store or per_store is None or len(store) != 1:
                raise TagError(f"calculator {calc.name!r} produced a per-store value of tag {tag!r}, which it "
                               "does not declare per_store", hint="set per_store=True on its TagDefinition")
            if person_ids is not None and person_id not in person_ids:
                raise TagError(f"calculator {calc.name!r} produced a value for person {person_id} in an "
                               "incremental run that did not ask for that person",
                               hint="yield values only for context.person_ids (see TagContext.wants)")
            if value is not None and store[0] is not None:
                per_store.append((person_id, tag, checks[tag](person_id, value), str(store[0])))
            continue
        person_id, tag, value = item
        check = checks.get(tag)
        if check is None:
            raise TagError(f"calculator {calc.name!r} produced tag {tag!r}, which it does not declare",
                           hint=f"declared: {', '.join(definitions)}; add a TagDefinition to `produces`")
        if person_ids is not None and person_id not in person_ids:
            raise TagError(f"calculator {calc.name!r} produced a value for person {person_id} in an incremental "
                           "run that did not ask for that person",
                           hint="yield values only for context.person_ids (see TagContext.wants)")
        if value is None:
            continue
        if written is not None:
            written.setdefault(tag, set()).add(person_id)
        yield person_id, tag, check(person_id, value)


# -- health ---------------------------------------------------------------------------------------


def _is_numeric(definition: TagDefinition) -> bool:
    return definition.type == "number" and definition.allowed_values is None


def tag_health(store, definition: TagDefinition, people: int) -> dict[str, Any]:
    figures = store.tag_value_figures(definition.name, numeric=_is_numeric(definition))
    figures["coverage"] = figures["count"] / people if people else 0.0
    if _is_numeric(definition) and definition.value_range is not None and figures["count"]:
        figures["histogram"] = store.tag_histogram(definition.name, *definition.value_range)
    return figures


def _shares(counts: Mapping[str, int] | list[int]) -> dict[Any, float]:
    items = counts.items() if isinstance(counts, Mapping) else enumerate(counts)
    items = list(items)
    total = sum(n for _, n in items)
    return {k: n / total for k, n in items} if total else {}


def total_variation(a: Mapping[Any, float], b: Mapping[Any, float]) -> float:
    """Half the L1 distance between two share distributions: 0 = identical, 1 = disjoint."""
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def drift_warnings(tag: str, current: Mapping[str, Any], previous: Mapping[str, Any] | None,
                   settings: Mapping[str, Any]) -> list[str]:
    """Warnings when a tag's coverage or distribution moved sharply between two runs' figures."""
    if not previous:
        return []
    warnings = []
    before, after = previous.get("coverage", 0.0), current.get("coverage", 0.0)
    if abs(after - before) > settings["coverage_drift"]:
        warnings.append(f"{tag}: coverage {'fell' if after < before else 'rose'} from {before:.1%} to {after:.1%}")
    for key in ("counts", "histogram"):
        if key in current and key in previous:
            a, b = _shares(previous[key]), _shares(current[key])
            if a and b:
                distance = total_variation(a, b)
                if distance > settings["distribution_drift"]:
                    mover = max(set(a) | set(b), key=lambda k: abs(b.get(k, 0.0) - a.get(k, 0.0)))
                    label = f"bin {mover}" if key == "histogram" else repr(mover)
                    warnings.append(
                        f"{tag}: distribution shifted (total variation {distance:.2f}); {label} went from "
                        f"{a.get(mover, 0.0):.1%} to {b.get(mover, 0.0):.1%}")
            break
    else:
        if "mean" in current and "mean" in previous and "histogram" not in current:
            std = previous.get("std") or 0.0
            moved = abs(current["mean"] - previous["mean"])
            if (std and moved > settings["mean_drift"] * std) or (not std and moved > 1e-9):
                warnings.append(f"{tag}: mean moved from {previous['mean']:.4g} to {current['mean']:.4g} "
                                f"({moved / std:.1f} standard deviations)" if std else
                                f"{tag}: mean moved from {previous['mean']:.4g} to {current['mean']:.4g}")
    return warnings


# -- running --------------------------------------------------------------------------------------


@attrs.frozen
class TagRunResult:
    """What one calculator's run did."""

    calculator: str
    version: str
    mode: str  # "full", "incremental" or "full (most people changed)"
    people: int | None  # people recomputed (None = everyone)
    rows_written: int
    seconds: float
    health: dict[str, Any]
    warnings: tuple[str, ...]
    run_id: int


def _last_mark(store, calc: TagCalculator) -> tuple[int, dict[str, Any]] | None:
    runs = store.tag_runs(calc.name, limit=1)
    if not runs or "event_high_water" not in runs[0]["health"]:
        return None
    return runs[0]["health"]["event_high_water"], runs[0]["health"].get("people_mark")


# An incremental run that would recompute at least this many people (and half of everyone) runs in full.
FULL_RUN_PEOPLE = 100_000


def check_engines(calculators: Iterable[TagCalculator], store, *, plugins: Mapping[str, str] | None = None) -> None:
    """Raise :class:`TagError` naming every calculator whose ``supported_engines`` leaves out the store's engine
    (``store.dialect``), with the plugin that supplied it (``plugins``: calculator name -> plugin name)."""
    plugins = plugins or {}
    refused = [(c, engines) for c in calculators
               if (engines := getattr(c, "supported_engines", None)) is not None and store.dialect not in engines]
    if not refused:
        return
    lines = []
    for calc, engines in refused:
        origin = f"plugin {plugins[calc.name]!r}" if calc.name in plugins else f"module {type(calc).__module__}"
        lines.append(f"tag calculator {calc.name!r} ({origin}) runs on {', '.join(engines) or 'no engine'} only")
    raise TagError(f"this project's store is {store.dialect} ({store.location}); " + "; ".join(lines),
                   hint="compute these tags on a store of a supported engine, or ask the plugin's author for a "
                        f"{store.dialect} version (docs/plugins.md, \"Store engines\")")


def compute_tags(store, calculators: Mapping[str, TagCalculator], *, as_of: dt.datetime,
                 settings: Mapping[str, Any] | None = None, names: Iterable[str] | None = None,
                 incremental: bool = False,
                 progress: Callable[[TagCalculator], None] | None = None,
                 imported: Mapping[str, str] | None = None,
                 timezone: dt.tzinfo | None = None,
                 plugins: Mapping[str, str] | None = None, analytics=None) -> list[TagRunResult]:
    """Run the calculators (or ``names`` and what they depend on) in dependency order; see the module doc.

    ``settings`` is the ``[tags]`` table of ``motorcade.toml``. ``progress`` is called before each calculator.
    ``imported``: tags sources import (tag -> source), which calculators may read (see :func:`plan`).
    ``timezone`` is the project's (local days and dates are counted in it); default: ``as_of``'s zone.
    ``plugins``: calculator name -> the plugin that registered it (named in errors).
    Every calculator to run must support the store's engine (:func:`check_engines`), checked before any runs.
    ``analytics``: an analytics engine (``[project] analytics``). The analytical tables are mirrored into it
    first; calculators built on :class:`motorcade.tags.query.TagQuery` (the bundled ones, rule tags) run their
    queries there, and every calculator's values go to the operational store and to the engine's
    ``tag_values`` (:mod:`motorcade.analytics.tags`). Health figures are the operational store's.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be an aware datetime")
    store.require_events_deduplicated()  # counts and event-id marks would take a first load's duplicates
    settings = dict(settings or {})
    options = engine_settings(settings)
    ordered = plan(calculators, names, imported=imported)
    check_engines(ordered, store, plugins=plugins)
    configured = {c.name: merge_settings(c, settings.get(c.name)) for c in ordered}  # fail before any work
    producer = {d.name: c.name for c in calculators.values() for d in c.produces}
    if analytics is not None:
        from ..analytics.tags import tee_tag_values

        from ..analytics.tables import TABLE_NAMES

        # the engine's copy as the store is now (new events appended; a merge since copies them whole); the
        # tag values only when a calculator reads a tag this run does not write (each run's values reach the
        # engine as they are written, before any calculator downstream reads them)
        produced_here = {d.name for c in ordered for d in c.produces}
        read = {t for c in ordered for t in c.depends_on_tags}
        analytics.mirror(store, TABLE_NAMES if read - produced_here else
                         [t for t in TABLE_NAMES if t != "tag_values"])
    # person ids whose values of a calculator's tags were rewritten in this invocation (None = everyone)
    rewritten: dict[str, set[int] | None] = {}
    results = []
    for calc in ordered:
        if progress is not None:
            progress(calc)
        started = utc_now()
        clock = time.perf_counter()
        high_water = store.max_event_id()
        people_mark = store.people_update_mark()
        person_ids: frozenset[int] | None = None
        mode = "full"
        mark = _last_mark(store, calc) if incremental and calc.supports_incremental else None
        upstream = {producer[t] for t in calc.depends_on_tags if t in producer} - {calc.name}
        if mark is not None and all(rewritten.get(u, set()) is not None for u in upstream):
            changed = store.changed_people(after_event_id=mark[0], upto_event_id=high_water,
                                           event_names=calc.input_events(configured[calc.name]),
                                           people_mark=mark[1])
            for u in upstream:
                changed |= rewritten.get(u) or set()
            if len(changed) >= max(FULL_RUN_PEOPLE, store.people_count() // 2):
                # most people changed (or who changed cannot be told apart, see people_update_mark): one full
                # run gives the same values and costs less than replacing them person by person
                mode = "full (most people changed)"
            else:
                person_ids, mode = frozenset(changed), "incremental"
        context = TagContext(store=store, as_of=as_of, settings=configured[calc.name], person_ids=person_ids,
                             timezone=timezone, analytics=analytics)
        store.define_tags(calc.produces, calculator=calc.name, calculator_version=calc.version)
        written: dict[str, set[int]] = {}
        if person_ids is not None and not person_ids:
            rows = 0
        else:
            try:
                values = calc.compute(context)
            except MotorcadeError:
                raise
            except Exception as exc:
                raise TagError(f"calculator {calc.name!r} (version {calc.version}) failed: "
                               f"{type(exc).__name__}: {exc}",
                               hint="run with MOTORCADE_TRACE_PLUGINS=1 or see the traceback with python -m") from exc
            per_store: list[tuple[int, str, Any, str]] = []
            values = _checked(calc, values, person_ids, written if person_ids is not None else None, per_store)
            if analytics is not None:
                values = tee_tag_values(analytics, values, tags=[d.name for d in calc.produces],
                                        person_ids=person_ids)
            with store.transaction():  # the person values and the per-store values change together
                rows = store.write_tag_values(
                    values, tags=[d.name for d in calc.produces], calculator=calc.name, calculator_version=calc.version,
                    computed_at=started, person_ids=person_ids)
                store_tags = [d.name for d in calc.produces if d.per_store]
                if store_tags:  # (rows_written counts the person values, as before)
                    store.write_store_tag_values(
                        per_store, tags=store_tags, calculator=calc.name, calculator_version=calc.version,
                        computed_at=started, person_ids=person_ids)
        rewritten[calc.name] = None if person_ids is None else set(person_ids)
        people = store.people_count()
        previous = store.tag_runs(calc.name, limit=1)
        previous_tags = previous[0]["health"].get("tags", {}) if previous else {}
        tags_health = {d.name: tag_health(store, d, people) for d in calc.produces}
        warnings = [w for d in calc.produces
                    for w in drift_warnings(d.name, tags_health[d.name], previous_tags.get(d.name), options)]
        seconds = time.perf_counter() - clock
        health = {"mode": mode, "as_of": as_of.isoformat(), "people": people, "event_high_water": high_water,
                  "people_mark": people_mark,
                  "recomputed_people": None if person_ids is None else len(person_ids), "seconds": seconds,
                  "tags": tags_health, "warnings": warnings}
        run_id = store.record_tag_run(calculator=calc.name, calculator_version=calc.version, started_at=started,
                                      finished_at=utc_now(), rows_written=rows, health=health)
        results.append(TagRunResult(calculator=calc.name, version=calc.version, mode=mode,
                                    people=None if person_ids is None else len(person_ids), rows_written=rows,
                                    seconds=seconds, health=health, warnings=tuple(warnings), run_id=run_id))
    return results


def project_calculators(project) -> dict[str, TagCalculator]:
    """The installed plugins' calculators plus one per rule tag of the project's rules (``rule:NAME``)."""
    from .rules import rule_tag_calculators

    calculators = {name: entry.obj for name, entry in project.plugins.registry().tag_calculators.items()}
    calculators.update(rule_tag_calculators(project.rules(checked=True), project.timezone))
    return calculators


def compute_project_tags(project, names: Iterable[str] | None = None, *, incremental: bool = False,
                         as_of: dt.datetime | None = None,
                         progress: Callable[[TagCalculator], None] | None = None,
                         calculators: Mapping[str, TagCalculator] | None = None) -> list[TagRunResult]:
    """:func:`compute_tags` with the project's store, analytics engine (``[project] analytics``, if set),
    calculators (default :func:`project_calculators`: the installed plugins' and the rule tags) and ``[tags]``
    settings."""
    calculators = project_calculators(project) if calculators is None else calculators
    plugins = {name: entry.plugin for name, entry in project.plugins.registry().tag_calculators.items()}
    return compute_tags(project.store, calculators, as_of=as_of or project.now(), settings=project.config.tags,
                        names=names, incremental=incremental, progress=progress, imported=imported_tags(project),
                        timezone=project.timezone, plugins=plugins, analytics=project.analytics)


def imported_tags(project) -> dict[str, str]:
    """Tags the project's sources import (``[sources.X.tags]``): tag -> source."""
    from ..sources.mapping import source_tag_definitions

    return {d.name: source for source, settings in project.config.sources.items()
            for d in source_tag_definitions(source, settings)}


def health_report(store, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """One row per tag from each calculator's latest run: coverage, distribution, freshness, warnings."""
    now = now or utc_now()
    rows = []
    for run in store.latest_tag_runs():
        finished = dt.datetime.fromisoformat(run["finished_at"] or run["started_at"])
        age = (now - finished).total_seconds()
        health = run["health"]
        for tag, figures in health.get("tags", {}).items():
            rows.append({
                "tag": tag, "calculator": run["calculator"], "version": run["calculator_version"],
                "mode": health.get("mode"), "computed_at": finished.isoformat(), "age_seconds": age,
                "coverage": figures.get("coverage", 0.0), "count": figures.get("count", 0), "figures": figures,
                "warnings": [w for w in health.get("warnings", []) if w.startswith(tag + ":")],
            })
    return rows
