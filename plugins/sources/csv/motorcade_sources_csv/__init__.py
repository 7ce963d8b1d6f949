"""Motorcade source ``csv``: a CSV export (CRM, DMS, lead centre, insurance, stores, advisors).

Each row becomes the records its ``[sources.NAME.person|car|event|store|advisor]`` mapping names
(see :mod:`motorcade.sources.mapping`). Rows keep their physical line number and their exact text,
so a bad row is quarantined as it was in the file and ``motorcade quarantine retry`` can re-read it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from motorcade.config_schema import ENCODING, ONE_CHARACTER, PATH, Setting, whole
import motorcade
from motorcade.errors import ConfigError
from motorcade.sources.base import RejectedRow, Source, SourceRecord
from motorcade.sources.base import estimate_lines
from motorcade.sources.mapping import RowMapping

__all__ = ["CsvSource"]


class _Lines:
    """Feeds csv.reader line by line and remembers the text of the current row (quoted newlines too)."""

    def __init__(self, handle):
        self._handle = handle
        self.captured: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._handle)
        self.captured.append(line)
        return line

    def take(self) -> str:
        text = "".join(self.captured)
        self.captured.clear()
        return text.rstrip("\r\n")


class CsvSource(Source):
    """Settings: ``path`` (relative to the project), ``encoding`` (utf-8-sig), ``delimiter`` (,),
    ``batch_size`` (5000), ``timezone``, and the record mapping tables."""

    type_name = "csv"
    description = "CSV file with a column mapping in motorcade.toml"
    settings_schema = (
        Setting("path", PATH, "the CSV file", required=True),
        Setting("encoding", ENCODING, "the file's text encoding (utf-8-sig also reads plain UTF-8)", "utf-8-sig"),
        Setting("delimiter", ONE_CHARACTER, "field separator", ","),
        Setting("batch_size", whole(1), "rows per transaction", 5000),
    )
    yields = ("people", "cars", "events", "stores", "advisors")

    def __init__(self, name, settings, project_dir):
        super().__init__(name, settings, project_dir)
        if "path" not in settings:
            raise ConfigError(f"[sources.{name}] needs a path", hint='path = "data/crm_customers.csv"')
        self.path = Path(project_dir) / settings["path"]
        self.encoding = settings.get("encoding", "utf-8-sig")
        self.delimiter = settings.get("delimiter", ",")
        self.batch_size = int(settings.get("batch_size", 5000))
        self.mapping = RowMapping(name, settings)

    def _open(self):
        try:
            return open(self.path, encoding=self.encoding, newline="")
        except FileNotFoundError:
            raise ConfigError(f"[sources.{self.name}] file {self.path} does not exist",
                              hint="check `path` (it is relative to the project directory)") from None

    def _header(self, reader, where: str) -> list[str]:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ConfigError(f"{where} is empty: expected a header row") from None
        self.mapping.check_columns(header, where)
        return header

    def read(self, cursor: str | None = None) -> Iterator[list[SourceRecord]]:
        with self._open() as handle:
            lines = _Lines(handle)
            reader = csv.reader(lines, delimiter=self.delimiter)
            header = self._header(reader, str(self.path))
            lines.take()
            width = len(header)
            batch: list[SourceRecord] = []
            line_no = 1
            while True:
                start = line_no + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raw = lines.take()
                    line_no += raw.count("\n") + 1
                    batch.append(RejectedRow(position=f"line {start}", raw=raw, reason=f"unreadable CSV: {exc}"))
                    continue
                raw = lines.take()
                line_no = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                batch.extend(self._row_records(header, width, row, f"line {start}", raw))
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def _row_records(self, header, width, row, position, raw) -> list[SourceRecord]:
        if len(row) != width:
            return [RejectedRow(position=position, raw=raw,
                                reason=f"expected {width} fields, found {len(row)}")]
        return self.mapping.records(dict(zip(header, row)), position, raw)

    def reparse(self, position: str, raw: str) -> list[SourceRecord]:
        with self._open() as handle:
            header = self._header(csv.reader(handle, delimiter=self.delimiter), str(self.path))
        try:
            rows = list(csv.reader(io.StringIO(raw), delimiter=self.delimiter))
        except csv.Error as exc:
            return [RejectedRow(position=position, raw=raw, reason=f"unreadable CSV: {exc}")]
        if len(rows) != 1:
            return [RejectedRow(position=position, raw=raw, reason=f"expected one CSV row, found {len(rows)}")]
        return self._row_records(header, len(header), rows[0], position, raw)

    def size_hint(self) -> int | None:
        lines = estimate_lines(self.path)
        return None if lines is None else max(lines - 1, 0)  # the header is not a row


@motorcade.hookimpl
def register_sources(register):
    register(CsvSource)
