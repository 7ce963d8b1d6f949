"""What a stored (normalised) Segment message becomes in Motorcade: person records and events.

- ``identify``: a person record with the call's identifiers (userId, anonymousId, traits mapped to identifier
  types) and profile attributes (traits mapped by ``identify_attributes``). userId and anonymousId on one call
  link the anonymous visitor's earlier events to the person (One-ID).
- ``alias``: a person record linking ``previousId`` to ``userId``.
- ``track``: an event named by ``event``; ``page``/``screen``: ``page_viewed``/``screen_viewed`` with ``name``
  (and ``category``) among the properties; ``group``: ``group`` with ``group_id`` and the group's traits.
  Events keep the message's client context under ``context``; the dedup key is ``messageId``.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from motorcade.sources.base import EventRecord, PersonRecord, RawIdentifier, SourceRecord

from .spec import event_context


@attrs.frozen
class MessageMapping:
    """How the ids and traits of this source's messages map to Motorcade's identifier types and attributes."""

    user_id: str = "user_id"  # identifier type of userId
    anonymous_id: str = "anonymous_id"  # identifier type of anonymousId (and of an alias's previousId)
    traits: Mapping[str, str] = attrs.field(factory=lambda: {"phone": "phone", "email": "email"})  # trait -> type
    identify_attributes: Mapping[str, str] = attrs.field(factory=dict)  # trait -> profile attribute

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "MessageMapping":
        default = cls()
        return cls(user_id=settings.get("user_id", default.user_id),
                   anonymous_id=settings.get("anonymous_id", default.anonymous_id),
                   traits=dict(settings.get("traits", default.traits)),
                   identify_attributes=dict(settings.get("identify_attributes", {})))


def _identifiers(message: Mapping[str, Any], mapping: MessageMapping, traits: Mapping[str, Any]) -> tuple[RawIdentifier, ...]:
    found: list[tuple[str, str]] = []
    if message.get("userId"):
        found.append((mapping.user_id, message["userId"]))
    if message.get("anonymousId"):
        found.append((mapping.anonymous_id, message["anonymousId"]))
    for trait, type_ in mapping.traits.items():
        value = traits.get(trait)
        if value not in (None, "") and not isinstance(value, (dict, list)):
            found.append((type_, str(value)))
    return tuple(RawIdentifier(t, v) for t, v in dict.fromkeys(found))


def records_of(message: Mapping[str, Any], *, mapping: MessageMapping, position: str, raw: str) -> list[SourceRecord]:
    """The records of one normalised message (see :func:`motorcade_sources_segment_http.spec.normalise`)."""
    kind = message["type"]
    context = message.get("context") or {}
    traits = dict(context.get("traits") or {}) if isinstance(context.get("traits"), dict) else {}
    if kind == "identify":
        traits.update(message.get("traits") or {})
    ids = _identifiers(message, mapping, traits)
    if kind == "identify":
        attributes = {attr: traits[t] for t, attr in mapping.identify_attributes.items()
                      if traits.get(t) not in (None, "")}
        return [PersonRecord(source_key="", identifiers=ids, attributes=attributes, position=position, raw=raw)]
    if kind == "alias":
        linked = (RawIdentifier(mapping.user_id, message["userId"]),
                  RawIdentifier(mapping.anonymous_id, message["previousId"]))
        return [PersonRecord(source_key="", identifiers=linked, position=position, raw=raw)]
    properties = dict(message.get("properties") or {})
    if kind == "track":
        name = message["event"]
    elif kind in ("page", "screen"):
        name = "page_viewed" if kind == "page" else "screen_viewed"
        if message.get("name") is not None:
            properties["name"] = message["name"]
        if message.get("category") is not None:
            properties["category"] = message["category"]
    else:  # group
        name = "group"
        properties = {"group_id": message["groupId"], **(message.get("traits") or {})}
    kept = event_context(context)
    if kept:
        properties["context"] = kept
    return [EventRecord(name=name, ts=message["timestamp"], identifiers=ids, properties=properties,
                        dedup_key=message["messageId"], position=position, raw=raw)]
