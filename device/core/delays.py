"""Every delay the station logic depends on, named and documented in one place.

Values are seconds. The composition root may override them from config (for
example a longer arm timeout for a station with an accessible-voting booth);
tests advance a fake clock by exactly these amounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _delay(seconds: float, doc: str) -> Any:
    """A named delay: its default in seconds and the sentence that says what it waits for."""
    return field(default=seconds, metadata={"doc": doc})


@dataclass(frozen=True)
class Delays:
    """The named delays. Each field says what it waits for (``documented()``)."""

    arm_timeout: float = _delay(90.0,
        "How long the slot stays open for an admitted voter before it locks again.")
    double_drop_window: float = _delay(10.0,
        "After a ballot consumed a token, a further drop within this window is a second ballot on one identification; later, it is a drop with no token.")
    jam_after: float = _delay(3.0,
        "How long the drop sensor may stay blocked before the slot counts as jammed.")
    duplicate_read_window: float = _delay(4.0,
        "A second read of the same document within this window is the same scan (the 1D barcode on the back of an ID card, a double trigger) and counts once.")
    heartbeat_timeout: float = _delay(5.0,
        "If the box driver hears no heartbeat from the core for this long, it locks the slot.")
    heartbeat_interval: float = _delay(1.0,
        "How often the appliance sends the box driver a heartbeat.")
    debounce: float = _delay(0.02,
        "An input edge must hold this long to count (drop sensor, lid switch).")
    decision_display: float = _delay(4.0,
        "How long a check-in decision stays on the chair's screen.")
    uplink_backoff_base: float = _delay(1.0,
        "First retry delay of the uplink; doubles on each failure (full jitter).")
    uplink_backoff_cap: float = _delay(300.0,
        "Longest wait between two uplink attempts.")
    uplink_probe_every: float = _delay(15.0,
        "While the link is down, how often a cheap receipt request checks whether it is back (jittered).")
    backup_every: float = _delay(60.0,
        "How often the journal is copied to the backup directory (a USB stick kept in the unit), when one is configured.")
    turnout_snapshot_every: float = _delay(3600.0,
        "How often a turnout snapshot record is produced while polls are open.")
    count_update_every: float = _delay(60.0,
        "While polls are open, a changed count (voters identified, ballots) is sent upstream as a turnout snapshot at most this often, so the CEC's overview follows the day.")
    pin_lockout_base: float = _delay(30.0,
        "Lock-out after five wrong chair PINs; doubles with each further failure.")
    scanner_restart_cap: float = _delay(60.0,
        "Longest wait before a scan source whose reading loop failed is restarted; the wait starts at the source's retry interval and doubles with each failure in a row.")
    journal_mark_sync: float = _delay(1.0,
        "Longest time the journal's high-water mark (journal.mark) stays written but not yet fsynced after an append; the appliance also syncs it every tick.")
    request_timeout: float = _delay(30.0,
        "How long a chair action or command waits for the station's owner thread before it is told the station is stuck.")
    owner_stall_report: float = _delay(5.0,
        "How long a request may wait for the station's owner thread before the debug log gets every thread's stack (once per request; the request keeps waiting up to request_timeout).")

    unit_clock_drift: float = _delay(120.0,
        "How far another unit's clock may differ from this unit's (as its records and sync answers show) before an alarm.")
    sync_every: float = _delay(2.0,
        "How often a unit pulls the other units' new records over the station LAN.")
    sync_timeout: float = _delay(5.0,
        "How long a pull from another unit may take before the unit counts as unreachable for now.")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"delay {f.name} must be a positive number of seconds, got {value!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names of all delays, for config validation."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def documented(cls) -> tuple[tuple[str, float, str], ...]:
        """(name, default seconds, what it waits for) of every delay, for the generated docs."""
        return tuple((f.name, float(f.default), str(f.metadata["doc"])) for f in fields(cls))  # type: ignore[arg-type]


DEFAULT_DELAYS = Delays()
