"""The project's catalogue: the names rules may refer to, so `motorcade check` can suggest fixes."""

from __future__ import annotations

from typing import Any


def build_catalogue(project: Any):
    """Events seen in the store, tags defined by calculators and rule tags, profile attributes, channels."""
    from motorcade.dsl.check import Catalogue

    store = project.store
    registry = project.plugins.registry()
    from .activation.feedback import OUTCOMES

    events = set(store.event_names())
    events.update(OUTCOMES)  # feedback events activation writes back (sent, clicked, ...)
    events.update(
        name for entry in registry.tag_calculators.values() for name in getattr(entry.obj, "depends_on_events", ())
    )
    tags: dict[str, str] = {}
    for entry in registry.tag_calculators.values():
        for definition in getattr(entry.obj, "produces", ()):
            tags[definition.name] = definition.type
    calculator_tags = set(tags)
    for row in store.tag_definitions():
        tags.setdefault(row["name"], row["type"])
    attributes = {
        r[0] for r in store.query("SELECT DISTINCT key FROM people, json_each(people.attributes) LIMIT 10000")
    }
    return Catalogue.from_names(
        events=events, tags=tags, attributes=attributes,
        # a channel whose plugin failed to load is reported as such by the activation check, not as unknown
        channels=set(registry.channels) | {failure.name for failure in registry.load_errors},
        calculator_tags=calculator_tags,
    )
