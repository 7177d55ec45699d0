"""Crash safety: SIGKILL the server under load, restart it, and find every answered decision in the audit log.

The service appends the audit entry (SQLite WAL, synchronous=FULL, committed) before it sends a 200, so a
client can never hold advice the log does not have, however the process dies.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx

from cds.audit import AuditStore
from tests.robustness.conftest import ServerProcess, examples, service_path

CALLERS = 6
KILL_AFTER = 40  # 200 responses before the kill: the server is busy with CALLERS requests in flight


def test_sigkill_under_load_loses_no_answered_decision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    server = ServerProcess(tmp_path, url)
    bodies = examples()
    answered: dict[str, list[object]] = {}  # hookInstance -> the cards the client received
    refused: list[tuple[int, str]] = []
    lock = threading.Lock()
    killed = threading.Event()

    def caller(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(10_000):  # bounded: stops at the kill, or after these many
                if killed.is_set():
                    return
                body = dict(bodies[(n + i) % len(bodies)], hookInstance=str(uuid.uuid4()))
                try:
                    response = client.post(server.base + service_path(body["hook"]), json=body)
                except httpx.TransportError:
                    return  # the server died under this request: no answer, so nothing is owed
                with lock:
                    if response.status_code == 200:
                        answered[body["hookInstance"]] = response.json()["cards"]
                    else:
                        refused.append((response.status_code, response.text[:200]))

    try:
        server.start()
        with httpx.Client() as probe:
            server.wait_healthy(probe)
        threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(answered) < KILL_AFTER and time.monotonic() < deadline and not refused:
            time.sleep(0.01)
        server.kill()  # midway: requests are in flight, some being evaluated, some being written
        killed.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not refused, refused[:3]
        assert len(answered) >= KILL_AFTER, server.log()[-2000:]

        server.start()  # the same database: recovery of the WAL happens on open
        with httpx.Client(timeout=30) as client:
            server.wait_healthy(client)
            after = dict(bodies[0], hookInstance=str(uuid.uuid4()))
            assert client.post(server.base + service_path(after["hook"]), json=after).status_code == 200
    finally:
        server.stop()

    store = AuditStore(url)
    try:
        missing = [h for h in answered if store.decision(h) is None]
        assert not missing, f"{len(missing)} of {len(answered)} answered decisions have no audit record"
        for hook_instance, cards in answered.items():
            decision = store.decision(hook_instance)
            assert decision is not None and decision["payload"]["status"] == "ok"
            assert decision["payload"]["cards"] == cards  # exactly the cards the client saw
        assert store.decision(after["hookInstance"]) is not None  # the chain goes on after the restart
        report = store.verify()
        assert report.ok, report
        assert report.entries >= len(answered) + 1
    finally:
        store.dispose()
