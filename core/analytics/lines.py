"""A JSON Lines file as Arrow batches of raw lines, for an engine to parse (docs/engines.md, "Bulk ingest").

The file is read in blocks of whole lines; numpy finds the line breaks and the lines become an Arrow
string column over the block's own bytes (no Python object per line). Each batch is
``(line_no, line)``: the 1-based line number and the line's text with its line break. A line that is
not UTF-8 cannot be an Arrow string: it is handed back as raw bytes, with its number, for the Python
path to quarantine with the reason the SQLite path gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

BLOCK = 1 << 26  # 64 MB of lines per batch


def line_batches(path: str | Path, block: int = BLOCK, ranges: Iterable[tuple[int, int, int]] | None = None
                 ) -> Iterator[tuple[object, list[tuple[int, bytes]]]]:
    """``(Arrow table (line_no int64, line string), [(line_no, raw bytes) of lines not UTF-8])`` per block.

    ``ranges``: ``(start, stop, lines before)`` byte ranges of whole batches (``JsonlSource.column_ranges``);
    a block is then whole batches (one at least), so a batch is never split between two blocks."""
    if ranges is None:
        ranges = _whole_file(path)
    with open(path, "rb") as handle:
        pending: list[tuple[int, int, int]] = []
        for batch in ranges:
            pending.append(batch)
            if batch[1] - pending[0][0] >= block:
                yield _block(handle, pending[0][0], pending[-1][1], pending[0][2])
                pending = []
        if pending:
            yield _block(handle, pending[0][0], pending[-1][1], pending[0][2])


def _whole_file(path) -> Iterator[tuple[int, int, int]]:
    """The file as ranges of ``BLOCK`` bytes cut after a line break (lines before each counted)."""
    with open(path, "rb") as handle:
        start, lines = 0, 0
        while True:
            data = handle.read(BLOCK)
            if not data:
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0 or len(data) < BLOCK:
                cut = len(data)
            handle.seek(start + cut)
            yield start, start + cut, lines
            lines += data.count(b"\n", 0, cut)
            start += cut


def _block(handle, start: int, stop: int, lines_before: int):
    import numpy as np
    import pyarrow as pa

    handle.seek(start)
    data = handle.read(stop - start)
    breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    ends = breaks + 1
    if not len(ends) or ends[-1] != len(data):  # the file's last line, without a line break
        ends = np.append(ends, len(data))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    count = len(ends)
    numbers = np.arange(lines_before + 1, lines_before + 1 + count, dtype=np.int64)
    buffer = pa.py_buffer(data)
    lines = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets.tobytes()), buffer)
    bad: list[tuple[int, bytes]] = []
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:  # some line is not UTF-8: find which (rare), keep the others
        keep = np.ones(count, dtype=bool)
        for i in range(count):
            raw = data[offsets[i]:offsets[i + 1]]
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                keep[i] = False
                bad.append((int(numbers[i]), raw))
        raw_lines = pa.Array.from_buffers(pa.large_binary(), count, [None, pa.py_buffer(offsets.tobytes()), buffer])
        lines = raw_lines.filter(pa.array(keep)).cast(pa.large_string())
        numbers = numbers[keep]
    return pa.table({"line_no": pa.array(numbers, type=pa.int64()), "line": lines}), bad
