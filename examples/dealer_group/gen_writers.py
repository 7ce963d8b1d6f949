"""Streaming writers: CSV files row by row, and JSON Lines files sorted by time without holding them.

Events are produced person by person, but the files must be in time order. ``BucketSpool`` spools
each line into a bucket file per week of its time stamp; ``merge_buckets`` then sorts one bucket at a
time in memory and concatenates them: memory stays at one week of events even at the benchmark size.
People are simulated in shards (possibly in parallel processes); each shard writes its own CSV parts
and spools, merged in shard order so the result does not depend on the number of processes.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path


class CsvOut:
    """A CSV file written row by row (with a header unless ``header=False``); counts the rows it wrote."""

    def __init__(self, path: Path, columns: tuple[str, ...], header: bool = True):
        self.path = path
        self.columns = columns
        self._file = open(path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, lineterminator="\n")
        if header:
            self._writer.writerow(columns)
        self.rows = 0

    def write(self, row: list | tuple) -> None:
        self._writer.writerow(row)
        self.rows += 1

    def close(self) -> None:
        self._file.close()


class BucketSpool:
    """Collect ``(bucket, sort_key, line)`` triples in any order into one spool file per bucket.

    Buckets are in time order (weeks since the start of the window); keys sort correctly as plain
    strings within a bucket (fixed-width time stamp + fixed-width id). :func:`merge_buckets` turns
    one or more spools (one per shard of people) into the final, sorted file.
    """

    def __init__(self, directory: Path, n_buckets: int):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._buckets = [
            open(directory / f"{i:04d}.txt", "w", encoding="utf-8", newline="\n", buffering=1 << 16)
            for i in range(n_buckets)
        ]
        self.lines = 0

    def add(self, bucket: int, sort_key: str, line: str) -> None:
        """Add a line; ``bucket`` = week of its time stamp, ``sort_key`` orders it within the week."""
        self._buckets[bucket].write(f"{sort_key}\t{line}\n")
        self.lines += 1

    def close(self) -> None:
        for handle in self._buckets:
            if not handle.closed:
                handle.close()


def merge_buckets(path: Path, spools: list[Path], n_buckets: int) -> None:
    """Write every spool's lines to ``path``, bucket by bucket, each bucket sorted by key.

    Bytes, not str: UTF-8 keeps Chinese text at 3 bytes a character instead of a wide str per line,
    and byte order equals code-point order, so the ASCII sort keys sort the same. Memory holds one
    bucket (one week of events) at a time.
    """
    with open(path, "wb") as out:
        for i in range(n_buckets):
            rows = []
            for spool in spools:
                part = spool / f"{i:04d}.txt"
                with open(part, "rb") as handle:
                    rows.extend(handle.read().split(b"\n")[:-1])  # each part ends with a newline
                os.remove(part)
            rows.sort()
            out.writelines(row[row.index(b"\t") + 1 :] + b"\n" for row in rows)
            del rows


def concatenate(path: Path, header: tuple[str, ...], parts: list[Path]) -> None:
    """The CSV header, then the parts (written without header) in order."""
    with open(path, "wb") as out:
        out.write((",".join(header) + "\n").encode("utf-8"))
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)
            os.remove(part)
