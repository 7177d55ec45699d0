"""Group commit: entries from many calls share one transaction and one fsync, in the order they came.

Each caller still gets its answer only after its own entry has committed; under load the wait for one fsync
is shared by every call that arrived meanwhile instead of being queued behind the others' fsyncs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from cds.audit.chain import canonical_json

MAX_BATCH = 64


@dataclass(frozen=True)
class Pending:
    """An entry ready to be chained: its payload already serialised by the caller (canonical JSON)."""

    kind: str
    hook_instance: str
    service_id: str
    payload: str
    cards: tuple[str, ...] = ()
    client: str = ""  # the issuer of the calling client; "" when calls are not authenticated

    @classmethod
    def of(
        cls,
        kind: str,
        hook_instance: str,
        service_id: str,
        payload: Mapping[str, Any],
        cards: tuple[str, ...] = (),
        client: str = "",
    ) -> Pending:
        return cls(kind, hook_instance, service_id, canonical_json(payload), cards, client)


_STOP = object()
Write = Callable[[Sequence[Pending]], list[int]]  # appends a batch in one transaction: its sequence numbers


class GroupCommit:
    """One writer thread; ``write`` appends a batch in one transaction and returns the sequence numbers."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cds-audit-writer", daemon=True)
        self._thread.start()

    def submit(self, entry: Pending) -> Future[int]:
        future: Future[int] = Future()
        self._queue.put((entry, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch, stop = self._take()
            if batch:
                self._commit(batch)
            if stop:
                return

    def _take(self) -> tuple[list[tuple[Pending, Future[int]]], bool]:
        """Wait for one entry, then take whatever else is already waiting (up to MAX_BATCH)."""
        item = self._queue.get()
        batch: list[tuple[Pending, Future[int]]] = []
        while item is not _STOP:
            batch.append(item)
            if len(batch) >= MAX_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _commit(self, batch: list[tuple[Pending, Future[int]]]) -> None:
        # a caller that gave up waiting (cancelled) still has its decision recorded: it was made
        waiting = [future.set_running_or_notify_cancel() for _, future in batch]
        outcomes = write_each(self._write, [entry for entry, _ in batch])
        for (_, future), told, outcome in zip(batch, waiting, outcomes, strict=True):
            if not told:
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def write_each(write: Write, batch: Sequence[Pending]) -> list[int | BaseException]:
    """Each entry's sequence number, or why it could not be written. A batch that fails (nothing of it was
    committed) is written entry by entry, so one entry that cannot be written fails only itself."""
    try:
        return list(write(batch))
    except BaseException as exc:
        if len(batch) == 1:
            return [exc]
    return [_alone(write, entry) for entry in batch]


def _alone(write: Write, entry: Pending) -> int | BaseException:
    try:
        return write([entry])[0]
    except BaseException as exc:
        return exc
