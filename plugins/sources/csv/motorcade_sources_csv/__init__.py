"""Motorcade source ``csv``: a CSV export (CRM, DMS, lead centre, insurance, stores, advisors).

Each row becomes the records its ``[sources.NAME.person|car|event|store|advisor]`` mapping names
(see :mod:`motorcade.sources.mapping`). Rows keep their physical line number and their exact text,
so a bad row is quarantined as it was in the file and ``motorcade quarantine retry`` can re-read it.

A bad row never costs its neighbours: a row with bytes that are not in the file's encoding is
quarantined (the bytes shown as ``\\xff``), and a row that runs over several lines and then has the
wrong number of fields (a quote opened and never closed swallows the lines after it) is
quarantined as its first line alone, the lines after it read again as rows of their own.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
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
    """Feeds csv.reader line by line and remembers the lines of the current row (quoted newlines too).

    Lines handed back by :meth:`give_back` are fed again before the rest of the file.
    """

    def __init__(self, handle):
        self._handle = handle
        self._again: list[str] = []  # lines to feed again, the next one last
        self.captured: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else next(self._handle)
        self.captured.append(line)
        return line

    def take(self) -> tuple[str, int]:
        """The current row's text and its number of physical lines."""
        text = "".join(self.captured)
        count = len(self.captured)
        self.captured.clear()
        return text.rstrip("\r\n"), count

    def at_end(self) -> bool:
        """Whether every line has been fed (looks one line ahead)."""
        if self._again:
            return False
        line = next(self._handle, None)
        if line is None:
            return True
        self._again.append(line)
        return False

    def give_back(self) -> str:
        """The current row's first line; its other lines will be read again."""
        first, rest = self.captured[0], self.captured[1:]
        self._again.extend(reversed(rest))
        self.captured.clear()
        return first.rstrip("\r\n")


# how bytes that did not decode come out of the "surrogateescape" error handler
_UNDECODED = re.compile("[\udc80-\udcff]")


# what _shown makes of a byte that did not decode (a byte of 0x80 or more: ASCII always decodes)
_SHOWN_BYTE = re.compile(r"\\x[89a-f][0-9a-f]")


def _shown(text: str) -> str:
    """Text that may hold undecoded bytes, with those bytes shown as ``\\xff`` (storable as UTF-8)."""
    if text.isascii() or _UNDECODED.search(text) is None:
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
            # undecodable bytes become lone surrogates: the row holding them is quarantined, the others read
            return open(self.path, encoding=self.encoding, errors="surrogateescape", newline="")
        except FileNotFoundError:
            raise ConfigError(f"[sources.{self.name}] file {self.path} does not exist",
                              hint="check `path` (it is relative to the project directory)") from None

    def _header(self, reader, where: str) -> list[str]:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ConfigError(f"{where} is empty: expected a header row") from None
        if header and header[0].startswith("\ufeff"):  # a byte order mark read with encoding = "utf-8"
            header[0] = header[0][1:].strip()
        self.mapping.check_columns(header, where)
        return header

    def read(self, cursor: str | None = None) -> Iterator[list[SourceRecord]]:
        with self._open() as handle:
            lines = _Lines(handle)
            reader = csv.reader(lines, delimiter=self.delimiter)
            header = self._header(reader, str(self.path))
            line_no = lines.take()[1]  # physical lines read so far
            width = len(header)
            batch: list[SourceRecord] = []
            while True:
                start = line_no + 1
                try:
                    row = next(reader)
                    problem = None
                except StopIteration:
                    break
                except csv.Error as exc:
                    row, problem = None, f"unreadable CSV: {exc}"
                if row is not None and len(row) != width and not _blank(row):
                    problem = f"expected {width} fields, found {len(row)}"
                if problem is not None and len(lines.captured) > 1 and self._quote_left_open(lines, row is None):
                    # a quote opened on the row's first line was never closed and swallowed the lines after
                    # it: they are read again as rows of their own
                    line_no += 1
                    over = len(lines.captured)
                    batch.append(RejectedRow(
                        position=f"line {start}", raw=_shown(lines.give_back()),
                        reason=f"{problem} in a row running over {over} lines: a quote opened on this line "
                               "is not closed? (this line is quarantined alone, the next ones read again)"))
                    continue
                raw, count = lines.take()
                line_no += count
                if problem is not None:
                    batch.append(RejectedRow(position=f"line {start}", raw=_shown(raw), reason=problem))
                elif _blank(row):
                    continue
                else:
                    batch.extend(self._row_records(header, width, row, f"line {start}", raw))
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def _encoding_name(self) -> str:
        name = codecs.lookup(self.encoding).name
        return "UTF-8" if name.startswith("utf-8") else name

    def _quote_left_open(self, lines: _Lines, failed: bool) -> bool:
        """Whether a row over several lines that cannot be used was cut short by a quote never closed
        (rather than being a quoted line break in a row with a wrong field count, which is quarantined
        whole): the reader failed (a field over the size limit), the row ran to the end of the file,
        or its quoting is broken (text after a closing quote: the "closing" quote opened a later field)."""
        if failed or lines.at_end():
            return True
        try:
            for _ in csv.reader(io.StringIO("".join(lines.captured)), delimiter=self.delimiter, strict=True):
                pass
        except csv.Error:
            return True
        return False

    def _row_records(self, header, width, row, position, raw) -> list[SourceRecord]:
        if len(row) != width:
            return [RejectedRow(position=position, raw=_shown(raw),
                                reason=f"expected {width} fields, found {len(row)}")]
        if not raw.isascii():
            bad = _UNDECODED.search(raw)
            if bad is not None:
                byte = ord(bad.group()) - 0xDC00
                return [RejectedRow(position=position, raw=_shown(raw),
                                    reason=f"not valid {self._encoding_name()}: byte 0x{byte:02x} at character {bad.start() + 1} of "
                                           f"the row (is the file in another encoding? see encoding in [sources.{self.name}])")]
        return self.mapping.records(dict(zip(header, row)), position, raw)

    def reparse(self, position: str, raw: str) -> list[SourceRecord]:
        if _SHOWN_BYTE.search(raw):  # the row held bytes that did not decode: only the file has them
            return [RejectedRow(position=position, raw=raw, reason=(
                f"not valid {self._encoding_name()}: the row held bytes shown here as \\xNN; fix the file and "
                f"run `motorcade ingest {self.name}` again"))]
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


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


@motorcade.hookimpl
def register_sources(register):
    register(CsvSource)
