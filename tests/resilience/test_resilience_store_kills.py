"""The state database under SIGKILL: a process doing the control plane's writes (a group, its
service, a token, status changes, events, each change in one transaction as the backend makes
it) is killed 100 times at random moments; after each kill the store opens, passes SQLite's
integrity check, holds every change the process had acknowledged, and no half of a transaction.

The writer is a fork of the test process, so a kill costs milliseconds, not a server start
(the whole server under SIGKILL is test_resilience_server's).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

import pytest

from tcdeploy.protocol.states import ServiceStatus
from tcdeploy.server.store import EventRecord, GroupRecord, ServiceRecord, Store, TokenRecord

KILLS = 100


def change(store: Store, n: int) -> None:
    """One control action's writes: a group with a service, a token and an event, the service's
    status moved, and the group made two changes before deleted: all in one transaction."""
    now = time.time()
    with store.transaction():
        store.insert_group(GroupRecord(f"g{n}", "ws", f"group-{n}", True, now, now, {"Description": "x" * 200}))
        spec = {"Replicas": 1, "ModelUri": f"models:/m/{n}", "Env": [{"Name": "A", "Value": "b" * 500}]}
        store.insert_service(
            ServiceRecord(f"g{n}-1", "ws", f"g{n}", f"svc-{n}", 1, 100, ServiceStatus.CREATING, "", spec, now, now)
        )
        store.insert_token(TokenRecord(f"t{n}", f"g{n}", "default", "", "d" * 64, now))
        store.add_event(EventRecord(f"g{n}-1", now, "Normal", "Created", "created " + "m" * 300))
        store.update_service(f"g{n}-1", status=ServiceStatus.RUNNING)
        if store.group(f"g{n - 2}") is not None:
            store.delete_service(f"g{n - 2}-1")
            store.delete_group(f"g{n - 2}")


def write_until_killed(path, start: int, acknowledged: int) -> None:
    """In the child: make changes from `start` on, telling the parent each one once committed."""
    store = Store(path)
    n = start
    while True:
        change(store, n)
        os.write(acknowledged, f"{n}\n".encode())
        n += 1


def kill_while_writing(path, start: int, after: float) -> list[int]:
    """Fork a writer, SIGKILL it after `after` seconds, return the changes it acknowledged."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            write_until_killed(path, start, write_end)
        finally:
            os._exit(1)
    os.close(write_end)
    time.sleep(after)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        return [int(line) for line in pipe.read().split()]


def check_consistent(path, last: int | None) -> None:
    """The store opens and is whole; the last acknowledged change is there (and with it the
    deletion it made); no transaction is there in part."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    store = Store(path)
    try:
        if last is not None:
            group = store.group(f"g{last}")
            assert group is not None and group.spec == {"Description": "x" * 200}, f"change {last} lost its group"
            assert store.group(f"g{last - 2}") is None, f"change {last} lost its deletion"
        for group in store.groups():
            service = store.service(f"{group.id}-1")
            assert [t.id for t in store.tokens(group.id)] == [f"t{group.id[1:]}"], f"{group.id} is half-written"
            assert service is not None and service.status == ServiceStatus.RUNNING, f"{group.id} is half-written"
            assert len(store.events(service.id)) == 1, f"{group.id} is half-written"
        assert len(store.groups()) <= 2
    finally:
        store.close()


def newest_groups(path) -> list[int]:
    store = Store(path)
    try:
        return [int(group.id[1:]) for group in store.groups()]
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_the_store_survives_sigkill_during_writes_with_every_acknowledged_change(tmp_path):
    path = tmp_path / "state.db"
    Store(path).close()
    rng = random.Random(7)
    next_id, acknowledged = 0, 0
    for _ in range(KILLS):
        done = kill_while_writing(path, next_id, after=rng.uniform(0.005, 0.05))
        acknowledged += len(done)
        # The newest acknowledged change is there (at most the one after it, unacknowledged,
        # committed too; it deletes only an older group).
        last = done[-1] if done else None
        check_consistent(path, last)
        # The next writer goes on where this one stopped: a change it made but could not
        # acknowledge may have committed, so it starts past the newest group there.
        next_id = max([next_id - 1, *done, *newest_groups(path)]) + 1
    assert acknowledged > KILLS, "the writers were killed before they could commit much"
