"""Group commit: one writer thread per database connection pool, many batches per durable commit.

A request thread verifies its batch (signatures, the costly part) on its
own, in parallel with the others, and then hands the database work to the
process's one ``GroupWriter`` and waits. The writer takes every piece of work
waiting, runs them one after the other in one transaction (each in its own
savepoint, so one that fails is undone alone and answered with its error),
commits once, and only when that commit has returned (SQLite in WAL mode
with ``synchronous=FULL``: on disk; PostgreSQL: flushed to its WAL) answers
each waiting thread. Nothing is acknowledged before the commit that holds
it is durable: a crash before it loses the whole group, and no unit was told
its records were kept.

On SQLite this removes the busy-wait: there is one writer, so no thread
sleeps in SQLite's busy handler waiting for another thread's lock, and the
fsync of one commit is shared by every batch that arrived meanwhile. A
group is at most ``max_group`` pieces of work; more wait for the next one.

On PostgreSQL the server does both already: transactions of several
connections proceed at once under row locks (no busy-wait), and commits that
arrive together share a WAL flush. One writer thread there would only put
every statement's round trip in one line, so ``GroupWriter(direct=True)``
(what ``Storage`` uses on PostgreSQL) runs each piece of work in its own
transaction on the calling thread's connection, and answers after its
commit, like the writer does.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from receiver.store.db import Database, StorageError

T = TypeVar("T")
MAX_GROUP = 200
"""Pieces of work committed together at most (each is one batch of up to 2,000 records, or one rejection)."""

log = logging.getLogger("pollbox.receiver.writer")


@dataclass
class _Work(Generic[T]):
    run: Callable[[], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class GroupWriter:
    """The one thread that writes to ``db``; ``write(fn)`` runs ``fn`` in a shared transaction and waits for it."""

    def __init__(self, db: Database, *, max_group: int = MAX_GROUP, direct: bool = False) -> None:
        self.db, self.max_group, self.direct = db, max_group, direct
        self.before_commit: Callable[[int], None] | None = None
        """Called with the group's size just before each COMMIT (tests stop the process there)."""
        self.groups = 0
        self.written = 0
        self._queue: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def write(self, run: Callable[[], T]) -> T:
        """Run ``run`` inside the writer's transaction; return its result once that transaction is durable."""
        if self.direct:
            return self._write_here(run)
        work: _Work[T] = _Work(run)
        self._ensure_started()
        self._queue.put(work)
        work.done.wait()
        if work.error is not None:
            raise work.error
        return work.result  # type: ignore[return-value]

    def _write_here(self, run: Callable[[], T]) -> T:
        with self.db._transaction():
            result = run()
            if self.before_commit is not None:
                self.before_commit(1)
        self.groups += 1
        self.written += 1
        return result

    def stop(self) -> None:
        """Finish the work already handed over, then end the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="pollbox-receiver-writer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                group = [first]
                while len(group) < self.max_group:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # stop after this group
                        break
                    group.append(more)
                self._commit(group)
        finally:
            self.db.close_own()

    def _commit(self, group: list[_Work[Any]]) -> None:
        try:
            with self.db._transaction():
                for number, work in enumerate(group):
                    self._run_one(work, number)
                if self.before_commit is not None:
                    self.before_commit(len(group))
        except BaseException as exc:  # the transaction is rolled back: nothing of the group was kept
            error = exc if isinstance(exc, StorageError) else StorageError(f"the group commit failed: {exc}")
            for work in group:
                work.error = work.error or error
                work.result = None
        else:
            self.groups += 1
            self.written += len(group)
        for work in group:
            work.done.set()

    def _run_one(self, work: _Work[Any], number: int) -> None:
        name = f"work{number}"
        self.db._q(f"SAVEPOINT {name}")
        try:
            work.result = work.run()
        except Exception as exc:
            work.error = exc
            self.db._q(f"ROLLBACK TO SAVEPOINT {name}")  # a failure here fails the whole group
            if not isinstance(exc, StorageError):
                log.exception("database work failed and was undone alone")
        self.db._q(f"RELEASE SAVEPOINT {name}")
