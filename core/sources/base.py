"""The contract between a data-source connector plugin and the core.

A connector reads one external system (a CSV export, a JSON Lines event log, a SQL database) and
yields *records* in batches; the core cleans them, resolves identities, writes them and quarantines
what cannot be used. A connector never writes to the store itself.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, ClassVar, Iterator, Union

import attrs


@attrs.frozen
class RawIdentifier:
    """An identifier as the source has it (cleaning and validation happen in the core)."""

    type: str  # identifier type (see motorcade.model.IDENTIFIER_TYPES)
    value: str  # raw value as read


@attrs.frozen
class PersonRecord:
    """A person as one source knows them: a few identifiers and some attributes."""

    source_key: str  # the record's key within the source (e.g. CRM customer number)
    identifiers: tuple[RawIdentifier, ...]  # identifiers found on the row
    attributes: dict[str, Any] = attrs.field(factory=dict)  # profile attributes (name, gender, city, ...)
    position: str = ""  # where in the source: "line 17", "row id 4411"
    raw: str = ""  # the raw row, for quarantine
    # (kind, target id): advisor/store relations, e.g. ("sales_advisor", "A0012"), ("selling_store", "SH001")
    relations: tuple[tuple[str, str], ...] = ()
    # (channel, granted, raw time or None): consent columns on the row ("*" = every channel)
    consents: tuple[tuple[str, bool, Any], ...] = ()


@attrs.frozen
class StoreRecord:
    """A store row."""

    id: str  # store code
    name: str  # display name
    group: str  # dealer group / region
    city: str | None = None  # city
    brand: str | None = None  # franchise brand
    position: str = ""  # where in the source
    raw: str = ""  # raw row


@attrs.frozen
class AdvisorRecord:
    """An advisor row."""

    id: str  # advisor code
    name: str  # display name
    store_id: str  # store the advisor works at
    role: str = "sales"  # sales or service
    phone: str | None = None  # work phone, raw
    position: str = ""  # where in the source
    raw: str = ""  # raw row


@attrs.frozen
class CarRecord:
    """A car row, optionally with the owner (by identifiers) and the serving advisor."""

    vin: str  # raw VIN
    brand: str  # brand
    model: str  # model
    model_year: int | None = None  # model year
    purchase_date: str | None = None  # raw date text
    store_id: str | None = None  # selling store
    owner: tuple[RawIdentifier, ...] = ()  # identifiers of the owner, if the row names one
    owned_from: str | None = None  # raw date text: start of this ownership
    owned_to: str | None = None  # raw date text: end of this ownership (sold)
    advisor_id: str | None = None  # serving advisor
    position: str = ""  # where in the source
    raw: str = ""  # raw row
    owner_key: str | None = None  # source_key of a PersonRecord of this source that owns the car


@attrs.frozen
class EventRecord:
    """A behaviour event; the person is named by identifiers and resolved by One-ID."""

    name: str  # event name
    ts: str | dt.datetime  # raw time text or a datetime (naive = the source's declared time zone)
    identifiers: tuple[RawIdentifier, ...]  # who did it
    properties: dict[str, Any] = attrs.field(factory=dict)  # event properties
    dedup_key: str | None = None  # unique within the source; None = derived from the content
    position: str = ""  # where in the source
    raw: str = ""  # raw row


@attrs.frozen
class TransferRecord:
    """A car changing hands: closes the seller's ownership of the VIN and opens the buyer's."""

    vin: str  # raw VIN
    seller: tuple[RawIdentifier, ...]  # identifiers of the owner selling the car
    buyer: tuple[RawIdentifier, ...]  # identifiers of the new owner
    date: str | None = None  # raw date text of the sale; None = unknown (the day it is ingested)
    position: str = ""  # where in the source
    raw: str = ""  # raw row


@attrs.frozen
class RejectedRow:
    """A row the connector itself could not read (bad CSV quoting, invalid JSON): goes to quarantine."""

    position: str  # where in the source
    raw: str  # the raw text
    reason: str  # why it was rejected, in words an operator understands


SourceRecord = Union[PersonRecord, StoreRecord, AdvisorRecord, CarRecord, EventRecord, TransferRecord, RejectedRow]


class Source:
    """Base class of a connector type. Subclasses set ``type_name`` and implement :meth:`read`.

    One instance is made per configured source: ``[sources.crm]`` with ``type = "csv"`` gives
    ``CsvSource(name="crm", settings={...}, project_dir=...)``.
    """

    type_name: ClassVar[str] = ""  # the `type = "..."` value in motorcade.toml
    description: ClassVar[str] = ""  # one line for `motorcade plugins`
    yields: ClassVar[tuple[str, ...]] = ()  # record kinds it can yield: "people", "events", "cars", ...
    # The keys of `[sources.NAME]` this type reads beyond the ones every source takes
    # (motorcade.config_schema.SOURCE_COMMON); None: not declared, the table is not checked.
    settings_schema: ClassVar[tuple | None] = None

    def __init__(self, name: str, settings: dict[str, Any], project_dir: Path):
        self.name = name
        self.settings = settings
        self.project_dir = project_dir

    def read(self, cursor: str | None = None) -> Iterator[list[SourceRecord]]:
        """Yield batches of records. ``cursor`` is the value :meth:`next_cursor` returned last run."""
        raise NotImplementedError

    # Optional fast path for event-heavy connectors: ``read_columns(cursor)`` yielding
    # :class:`motorcade.sources.batch.EventBatch` objects (events as plain tuples). When a source defines
    # it, the ingest core uses it instead of :meth:`read`, with the same cleaning, dedup keys and
    # quarantine reasons; see motorcade.sources.batch.

    def next_cursor(self) -> str | None:
        """After :meth:`read` is exhausted: the cursor to resume from next run (None = re-read all)."""
        return None

    def reparse(self, position: str, raw: str) -> list[SourceRecord]:
        """Records from one quarantined row's raw text (for ``motorcade quarantine retry``).

        Connectors that cannot re-read a single row leave this unimplemented; retry then tells the
        operator to re-ingest the source instead.
        """
        raise NotImplementedError

    def size_hint(self) -> int | None:
        """Roughly how many rows :meth:`read` will yield (for the progress bar), or None if unknown."""
        return None

    @property
    def timezone(self) -> str:
        """The time zone naive timestamps in this source are in (``timezone`` setting)."""
        return self.settings.get("timezone", "Asia/Shanghai")


def estimate_lines(path, *, sample_bytes: int = 1 << 20) -> int | None:
    """About how many lines the file at ``path`` holds: its size times the line density of its first
    ``sample_bytes`` (exact for files up to that size). None if the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            sample = handle.read(sample_bytes)
            size = handle.seek(0, 2)
    except OSError:
        return None
    if not sample:
        return 0
    lines = sample.count(b"\n") + (0 if sample.endswith(b"\n") else 1)
    if size <= len(sample):
        return lines
    return max(1, round(size * lines / len(sample)))
