"""Rows of a SQLite query as Arrow batches, read in C by ADBC's SQLite driver in a child process.

Why a child process: ADBC's driver carries its own copy of the SQLite library. Two SQLite libraries in
one process open the same file with POSIX advisory locks, and closing either one's file descriptor
drops the other's locks (measured here: the store's next connection failed with "disk I/O error").
In a process of its own the driver is an ordinary second reader of the WAL database.

The child writes an Arrow IPC stream to its stdout; the parent reads it batch by batch, so building
Arrow columns (the child) and appending them to the engine (the parent) run on two cores at once.
``python -m motorcade.analytics.sqlite_arrow PATH`` reads ``{"sql": ..., "params": [...], "schema":
[[name, kind], ...]}`` on stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Iterator

from ..errors import MotorcadeError


def available() -> bool:
    try:
        import adbc_driver_sqlite  # noqa: F401
    except ImportError:
        return False
    return True


def _schema(columns: list[tuple[str, str]]):
    import pyarrow as pa

    types = {"int": pa.int64(), "text": pa.string(), "float": pa.float64()}
    return pa.schema([pa.field(name, types[kind]) for name, kind in columns])


def batches(path: str, sql: str, params: tuple, columns: list[tuple[str, str]]) -> Iterator:
    """Arrow record batches of ``sql`` on the SQLite file ``path`` (columns cast to ``columns``' kinds)."""
    import pyarrow as pa

    request = json.dumps({"sql": sql, "params": list(params), "schema": [list(c) for c in columns]})
    child = subprocess.Popen([sys.executable, "-m", "motorcade.analytics.sqlite_arrow", str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        child.stdin.write(request.encode())
        child.stdin.close()
        try:
            reader = pa.ipc.open_stream(child.stdout)
            for batch in reader:
                yield batch
        except pa.ArrowInvalid:
            pass  # the child failed before writing a stream: its error is read below
        code = child.wait()
        if code != 0:
            error = child.stderr.read().decode("utf-8", "replace").strip().splitlines()
            raise MotorcadeError(f"reading {path} with ADBC's SQLite driver failed: {error[-1] if error else code}",
                                 hint="pip uninstall adbc-driver-sqlite makes the mirror read rows in Python")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()


def _main(path: str) -> None:
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa

    request = json.loads(sys.stdin.read())
    schema = _schema(request["schema"])
    sink = sys.stdout.buffer
    with adbc.connect(path) as conn:
        cursor = conn.cursor()
        cursor.execute(request["sql"], tuple(request["params"]))
        with pa.ipc.new_stream(sink, schema) as writer:
            for batch in cursor.fetch_record_batch():
                if batch.num_rows:
                    writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)
        cursor.close()
    sink.flush()


if __name__ == "__main__":
    _main(sys.argv[1])
