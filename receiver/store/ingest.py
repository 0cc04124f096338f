"""Ingest into the database: one station's authenticated records sequenced and stored in one transaction.

``store`` locks the station's row (PostgreSQL: ``SELECT ... FOR UPDATE``;
SQLite holds the write lock for the whole transaction; the rows of all the
stations of a writer's group are locked and read at its start in one
statement, ``lock_stations``, and written back at its end in one
``executemany``, ``_save_statuses``), sequences the records
against what is stored (``receiver/ingest.py`` ``sequence``: duplicates,
conflicts, gaps, broken chains), folds the new ones into the station's row
and its alarms (``receiver/status.py``) and keeps a conflicting record as
evidence. What every batch shares is written once per group, at the end of
the writer's transaction (``writer.py`` ``defer``): the new records of all
the group's batches are appended to the public log (the ``tree`` row's lock)
and inserted into ``records`` with their key id and leaf index, then the
counts move by the sum of the group's changes (a training station, created
with ``training`` 1, moves them by nothing). Locks are always taken in that
order (stations in the order of their ids, then tree, then counts), so they
cannot deadlock, and the rows every process shares are held only for the
group's last statements and its commit. Signatures were verified before,
outside any lock. The transaction is the writer's (``writer.py``): ``store``
hands the work to the process's one writer thread, which commits it with the
other batches waiting, and returns only once that commit is durable.

A station of several units has one chain per unit (``protocol/envelope.py``
``unit``): the main unit's records (no ``unit``) are folded into the
station's row as a one-unit station's are; another unit's records are
sequenced against its own row in ``unit_chains`` (locked after the station's
row) and folded there. During the day the station's row holds the station's
combined counts: ``identified`` and ``ballots`` are the main unit's own plus
every other unit's own (each unit counts only its own admissions and its own
box), moved by the difference each chain's new records make. From the main
unit's close on, they are its ``units_reconciled`` totals and no chain moves
them again. Every unit's alarms are the station's alarms, keyed by (station,
unit, alarm): alarm numbers are per journal, so desk-2's alarm 1 is not the
main desk's alarm 1, and the station's ``alarms_open`` counts them all.

Also the reads of what ingest wrote: records, alarms, conflicts, rejections.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from protocol import merkle
from protocol.envelope import MAIN_UNIT, SignedRecord, is_int
from protocol.training import is_training_station
from receiver.ingest import Plan, Rejection, sequence
from receiver.limits import MAX_ROWS
from receiver.status import (
    KNOWN,
    AlarmChange,
    StationStatus,
    alarm_changes,
    evidence_alarms,
    fold,
    reconciled,
    split_after_close,
)
from receiver.store.chain_keys import ChainKeys
from receiver.store.merkle_log import MerkleLog
from receiver.store.overview import ranks
from receiver.store.schema import RANK_COLUMNS, STATUS_COLUMNS, UNIT_COLUMNS, record_alarm_changes
from receiver.store.tallies import Tallies, tally
from receiver.store.writer import PIPELINED_FROM, GroupWriter

MAX_REJECTIONS = MAX_ROWS  # rows kept in ``rejections``
MAX_REASON = 500  # characters of a rejection's reason and source kept
# The order of the group's last writes: the public log (it reads the tree row), then, sent with the COMMIT in one
# pipeline (``writer.PIPELINED_FROM``), the station rows (locked already) and the counts (the last lock taken).
# The tree row's update goes there too (its lock is held since the log append).
LOG_RANK, TREE_RANK, STATUS_RANK, COUNTS_RANK = 1, PIPELINED_FROM, PIPELINED_FROM + 1, PIPELINED_FROM + 2
OTHER_UNITS = ("(SELECT COALESCE(SUM(u.identified), 0) FROM unit_chains u WHERE u.station = stations.station), "
               "(SELECT COALESCE(SUM(u.ballots), 0) FROM unit_chains u WHERE u.station = stations.station)")
"""The sums of the station's other units' own counts, read with the station's row (``_plus_other_units``)."""
PREPARED_AT_ONCE = 200  # station rows read in one statement at a group's start (SQLite allows 999 parameters)


class Ingest(MerkleLog, Tallies, ChainKeys):
    """Stores records and rejections; reads them back."""

    max_rejections = MAX_REJECTIONS

    writer: GroupWriter

    def store(self, station: str, records: Sequence[SignedRecord], now: float, source: str) -> Plan:
        """Sequence and store one station's authenticated records; returns once they are durable.

        The work runs in the writer's transaction (``writer.py``), with other
        batches that arrived meanwhile, and this returns only after that
        transaction's commit.
        """
        if not records:
            return Plan()
        return self.writer.write(lambda: self.store_now(station, records, now, source), order=station)

    def store_now(self, station: str, records: Sequence[SignedRecord], now: float, source: str) -> Plan:
        """``store``'s work, inside a piece of the writer's work (the records and counts are written at its end).

        One statement in the usual case (a station's batch of new records of its main unit, none of them an
        alarm): the locked read of the station's row with its other units' sums. The row's new values, the
        records and the counts are written for the whole group at its end (``_save_statuses``,
        ``_insert_records``, ``_count_group``): on PostgreSQL every statement is a round trip the one
        writer thread waits for, with every batch of the group waiting behind it.
        """
        before, created, others = self._locked_status(station)
        unit = records[0].unit
        allowed, wrong = self.first_of_another_chain(station, unit, records)  # a key writes one unit's chain
        records = records[:allowed]
        if unit != MAIN_UNIT or not records:
            plan, after = self._store_unit_now(station, unit, records, now, source, before) if records else (
                Plan(highest=before.highest_seq if unit == MAIN_UNIT else 0), before)
            self.writer.defer(self._count_group, (tally(after), tally(None if created else before)), COUNTS_RANK)
            return self._bound(station, unit, plan, wrong)
        plan = sequence(records, before.highest_seq, before.last_hash,
                        self._stored_hashes(station, records, before.highest_seq))
        after = before
        if plan.new:
            self.writer.defer(self._insert_records, (plan.new, now), LOG_RANK)
            after = self._apply_alarms(self._plus_other_units(before, fold(before, plan.new, now), plan.new, others),
                                       alarm_changes(plan.new) + evidence_alarms(before, plan.new))
            self._save_status(after)
        if plan.conflict is not None:
            self._q("INSERT INTO conflicts (station, seq, hash, line, received_at, source) VALUES (?,?,?,?,?,?)",
                    (station, plan.conflict.seq, plan.conflict.hash, plan.conflict.line(), now, source))
        self.writer.defer(self._count_group, (tally(after), tally(None if created else before)), COUNTS_RANK)
        plan.highest = after.highest_seq
        return self._bound(station, unit, plan, wrong)

    def _bound(self, station: str, unit: str, plan: Plan, wrong: Rejection | None) -> Plan:
        """The plan once its new records' keys are bound to their chain, refused from ``wrong`` on if any."""
        if plan.new:
            self.bind_keys(station, unit, plan.new)
        if plan.rejection is None and wrong is not None:
            plan.rejection = wrong
        return plan

    def _store_unit_now(self, station: str, unit: str, records: Sequence[SignedRecord], now: float,
                        source: str, status: StationStatus) -> tuple[Plan, StationStatus]:
        """A unit's records (not the main unit's), under the station's lock: sequenced against its own chain.

        Returns the plan and the station's row after them (``status``, the locked row, moved by the unit's
        new counts and alarms, and saved if it changed).
        """
        self.writer.prepared().pop(station, None)  # its other units' sums change: read them again if asked
        before = self._locked_unit(station, unit)
        plan = sequence(records, before.highest_seq, before.last_hash,
                        self._stored_hashes(station, records, before.highest_seq, unit))
        after, station_after = before, status
        if plan.new:
            self.writer.defer(self._insert_records, (plan.new, now), LOG_RANK)
            after = fold(before, plan.new, now)
            changes = alarm_changes(plan.new) + evidence_alarms(before, plan.new)
            station_after = self._apply_alarms(with_unit_counts(status, before, after), changes, unit)
            if changes:
                open_here = self._q("SELECT COUNT(*) FROM alarms WHERE station = ? AND unit = ? "
                                    "AND acknowledged_at IS NULL", (station, unit)).fetchone()[0]
                after = replace(after, alarms_open=int(open_here))
            names = UNIT_COLUMNS[1:-1]
            self._q(f"UPDATE unit_chains SET {', '.join(f'{n} = ?' for n in names)} WHERE station = ? AND unit = ?",
                    [*(getattr(after, n) for n in names), station, unit])
            if station_after != status:
                self._save_status(station_after)
        if plan.conflict is not None:
            self._q("INSERT INTO conflicts (station, seq, hash, line, received_at, source) VALUES (?,?,?,?,?,?)",
                    (station, plan.conflict.seq, plan.conflict.hash, plan.conflict.line(), now, source))
        plan.highest = after.highest_seq
        return plan, station_after

    def _plus_other_units(self, before: StationStatus, after: StationStatus, new: Sequence[SignedRecord],
                          others_read: tuple[int, int] | None = None) -> StationStatus:
        """The main unit's fold ``after`` with the other units' own counts added to each count its records set.

        ``fold`` sets ``identified`` or ``ballots`` to the main unit's own value when one of its records carries
        it, and keeps the station's (combined) value otherwise; only the values it set need the other units'
        sums (``others_read``, read with the locked row; None: read them here, under the station's lock).
        Nothing is added once the close reconciled the units.
        """
        carried = {name for record in split_after_close(before, new)[0] if record.type in KNOWN
                   for name in ("identified", "ballots") if is_int(record.fields["body"].get(name))}
        if not carried or reconciled(after):
            return after
        if others_read is None:
            row = self._q("SELECT COALESCE(SUM(identified), 0), COALESCE(SUM(ballots), 0) FROM unit_chains "
                          "WHERE station = ?", (after.station,)).fetchone()
            others_read = (int(row[0]), int(row[1]))
        others = {"identified": others_read[0], "ballots": others_read[1]}
        return replace(after, **{name: getattr(after, name) + others[name] for name in carried
                                 if getattr(after, name) is not None and others[name]})

    def _locked_unit(self, station: str, unit: str) -> StationStatus:
        """The chain row of one unit of ``station`` (not its main unit), locked until the transaction ends."""
        sql = (f"SELECT {', '.join(STATUS_COLUMNS)} FROM unit_chains WHERE station = ? AND unit = ?"
               f"{self.dialect.for_update}")
        row = self._q(sql, (station, unit)).fetchone()
        if row is None:
            self._q("INSERT INTO unit_chains (station, unit, training) VALUES (?, ?, ?) "
                    "ON CONFLICT (station, unit) DO NOTHING", (station, unit, int(is_training_station(station))))
            row = self._q(sql, (station, unit)).fetchone()
        return StationStatus(*row)

    def _locked_status(self, station: str) -> tuple[StationStatus, bool, tuple[int, int] | None]:
        """The station's row, locked until the transaction ends, whether it was created just now, and the sums of
        its other units' own ``identified`` and ``ballots`` (None: not read).

        A row an earlier piece of work of this group changed is taken as that piece left it (its lock is this
        transaction's already, and its new values are written at the group's end): no statement at all.
        """
        pending = self._pending_status(station)
        if pending is not None:
            return pending, False, None
        row = self.writer.prepared().get(station)
        if row is not None:
            return StationStatus(*row[:-2]), False, (int(row[-2]), int(row[-1]))
        sql = (f"SELECT {', '.join(STATUS_COLUMNS)}, {OTHER_UNITS} FROM stations WHERE station = ?"
               f"{self.dialect.for_update}")
        row = self._q(sql, (station,)).fetchone()
        created = False
        if row is None:
            created = self._q("INSERT INTO stations (station, training) VALUES (?, ?) "
                              "ON CONFLICT (station) DO NOTHING",
                              (station, int(is_training_station(station)))).rowcount == 1
            row = self._q(sql, (station,)).fetchone()
        return StationStatus(*row[:-2]), created, (int(row[-2]), int(row[-1]))

    def lock_stations(self, stations: Sequence[str]) -> dict[str, Any]:
        """The rows (with their other units' sums) of a group's stations, locked in station order in one statement
        (``GroupWriter.prepare``); stations without a row yet are missing (``_locked_status`` creates them)."""
        found: dict[str, Any] = {}
        for start in range(0, len(stations), PREPARED_AT_ONCE):
            part = stations[start:start + PREPARED_AT_ONCE]
            rows = self._q(f"SELECT {', '.join(STATUS_COLUMNS)}, {OTHER_UNITS} FROM stations WHERE station IN "
                           f"({','.join('?' * len(part))}) ORDER BY station{self.dialect.for_update}", part).fetchall()
            found.update((str(row[0]), row) for row in rows)
        return found

    def _pending_status(self, station: str) -> StationStatus | None:
        """The station's row as an earlier piece of work of the current group left it, not yet written (None:
        no earlier piece changed it)."""
        statuses: list[StationStatus] = self.writer.deferred(self._save_statuses)
        return next((status for status in reversed(statuses) if status.station == station), None)


    def _stored_hashes(self, station: str, records: Sequence[SignedRecord], highest: int,
                       unit: str = MAIN_UNIT) -> dict[int, str]:
        """Hashes of the stored records of the chain a batch may repeat (none in the usual case of only new records).

        Stored includes the records of the chain accepted earlier in this group, not yet inserted.
        """
        low, high = min(r.seq for r in records), min(max(r.seq for r in records), highest)
        if low > high:
            return {}
        rows = self._q("SELECT seq, hash FROM records WHERE station = ? AND unit = ? AND seq BETWEEN ? AND ?",
                       (station, unit, low, high)).fetchall()
        found = {int(seq): str(h) for seq, h in rows}
        for pending, _ in self.writer.deferred(self._insert_records):
            found.update((r.seq, r.hash) for r in pending
                         if r.station == station and r.unit == unit and low <= r.seq <= high)
        return found


    def _insert_records(self, group: Sequence[tuple[Sequence[SignedRecord], float]]) -> None:
        """The new records of a whole group: appended to the public log in one go, then inserted with their leaves."""
        records = [(r, now) for batch, now in group for r in batch]
        first = self._append_leaves([merkle.leaf_hash(r.data) for r, _ in records], later=self._tree_update_later)
        self._insert_rows("records", ("station", "seq", "hash", "type", "at", "received_at", "leaf_index", "line",
                                      "key_id", "training", "unit"),
                          [(r.station, r.seq, r.hash, r.type, r.fields["at"], now, first + i, r.line(), r.key,
                            int(r.training), r.unit) for i, (r, now) in enumerate(records)])

    def _tree_update_later(self, sql: str, params: Sequence[Any]) -> None:
        """Send the ``tree`` row's update with the group's COMMIT (the row is locked already)."""
        self.writer.defer(self._run_statements, (sql, params), TREE_RANK)

    def _run_statements(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        for sql, params in statements:
            self._q(sql, params)

    def _count_group(self, changes: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
        """Move the counts once by the sum of a group's changes (each station's (now, was))."""
        now = [sum(column) for column in zip(*(n for n, _ in changes), strict=True)]
        was = [sum(column) for column in zip(*(w for _, w in changes), strict=True)]
        self._count(tuple(now), tuple(was))

    def _save_status(self, status: StationStatus) -> None:
        """Have the station's row written with ``status`` at the group's end (its lock is held already)."""
        self.writer.defer(self._save_statuses, status, STATUS_RANK)

    def _save_statuses(self, statuses: Sequence[StationStatus]) -> None:
        """The station rows a group changed, each as its last piece of work left it, in one ``executemany``
        (PostgreSQL: one pipeline, one round trip)."""
        last = {status.station: status for status in statuses}
        names = [*STATUS_COLUMNS[1:], *RANK_COLUMNS]
        self._many(f"UPDATE stations SET {', '.join(f'{n} = ?' for n in names)} WHERE station = ?",
                   [[*(getattr(s, n) for n in STATUS_COLUMNS[1:]), *ranks(s), s.station]
                    for _, s in sorted(last.items())])

    def _apply_alarms(self, status: StationStatus, changes: Sequence[AlarmChange],
                      unit: str = MAIN_UNIT) -> StationStatus:
        """Record the alarms raised and acknowledged in ``unit``'s journal; returns ``status`` with the station's
        count of open alarms (every unit's)."""
        station = status.station
        record_alarm_changes(self._q, station, unit, changes)
        if not changes:
            return status
        row = self._q("SELECT COUNT(*) FROM alarms WHERE station = ? AND acknowledged_at IS NULL", (station,))
        return replace(status, alarms_open=int(row.fetchone()[0]))

    def log_rejection(self, rejection: Rejection, now: float, source: str) -> None:
        """Write one rejection down; the table keeps the latest ``MAX_REJECTIONS`` rows (older ones are dropped)."""
        self.writer.write(lambda: self._log_rejection_now(rejection, now, source))

    def _log_rejection_now(self, rejection: Rejection, now: float, source: str) -> None:
        row = self._q("INSERT INTO rejections (received_at, station, seq, key_id, code, reason, source) "
                      "VALUES (?,?,?,?,?,?,?) RETURNING id",
                      (now, rejection.station, rejection.seq, rejection.key, rejection.code,
                       rejection.reason[:MAX_REASON], source[:MAX_REASON])).fetchone()
        self._q("DELETE FROM rejections WHERE id <= ?", (int(row[0]) - self.max_rejections,))


    def seqs_signed_by(self, station: str, key_id: str, after: int = 0, limit: int | None = None) -> list[int]:
        """Seqs above ``after`` of the station's stored records signed by ``key_id``, highest first.

        One range of the primary key (station, seq), filtered on the ``key_id`` column: no JSON is read.
        """
        sql = "SELECT seq FROM records WHERE station = ? AND key_id = ? AND seq > ? ORDER BY seq DESC"
        params: list[Any] = [station, key_id, after]
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, limit]
        return [int(seq) for (seq,) in self._q(sql, params).fetchall()]

    def highest_seq_signed_by(self, station: str, key_id: str) -> int:
        """The highest stored seq of ``station`` signed by ``key_id`` (0 when it signed none stored)."""
        found = self.seqs_signed_by(station, key_id, limit=1)
        return found[0] if found else 0


    def highest_seq(self, station: str, unit: str = MAIN_UNIT) -> int:
        """The highest seq stored of the station's chain of ``unit`` (its main unit's by default)."""
        if unit != MAIN_UNIT:
            row = self._q("SELECT highest_seq FROM unit_chains WHERE station = ? AND unit = ?",
                          (station, unit)).fetchone()
        else:
            row = self._q("SELECT highest_seq FROM stations WHERE station = ?", (station,)).fetchone()
        return int(row[0]) if row else 0

    def record_line(self, station: str, seq: int, unit: str = MAIN_UNIT) -> str | None:
        row = self._q("SELECT line FROM records WHERE station = ? AND unit = ? AND seq = ?",
                      (station, unit, seq)).fetchone()
        return str(row[0]) if row else None

    def units_of(self, station: str) -> list[tuple[str, StationStatus]]:
        """The chains of the station's units other than its main one: (unit id, the chain's status), by unit id."""
        rows = self._q(f"SELECT {', '.join(UNIT_COLUMNS)} FROM unit_chains WHERE station = ? ORDER BY unit",
                       (station,)).fetchall()
        return [(str(row[-1]), StationStatus(*row[:-1])) for row in rows]



    def alarms(self, station: str) -> list[dict[str, Any]]:
        """Every unit's alarms of the station: the main unit's (``unit`` "") first, then each other unit's."""
        rows = self._q("SELECT alarm, kind, detail, raised_at, acknowledged_at, unit FROM alarms WHERE station = ? "
                       "ORDER BY unit, alarm", (station,)).fetchall()
        names = ("alarm", "kind", "detail", "raised_at", "acknowledged_at", "unit")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def records_of(self, station: str, limit: int = 500) -> list[dict[str, Any]]:
        """The latest ``limit`` records of a station, newest first, with parsed bodies."""
        rows = self._q("SELECT seq, type, at, received_at, leaf_index, hash, line, unit FROM records "
                       "WHERE station = ? ORDER BY leaf_index DESC LIMIT ?",
                       (station, limit)).fetchall()
        return [{"seq": seq, "type": kind, "at": at, "received_at": received, "leaf_index": leaf, "hash": h,
                 "body": json.loads(line.partition(" ")[2])["body"], "unit": unit}
                for seq, kind, at, received, leaf, h, line, unit in rows]

    def reported_software(self, stations: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The software (version, hash) each station's latest zero or close report signed: its main unit's,
        or when only other units reported yet, the first of them by unit id. The hash is the running root file
        system's (``system_version``, ``system_hash``) when the report names it, else the code's
        (``software_version``, ``software_hash``): the whole system is what the CEC lists once units update."""
        return {station: chains[0] for station, chains in self.reported_software_of_units(stations).items()}

    def reported_software_of_units(self, stations: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """Per station, the software each of its units' chains last signed in a zero or close report (the main
        unit's first, then the others by unit id): every unit of a station is checked against the CEC's list."""
        if not stations:
            return {}
        marks = ",".join("?" * len(stations))
        rows = self._q(f"SELECT station, unit, line FROM records WHERE type IN ('polls_opened', 'polls_closed') "
                       f"AND station IN ({marks}) ORDER BY station, unit, seq", list(stations)).fetchall()
        found: dict[str, dict[str, tuple[str, str]]] = {}
        for station, unit, line in rows:
            body = json.loads(str(line).split(" ", 1)[1]).get("body", {})
            if "system_hash" in body:
                found.setdefault(str(station), {})[str(unit)] = (str(body["system_version"]), str(body["system_hash"]))
            elif "software_hash" in body:
                found.setdefault(str(station), {})[str(unit)] = (str(body["software_version"]),
                                                                 str(body["software_hash"]))
        return {station: [by_unit[u] for u in sorted(by_unit)] for station, by_unit in found.items()}

    def unit_conflicts(self, stations: Sequence[str]) -> dict[str, int]:
        """How many conflicts between two units of one station each station sent.

        Every unit signs its own ``unit_conflict`` record of a double admission once it holds both admissions,
        so one conflict comes in up to one record per unit: it is counted once, by the pair of admissions it
        names (each unit's id and seq, in either order).
        """
        if not stations:
            return {}
        marks = ",".join("?" * len(stations))
        rows = self._q(f"SELECT station, line FROM records WHERE type = 'unit_conflict' AND station IN ({marks})",
                       list(stations)).fetchall()
        seen: dict[str, set[tuple[tuple[str, int], ...]]] = {}
        for station, line in rows:
            body = json.loads(str(line).partition(" ")[2])["body"]
            pair = tuple(sorted([(str(body["first_unit"]), int(body["first_seq"])),
                                 (str(body["second_unit"]), int(body["second_seq"]))]))
            seen.setdefault(str(station), set()).add(pair)
        return {station: len(pairs) for station, pairs in seen.items()}

    def conflicts_of(self, station: str) -> list[dict[str, Any]]:
        rows = self._q("SELECT seq, hash, line, received_at, source FROM conflicts WHERE station = ? ORDER BY id",
                       (station,)).fetchall()
        return [dict(zip(("seq", "hash", "line", "received_at", "source"), row, strict=True)) for row in rows]

    def rejections(self, station: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT received_at, station, seq, key_id, code, reason, source FROM rejections"
        params: list[Any] = []
        if station is not None:
            sql, params = sql + " WHERE station = ?", [station]
        rows = self._q(sql + " ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
        return [dict(zip(("received_at", "station", "seq", "key_id", "code", "reason", "source"), row, strict=True))
                for row in rows]


def with_unit_counts(status: StationStatus, before: StationStatus, after: StationStatus) -> StationStatus:
    """The station's row once one of its other units' chains went from ``before`` to ``after``.

    Its combined ``identified`` and ``ballots`` move by what the unit's own counts moved; a station whose
    main unit has not sent a count yet takes the unit's as its own (``registered`` too: every unit of a
    station holds the same list). Nothing moves once the main unit's close reconciled the units.
    """
    if reconciled(status):
        return status
    changes: dict[str, Any] = {}
    for name in ("identified", "ballots"):
        old, new = getattr(before, name), getattr(after, name)
        if new is not None and new != old:
            changes[name] = (getattr(status, name) or 0) + new - (old or 0)
    if status.registered is None and after.registered is not None:
        changes["registered"] = after.registered
    return replace(status, **changes) if changes else status
