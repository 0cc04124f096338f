"""Signed software updates: the updater the appliance talks to, and how one update goes.

An ``Updater`` reads a bundle (``inspect``: size budget, signature against the
unit's keyring, ``compatible`` against the unit's hardware) and writes it into the
root slot the unit is not running from (``install``). Two backends, chosen by name
(``[update] backend`` in the station config): ``rauc`` (``device/updates/rauc.py``,
the only module that runs RAUC) and ``sim`` (``device/updates/sim.py``, a
simulated one for demonstration stations, refused in production mode).

``run_update`` is what ``Appliance.update`` does, wired in ``device/compose.py``:
inspect the bundle on the caller's thread, let the station's core decide and
journal (``device/core/update.py``: refused while the polls are open or paused),
then install outside the owner thread and journal the end. The design and the
boot side are in docs/updates.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from device.core import events as ev
from device.core.update import UpdateChecked, UpdateFinished, UpdateRefusal
from protocol.errors import UserError

MAX_BUNDLE_BYTES = 1 << 30
"""The size budget: a bundle over 1 GiB is refused before the updater reads it."""
BACKENDS = ("rauc", "sim")
SIMULATED = ("sim",)
DEFAULT_SYSTEM_CONF = "/etc/rauc/system.conf"


class UpdateError(UserError, RuntimeError):
    """An update was refused or failed; the message is the sentence the technician reads."""


class BundleRefused(UpdateError):
    """The updater refused a bundle before writing anything; ``reason`` is the journal's reason."""

    def __init__(self, reason: UpdateRefusal, detail: str, version: str = "", size: int = 0) -> None:
        self.reason, self.detail, self.version, self.size = reason, detail, version, size
        super().__init__(f"update refused ({reason.value}): {detail}; nothing was written")


@dataclass(frozen=True)
class Bundle:
    """A bundle as the updater read it: signed for this unit's keyring and hardware."""

    path: Path
    version: str
    compatible: str
    size: int
    signer: str


@dataclass(frozen=True)
class RunningSlot:
    """The root slot this unit booted from, as the updater recorded it when it wrote the slot: the slot's
    name (``A``/``B``), the version of the bundle written into it, and ``root_hash``, the SHA-256 of the
    root file system image written there (the image the CEC built and lists with the version). ``version``
    and ``root_hash`` are both "" for a slot the updater did not write (the image as flashed)."""

    slot: str
    version: str
    root_hash: str

    def report_fields(self) -> dict[str, str]:
        """The fields a unit signs into its readiness, zero and close reports (docs/protocol.md)."""
        return {"system_slot": self.slot, "system_version": self.version, "system_hash": self.root_hash}


class Updater(Protocol):
    """What the appliance asks of an updater, and nothing more."""

    @property
    def compatible(self) -> str:
        """This unit's hardware, as bundles name it (``pollbox-amd64``, ``pollbox-rpi``)."""
        ...

    def inspect(self, path: Path) -> Bundle:
        """Read ``path`` without writing anything; raises BundleRefused with the reason."""
        ...

    def install(self, path: Path) -> str:
        """Write the bundle into the inactive slot; returns the slot's name, raises UpdateError."""
        ...

    def booted(self) -> RunningSlot | None:
        """The slot running now (its version and hash "" when the updater did not write it), or None when the
        updater cannot say; never raises."""
        ...


def check_size(path: Path, budget: int) -> int:
    """The bundle's size, or BundleRefused when it is over ``budget`` or cannot be read."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BundleRefused(UpdateRefusal.UNREADABLE, f"cannot read {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise BundleRefused(UpdateRefusal.UNREADABLE, f"{path} is not a file")
    if size > budget:
        raise BundleRefused(UpdateRefusal.TOO_LARGE, f"the bundle is {size / 1e6:,.0f} MB, over the "
                            f"{budget / 1e6:,.0f} MB budget", size=size)
    return size


def build_updater(name: str, *, system_conf: Path, data_dir: Path, production: bool) -> Updater:
    """The updater backend named in the config; a simulated one is refused on a production unit."""
    if name == "rauc":
        from device.updates.rauc import RaucUpdater
        return RaucUpdater(system_conf)
    if name == "sim":
        if production:
            raise UpdateError("the simulated updater is refused in production mode ([update] backend = \"rauc\")")
        from device.updates.sim import SimUpdater
        return SimUpdater(data_dir / "update-sim")
    raise UpdateError(f"unknown updater backend {name!r}; known: {', '.join(BACKENDS)}")


Record = Callable[[Any], tuple[ev.Event, ...]]
"""Runs one input through the station's core on the owner thread and returns the events it journaled."""


def run_update(updater: Updater, path: Path, record: Record) -> dict[str, Any]:
    """Check, journal, install, journal: one update. Raises UpdateError with the reason when refused/failed."""
    try:
        bundle = updater.inspect(path)
    except BundleRefused as exc:
        checked = UpdateChecked(exc.version, "", exc.size, refusal=exc.reason, detail=exc.detail)
    else:
        checked = UpdateChecked(bundle.version, bundle.compatible, bundle.size, bundle.signer)
    answer = record(checked)[-1]
    if isinstance(answer, ev.UpdateRefused):
        raise UpdateError(f"update refused ({answer.reason}): {answer.detail}; nothing was written")
    try:
        slot = updater.install(path)
    except UpdateError as exc:
        record(UpdateFinished(checked.version, error=str(exc)))
        raise
    except Exception as exc:  # the journal says it failed whatever the cause; the log has the traceback
        record(UpdateFinished(checked.version, error=f"the updater failed: {exc}"))
        raise
    record(UpdateFinished(checked.version, slot=slot))
    return {"version": checked.version, "compatible": checked.compatible, "size": checked.size, "slot": slot,
            "next": "restart the unit: it boots the new slot once on trial and keeps it once the appliance is ready"}
