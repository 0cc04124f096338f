"""Group commit: one writer thread per database connection pool, many batches per durable commit.

A request thread verifies its batch (signatures, the costly part) on its
own, in parallel with the others, and then hands the database work to the
process's one ``GroupWriter`` and waits. The writer takes every piece of work
waiting, runs them one after the other in one transaction, commits once
(when one of them fails, that transaction is rolled back and the group runs
again with each piece in its own savepoint, so the failing one is undone
alone and answered with its error; savepoints cost two statements a piece,
so they are taken only then), and only when that commit has returned (SQLite in WAL mode
with ``synchronous=FULL``: on disk; PostgreSQL: flushed to its WAL) answers
each waiting thread. Nothing is acknowledged before the commit that holds
it is durable: a crash before it loses the whole group, and no unit was told
its records were kept.

On SQLite this removes the busy-wait: there is one writer, so no thread
sleeps in SQLite's busy handler waiting for another thread's lock, and the
fsync of one commit is shared by every batch that arrived meanwhile. A
group is at most ``max_group`` pieces of work; more wait for the next one.

On PostgreSQL the writer does the same, one writer thread per receiver
process: a group is one transaction and one WAL flush, and the rows every
batch changes (the public log's ``tree`` row, the ``station_counts`` row) are
locked once per group instead of once per batch. Those rows are shared by
every process on the database, so a piece of work does not touch them:
it hands what it would add to them to ``defer(finish, item, rank)``, and
after the last piece of work of the group the writer calls each ``finish``
once with all the items of the group, in ``rank`` order (the same for every
process, so two processes never wait for each other's locks in a circle).
The shared rows are thus locked only for those last statements and the
commit, and the per-station work of several processes runs at the same
time. The pieces of work of a group run ordered by their ``order`` key (a
station id; work without one last), each station's own work in the order
it arrived, so two groups lock station rows in the same order too.

A piece of work that fails is undone alone, its deferred items with it.

Before the first piece of work, ``prepare`` (set by the storage) is called
once with the group's order keys, sorted and distinct, and what it returns
is what ``prepared()`` gives the pieces of work for that group: the storage
locks and reads every station row of the group in one statement, in station
order, instead of one statement (one round trip on PostgreSQL, which the
whole group waits for) per batch. On PostgreSQL the BEGIN goes in one
pipeline with that read, and the group's last writes that read nothing (the
tree row's update, the station rows, the counts) in one pipeline with the
COMMIT: a group of any size is about five round trips (BEGIN and the rows,
the tree row, two COPYs, the writes and COMMIT).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from protocol.errors import PollboxError
from receiver.store.db import Database, StorageError

T = TypeVar("T")
PIPELINED_FROM = 10
"""Finishers of this rank and above only write, and go in one pipeline with the COMMIT (``defer``)."""
MAX_GROUP = 200
"""Pieces of work committed together at most (each is one batch of up to 2,000 records, or one rejection)."""

log = logging.getLogger("pollbox.receiver.writer")


@dataclass
class _Work(Generic[T]):
    run: Callable[[], T]
    order: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class _PieceFailed(PollboxError):
    """A piece of work raised in a group run without savepoints: the group runs again with them."""


class GroupWriter:
    """The one thread that writes to ``db``; ``write(fn)`` runs ``fn`` in a shared transaction and waits for it."""

    def __init__(self, db: Database, *, max_group: int = MAX_GROUP) -> None:
        self.db, self.max_group = db, max_group
        self.before_commit: Callable[[int], None] | None = None
        """Called with the group's size just before each COMMIT (tests stop the process there)."""
        self.prepare: Callable[[list[str]], dict[str, Any]] | None = None
        """Called inside each group's transaction, before its work, with its order keys (sorted, distinct)."""
        self.groups = 0
        self.written = 0
        self._queue: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._local = threading.local()

    def write(self, run: Callable[[], T], order: str | None = None) -> T:
        """Run ``run`` inside the writer's transaction; return its result once that transaction is durable.

        ``order`` (a station id) orders the pieces of work of one group; work with the same key keeps its order.
        """
        work: _Work[T] = _Work(run, order)
        self._ensure_started()
        self._queue.put(work)
        work.done.wait()
        if work.error is not None:
            raise work.error
        return work.result  # type: ignore[return-value]

    def defer(self, finish: Callable[[list[Any]], None], item: Any, rank: int) -> None:
        """Have ``finish`` called once, at the end of the current group's transaction, with every such item.

        Only inside a piece of work. Finishers run in ascending ``rank``; an item of work that fails is dropped.
        Finishers of rank ``PIPELINED_FROM`` and above only write (they read no result): they are sent with the
        COMMIT in one pipeline (PostgreSQL: one round trip for them all and the COMMIT).
        """
        self._deferred().append((rank, finish, item))

    def deferred(self, finish: Callable[[list[Any]], None]) -> list[Any]:
        """The items handed to ``finish`` so far in the current group (not yet written)."""
        return [item for _, f, item in self._deferred() if f == finish]

    def _deferred(self) -> list[tuple[int, Callable[[list[Any]], None], Any]]:
        found: list[tuple[int, Callable[[list[Any]], None], Any]] | None = getattr(self._local, "deferred", None)
        if found is None:
            raise RuntimeError("defer is only called inside a piece of the writer's work")
        return found

    def prepared(self) -> dict[str, Any]:
        """What ``prepare`` returned for the current group (empty outside a group or without ``prepare``)."""
        found: dict[str, Any] | None = getattr(self._local, "prepared", None)
        return {} if found is None else found

    def _finish(self, size: int) -> None:
        """Call every finisher with its items, in rank order, then COMMIT (inside the group's transaction).

        The finishers of rank ``PIPELINED_FROM`` and above, ``before_commit`` and the COMMIT run in one pipeline.
        """
        for finish, (rank, items) in _by_rank(self._deferred()):
            if rank < PIPELINED_FROM:
                finish(items)  # may defer more, to be sent with the COMMIT
        deferred, self._local.deferred = self._deferred(), None
        finishers = _by_rank(deferred)
        with self.db._pipelined():
            for finish, (rank, items) in finishers:
                if rank >= PIPELINED_FROM:
                    finish(items)
            if self.before_commit is not None:
                self.before_commit(size)
            self.db._q("COMMIT")

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
        """Run the group's work in one transaction and commit it, then answer every piece.

        First without savepoints (two statements, on PostgreSQL two round trips, fewer per piece of work);
        if a piece fails, that transaction is rolled back whole and the group runs again with a savepoint
        around each piece, so the failing one is undone alone.
        """
        ordered = sorted(group, key=lambda w: (w.order is None, w.order or ""))  # stable: arrival order kept
        try:
            try:
                self._run_group(ordered, isolated=False)
            except _PieceFailed:
                for work in group:
                    work.result, work.error = None, None
                self._run_group(ordered, isolated=True)
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

    def _run_group(self, ordered: list[_Work[Any]], *, isolated: bool) -> None:
        self._local.deferred, self._local.prepared = [], None
        try:
            try:
                with self.db._pipelined():  # BEGIN and the locked read of the group's rows: one round trip
                    self.db._begin()
                    if self.prepare is not None:
                        self._local.prepared = self.prepare(sorted({w.order for w in ordered
                                                                    if w.order is not None}))
                for number, work in enumerate(ordered):
                    if isolated:
                        self._run_one(work, number)
                    else:
                        try:
                            work.result = work.run()
                        except Exception as exc:
                            raise _PieceFailed from exc
                self._finish(len(ordered))
            except BaseException:
                self.db._rollback()
                raise
        finally:
            self._local.deferred, self._local.prepared = None, None

    def _run_one(self, work: _Work[Any], number: int) -> None:
        name = f"work{number}"
        self.db._q(f"SAVEPOINT {name}")
        deferred = self._deferred()
        mark = len(deferred)
        try:
            work.result = work.run()
        except Exception as exc:
            work.error = exc
            del deferred[mark:]
            self.db._q(f"ROLLBACK TO SAVEPOINT {name}")  # a failure here fails the whole group
            if not isinstance(exc, StorageError):
                log.exception("database work failed and was undone alone")
        self.db._q(f"RELEASE SAVEPOINT {name}")


def _by_rank(deferred: list[tuple[int, Callable[[list[Any]], None], Any]]) -> list[
        tuple[Callable[[list[Any]], None], tuple[int, list[Any]]]]:
    """Each finisher with its rank and its items (in the order they were handed over), in ascending rank."""
    by_finish: dict[Callable[[list[Any]], None], tuple[int, list[Any]]] = {}
    for rank, finish, item in deferred:
        by_finish.setdefault(finish, (rank, []))[1].append(item)
    return sorted(by_finish.items(), key=lambda entry: entry[1][0])
