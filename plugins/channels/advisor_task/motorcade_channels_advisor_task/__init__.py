"""Motorcade channel ``advisor_task``: a call task for the sales advisor (销售顾问电联).

Each message becomes one row in ``<project_dir>/out/advisor_tasks/<store_id>.csv`` (an export the store
manager can open in Excel) and, when the store offers ``add_advisor_tasks(rows)``, in the store's tasks
table. Idempotent on the idempotency key: a re-send of the same key adds no second row.

Address = the advisor id; the store comes from ``message.metadata["store_id"]``; the note is the rendered
body.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
from pathlib import Path
from typing import Any

import attrs

from motorcade.config_schema import PATH, Setting, whole
import motorcade
from motorcade.activation.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
)

__version__ = "0.1.0"

COLUMNS = ["idempotency_key", "advisor_id", "store_id", "person_id", "note", "created_at"]
STORE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # spreadsheet formula injection


def spreadsheet_safe(value: str) -> str:
    """Prefix text a spreadsheet would run as a formula with an apostrophe."""
    return "'" + value if value.startswith(FORMULA_START) else value


class AdvisorTaskChannel(Channel):
    name = "advisor_task"
    description = "Call task for the sales advisor: a row per task in a CSV per store (and the store's table)"
    capabilities = ChannelCapabilities(address_type="advisor_id", batch_size=500, supports_idempotency_key=True)
    settings_schema = (
        Setting("directory", PATH, "folder the call-task files are written to", "out/advisor_tasks"),
        Setting("batch_size", whole(1), "tasks per file write", 500),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        directory = Path(settings.get("directory", "out/advisor_tasks"))
        self.directory = directory if directory.is_absolute() else Path(context.project_dir) / directory
        self.capabilities = attrs.evolve(type(self).capabilities,
                                         batch_size=int(settings.get("batch_size", 500)))

    def _advisor_store(self, advisor_id: str) -> str | None:
        """The advisor's own store, when the message does not name one (the task goes to their store's list)."""
        get_advisor = getattr(self.context.store, "get_advisor", None)
        if get_advisor is None or not advisor_id:
            return None
        advisor = get_advisor(advisor_id)
        return None if advisor is None else advisor.store_id

    def csv_path(self, store_id: str) -> Path:
        return self.directory / f"{store_id}.csv"

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        by_store: dict[str, list[dict[str, Any]]] = {}
        created_at = self.context.clock().isoformat()
        for message in batch:
            store_id = str(message.metadata.get("store_id") or self._advisor_store(message.address) or "")
            if not STORE_ID.fullmatch(store_id):
                results.append(DeliveryResult(
                    message.idempotency_key, "permanent",
                    detail=f"advisor task needs metadata store_id (letters, digits, _ . -), got {store_id!r}"))
                continue
            if not message.address:
                results.append(DeliveryResult(message.idempotency_key, "permanent",
                                              detail="advisor task needs an advisor id as its address"))
                continue
            by_store.setdefault(store_id, []).append({
                "idempotency_key": message.idempotency_key,
                "advisor_id": message.address,
                "store_id": store_id,
                "person_id": message.person_id,
                "note": message.body,
                "created_at": created_at,
            })
        add_to_store = getattr(self.context.store, "add_advisor_tasks", None)
        for store_id, rows in by_store.items():
            # The store first (it must ignore keys it already has), then the CSV: a crash between the two
            # leaves the row missing from the CSV, and the retry adds it there.
            if add_to_store is not None:
                try:
                    add_to_store([dict(row) for row in rows])
                except Exception as exc:  # the store's own error; retry later
                    results.extend(DeliveryResult(row["idempotency_key"], "transient",
                                                  detail=f"store.add_advisor_tasks failed: {type(exc).__name__}: {exc}")
                                   for row in rows)
                    continue
            try:
                written = self._append(store_id, rows)
            except OSError as exc:
                detail = f"cannot write {self.csv_path(store_id)}: {exc}; check the directory is writable"
                results.extend(DeliveryResult(row["idempotency_key"], "transient", detail=detail) for row in rows)
                continue
            where = os.path.relpath(self.csv_path(store_id), self.context.project_dir)
            for row in rows:
                key = row["idempotency_key"]
                detail = f"task written to {where}" if key in written else f"task already in {where} (re-send)"
                results.append(DeliveryResult(key, "sent", provider_message_id=f"{store_id}:{key}", detail=detail))
        return results

    def _append(self, store_id: str, rows: list[dict[str, Any]]) -> set[str]:
        """Append rows whose key is not in the file yet, under an exclusive lock; return the keys written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.csv_path(store_id)
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # other workers append to the same file
            try:
                handle.seek(0)
                existing = handle.read().decode("utf-8-sig")
                present = {row["idempotency_key"] for row in csv.DictReader(io.StringIO(existing))}
                new_rows, written = [], set()
                for row in rows:
                    if row["idempotency_key"] in present or row["idempotency_key"] in written:
                        continue
                    written.add(row["idempotency_key"])
                    new_rows.append({**row, "note": spreadsheet_safe(str(row["note"]))})
                if new_rows:
                    buffer = io.StringIO()
                    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
                    if not existing:
                        writer.writeheader()
                    writer.writerows(new_rows)
                    data = buffer.getvalue().encode("utf-8")
                    handle.seek(0, os.SEEK_END)
                    handle.write((b"\xef\xbb\xbf" if not existing else b"") + data)  # BOM: Excel reads UTF-8
                    handle.flush()
                    os.fsync(handle.fileno())
                return written
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@motorcade.hookimpl
def register_channels(register):
    register(AdvisorTaskChannel)
