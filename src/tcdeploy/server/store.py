"""Persistence: every group, service, token and event the API shows lives here, in SQLite.

The server keeps no state of record in memory: a killed and restarted server reads it all back.
Multi-row changes run in one transaction, so a refused or crashed request leaves nothing half done.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcdeploy.protocol.states import ServiceStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    name TEXT NOT NULL,
    auth_enabled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    spec TEXT NOT NULL DEFAULT '{}',
    UNIQUE (workspace, name)
);
CREATE TABLE IF NOT EXISTS services (
    id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    group_id TEXT NOT NULL REFERENCES groups(id),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    weight INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (workspace, name)
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL REFERENCES groups(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    digest TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id TEXT NOT NULL,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_service ON events (service_id, seq);
"""


class Conflict(Exception):
    """A write broke a uniqueness rule (two requests raced for one name): nothing was written."""


@dataclass
class GroupRecord:
    id: str
    workspace: str
    name: str
    auth_enabled: bool
    created: float
    updated: float
    spec: dict[str, Any] = field(default_factory=dict)  # group-level settings under their wire names


@dataclass
class ServiceRecord:
    id: str
    workspace: str
    group_id: str
    name: str
    version: int
    weight: int
    status: ServiceStatus
    reason: str
    spec: dict[str, Any]
    created: float
    updated: float

    @property
    def replicas(self) -> int:
        return int(self.spec.get("Replicas", 1))

    @property
    def stopped(self) -> bool:
        return bool(self.spec.get("Stopped", False))


@dataclass
class TokenRecord:
    id: str
    group_id: str
    name: str
    description: str
    digest: str
    created: float


@dataclass
class EventRecord:
    service_id: str
    time: float
    type: str
    reason: str
    message: str
    seq: int = field(default=0)


class Store:
    """The SQLite store. One connection, used from the server's event loop thread only."""

    def __init__(self, path: Path) -> None:
        # Created 0600 before SQLite opens it (it holds token hashes); its -wal and -shm files
        # take the database's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._depth = 0

    def _migrate(self) -> None:
        """Bring a data dir written by an older server up to this schema (columns added since)."""
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(groups)")}
        if "spec" not in columns:
            self._db.execute("ALTER TABLE groups ADD COLUMN spec TEXT NOT NULL DEFAULT '{}'")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested uses join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def _insert(self, sql: str, params: tuple) -> None:
        try:
            self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from None

    # ---- groups -----------------------------------------------------------------------------------

    def insert_group(self, group: GroupRecord) -> None:
        self._insert(
            "INSERT INTO groups (id, workspace, name, auth_enabled, created, updated, spec) VALUES (?,?,?,?,?,?,?)",
            (
                group.id,
                group.workspace,
                group.name,
                int(group.auth_enabled),
                group.created,
                group.updated,
                json.dumps(group.spec),
            ),
        )

    def group(self, group_id: str) -> GroupRecord | None:
        row = self._db.execute("SELECT * FROM groups WHERE id = ?", (group_id,)).fetchone()
        return _group(row) if row else None

    def group_by_name(self, workspace: str, name: str) -> GroupRecord | None:
        row = self._db.execute("SELECT * FROM groups WHERE workspace = ? AND name = ?", (workspace, name)).fetchone()
        return _group(row) if row else None

    def groups(self, workspace: str | None = None) -> list[GroupRecord]:
        if workspace is None:
            rows = self._db.execute("SELECT * FROM groups ORDER BY created, id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM groups WHERE workspace = ? ORDER BY created, id", (workspace,)
            ).fetchall()
        return [_group(r) for r in rows]

    def set_group_auth(self, group_id: str, enabled: bool) -> None:
        self._db.execute(
            "UPDATE groups SET auth_enabled = ?, updated = ? WHERE id = ?",
            (int(enabled), time.time(), group_id),
        )

    def update_group(self, group_id: str, *, spec: dict[str, Any]) -> None:
        """Replace a group's settings (given whole)."""
        self._db.execute(
            "UPDATE groups SET spec = ?, updated = ? WHERE id = ?", (json.dumps(spec), time.time(), group_id)
        )

    def touch_group(self, group_id: str) -> None:
        self._db.execute("UPDATE groups SET updated = ? WHERE id = ?", (time.time(), group_id))

    def delete_group(self, group_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM tokens WHERE group_id = ?", (group_id,))
            self._db.execute("DELETE FROM groups WHERE id = ?", (group_id,))

    # ---- services ---------------------------------------------------------------------------------

    def insert_service(self, service: ServiceRecord) -> None:
        self._insert(
            "INSERT INTO services (id, workspace, group_id, name, version, weight, status, reason, spec,"
            " created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                service.id,
                service.workspace,
                service.group_id,
                service.name,
                service.version,
                service.weight,
                str(service.status),
                service.reason,
                json.dumps(service.spec),
                service.created,
                service.updated,
            ),
        )

    def service(self, service_id: str) -> ServiceRecord | None:
        row = self._db.execute("SELECT * FROM services WHERE id = ?", (service_id,)).fetchone()
        return _service(row) if row else None

    def service_by_name(self, workspace: str, name: str) -> ServiceRecord | None:
        row = self._db.execute("SELECT * FROM services WHERE workspace = ? AND name = ?", (workspace, name)).fetchone()
        return _service(row) if row else None

    def services(self, group_id: str | None = None) -> list[ServiceRecord]:
        if group_id is None:
            rows = self._db.execute("SELECT * FROM services ORDER BY created, id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM services WHERE group_id = ? ORDER BY version", (group_id,)
            ).fetchall()
        return [_service(r) for r in rows]

    def services_in(self, workspace: str) -> list[ServiceRecord]:
        rows = self._db.execute(
            "SELECT * FROM services WHERE workspace = ? ORDER BY created, id", (workspace,)
        ).fetchall()
        return [_service(r) for r in rows]

    def update_service(self, service_id: str, **changes: Any) -> None:
        """Update some columns of a service (`spec` is given whole, as a dict)."""
        if "spec" in changes:
            changes["spec"] = json.dumps(changes["spec"])
        if "status" in changes:
            changes["status"] = str(ServiceStatus(changes["status"]))
        changes["updated"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in changes)
        self._db.execute(f"UPDATE services SET {columns} WHERE id = ?", (*changes.values(), service_id))

    def delete_service(self, service_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM events WHERE service_id = ?", (service_id,))
            self._db.execute("DELETE FROM services WHERE id = ?", (service_id,))

    def next_version(self, group_id: str) -> int:
        row = self._db.execute("SELECT MAX(version) FROM services WHERE group_id = ?", (group_id,)).fetchone()
        return (row[0] or 0) + 1

    # ---- tokens -----------------------------------------------------------------------------------

    def insert_token(self, token: TokenRecord) -> None:
        self._insert(
            "INSERT INTO tokens (id, group_id, name, description, digest, created) VALUES (?,?,?,?,?,?)",
            (token.id, token.group_id, token.name, token.description, token.digest, token.created),
        )

    def tokens(self, group_id: str) -> list[TokenRecord]:
        rows = self._db.execute("SELECT * FROM tokens WHERE group_id = ? ORDER BY created, id", (group_id,)).fetchall()
        return [TokenRecord(**dict(r)) for r in rows]

    def delete_token(self, token_id: str) -> None:
        self._db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))

    # ---- events -----------------------------------------------------------------------------------

    def add_event(self, event: EventRecord) -> None:
        self._db.execute(
            "INSERT INTO events (service_id, time, type, reason, message) VALUES (?,?,?,?,?)",
            (event.service_id, event.time, event.type, event.reason, event.message),
        )

    def events(self, service_id: str, limit: int = 50) -> list[EventRecord]:
        rows = self._db.execute(
            "SELECT * FROM (SELECT * FROM events WHERE service_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (service_id, limit),
        ).fetchall()
        return [EventRecord(**dict(r)) for r in rows]


def _group(row: sqlite3.Row) -> GroupRecord:
    data = dict(row)
    data["auth_enabled"] = bool(data["auth_enabled"])
    data["spec"] = json.loads(data["spec"])
    return GroupRecord(**data)


def _service(row: sqlite3.Row) -> ServiceRecord:
    data = dict(row)
    data["spec"] = json.loads(data["spec"])
    data["status"] = ServiceStatus(data["status"])
    return ServiceRecord(**data)
