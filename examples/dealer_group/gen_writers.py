"""Streaming writers: CSV files row by row, and JSON Lines files sorted by time without holding them.

Events are produced person by person, but the files must be in time order. ``TimeSortedLines``
spools each line into a bucket file per week of its time stamp, then sorts one bucket at a time in
memory and concatenates them: memory stays at one week of events even at the benchmark size.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path


class CsvOut:
    """A CSV file with a header, written row by row; counts the rows it wrote."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.path = path
        self.columns = columns
        self._file = open(path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(columns)
        self.rows = 0

    def write(self, row: list | tuple) -> None:
        self._writer.writerow(row)
        self.rows += 1

    def write_raw(self, text: str) -> None:
        """A line exactly as given (for planted malformed rows); must end with a newline."""
        self._file.write(text)
        self.rows += 1

    def close(self) -> None:
        self._file.close()


class TimeSortedLines:
    """Collect ``(bucket, sort_key, line)`` triples in any order; :meth:`finish` writes the lines sorted by key.

    Buckets must be in time order (e.g. weeks since the start of the window); keys must sort
    correctly as plain strings within a bucket (fixed-width time stamp + fixed-width id).
    """

    def __init__(self, path: Path, tmp_dir: Path, n_buckets: int):
        self.path = path
        self.n_buckets = n_buckets
        self._tmp = tmp_dir / (path.name + ".spool")
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._buckets = [
            open(self._tmp / f"{i:04d}.txt", "w", encoding="utf-8", newline="\n", buffering=1 << 16)
            for i in range(n_buckets)
        ]
        self.lines = 0

    def add(self, bucket: int, sort_key: str, line: str) -> None:
        """Add a line; ``bucket`` = week of its time stamp, ``sort_key`` orders it within the week."""
        self._buckets[bucket].write(f"{sort_key}\t{line}\n")
        self.lines += 1

    def finish(self) -> None:
        for handle in self._buckets:
            handle.close()
        # bytes, not str: UTF-8 keeps Chinese text at 3 bytes a character instead of a 2- or 4-byte
        # str per line, and byte order equals code-point order, so the ASCII sort keys sort the same
        with open(self.path, "wb") as out:
            for i in range(self.n_buckets):
                spool = self._tmp / f"{i:04d}.txt"
                with open(spool, "rb") as handle:
                    rows = handle.read().split(b"\n")
                rows.pop()  # the text ends with a newline
                rows.sort()
                out.writelines(row[row.index(b"\t") + 1 :] + b"\n" for row in rows)
                del rows
                os.remove(spool)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def abort(self) -> None:
        for handle in self._buckets:
            if not handle.closed:
                handle.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
