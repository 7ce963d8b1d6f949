"""The project's catalogue: the names rules may refer to, so `motorcade check` can suggest fixes."""

from __future__ import annotations

from typing import Any


def tag_producers(project: Any, *, rule_set=None) -> dict[str, list[tuple[str, Any]]]:
    """Every tag the project can produce -> ``[(producer, TagDefinition)]``: the installed calculators'
    (``calculator `intent```), the sources' imported tags (``source `leads```) and the rule tags
    (``rule tag `vip```). More than one producer for a tag is a conflict `motorcade check` reports."""
    from .errors import MotorcadeError
    from .sources.mapping import source_tag_definitions
    from .tags.rules import rule_tag_definition

    out: dict[str, list[tuple[str, Any]]] = {}
    for name, entry in project.plugins.registry().tag_calculators.items():
        for definition in getattr(entry.obj, "produces", ()):
            out.setdefault(definition.name, []).append((f"calculator `{name}`", definition))
    for source, settings in project.config.sources.items():
        for definition in source_tag_definitions(source, settings):
            out.setdefault(definition.name, []).append((f"source `{source}`", definition))
    if rule_set is not None:
        for rule in rule_set.tags.values():
            try:
                definition = rule_tag_definition(rule)
            except MotorcadeError:
                definition = None  # values of mixed types: `check` reports the rule itself
            out.setdefault(rule.name, []).append((f"rule tag `{rule.name}`", definition))
    return out


def build_catalogue(project: Any):
    """Events seen in the store; tags of the calculators, the sources and the rule tags (an exact set: a
    tag nothing produces is unknown even in a project with no calculator plugin); profile attributes;
    channels."""
    from motorcade.dsl.check import Catalogue
    from motorcade.dsl.errors import DslError

    store = project.store
    registry = project.plugins.registry()
    from .activation.feedback import OUTCOMES

    events = set(store.event_names())
    events.update(OUTCOMES)  # feedback events activation writes back (sent, clicked, ...)
    events.update(
        name for entry in registry.tag_calculators.values() for name in getattr(entry.obj, "depends_on_events", ())
    )
    try:
        rule_set = project.rules()
    except DslError:
        rule_set = None  # `check` reports the syntax errors; the other files' tags are still known
    producers = tag_producers(project, rule_set=rule_set)
    tags: dict[str, str | None] = {}
    for name, produced in producers.items():
        types = {definition.type for _, definition in produced if definition is not None}
        tags[name] = types.pop() if len(types) == 1 else None
    for row in store.tag_definitions():  # values stored by a calculator since uninstalled stay readable
        tags.setdefault(row["name"], row["type"])
    calculator_tags = {name for name, produced in producers.items()
                       if any(who.startswith("calculator") for who, _ in produced)}
    attributes = store.attribute_names()
    catalogue = Catalogue.from_names(
        events=events, attributes=attributes,
        # a channel whose plugin failed to load is reported as such by the activation check, not as unknown
        channels=set(registry.channels) | {failure.name for failure in registry.load_errors},
        calculator_tags=calculator_tags,
    )
    import attrs

    return attrs.evolve(catalogue, tags=tags, config_file=str(project.config.path.name), tag_producers={
        name: tuple(who for who, _ in produced if not who.startswith("rule tag"))
        for name, produced in producers.items()}, config_errors=tuple(value_type_conflicts(project)),
        group_tags=frozenset(project.config.raw.get("access", {}).get("group_tags", GROUP_TAGS)),
        store_tags=frozenset(name for name, produced in producers.items()
                             if any(getattr(d, "per_store", False) for _, d in produced if d is not None)),
        configured_channels=set(project.config.channels))


GROUP_TAGS = ("group_value_score", "value_level")  # the [access] group_tags default (config_schema.ACCESS)


def declared_value_types(project: Any):
    """The value types the project's configuration declares (:class:`motorcade.dsl.data.ValueTypes`): typed
    attribute and event-property columns of its sources, and the types of the tags it produces. The store's
    ``value_types()`` holds what was recorded when sources were read; this is what they will record."""
    from motorcade.dsl.data import ValueTypes
    from motorcade.dsl.errors import DslError

    from .sources.mapping import attribute_types

    attributes: dict[str, str] = {}
    properties: dict[str, str] = {}
    for settings in project.config.sources.values():
        attributes.update(attribute_types(settings, "person"))
        properties.update(attribute_types(settings, "event"))
    try:
        rule_set = project.rules()
    except DslError:
        rule_set = None
    tags = {}
    store_tags = set()  # tags kept per store: a store's rule reads the value at its store
    for name, produced in tag_producers(project, rule_set=rule_set).items():
        types = {definition.type for _, definition in produced if definition is not None}
        if len(types) == 1:
            tags[name] = types.pop()
        if any(getattr(definition, "per_store", False) for _, definition in produced if definition is not None):
            store_tags.add(name)
    return ValueTypes(attributes=attributes, tags=tags, properties=properties, store_tags=store_tags)


def value_type_conflicts(project: Any) -> list[tuple[str, str]]:
    """An attribute (or event property) two sources map with different types: rules would compare it as
    whichever source was read last. ``(message, hint)`` for `motorcade check`."""
    from .sources.mapping import attribute_types

    problems = []
    for kind, what in (("person", "profile attribute"), ("event", "event property")):
        declared: dict[str, dict[str, str]] = {}
        for source, settings in project.config.sources.items():
            for name, value_type in attribute_types(settings, kind).items():
                declared.setdefault(name, {})[source] = value_type
        for name, by_source in sorted(declared.items()):
            if len(set(by_source.values())) > 1:
                listed = " and ".join(f"{t} in source `{s}`" for s, t in sorted(by_source.items()))
                problems.append((f"{what} `{name}` is mapped with different types: {listed}",
                                 "give the column the same type in every source that maps it"))
    return problems
