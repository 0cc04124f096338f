"""The composition root: ``build_appliance(config)`` builds a station unit from its validated config.

It is the one place that chooses backends (through ``device/hardware/registry.py``),
loads the station package and the keys (the record key from the backend
``[key] store`` names, ``device/signing``: a file or the TPM), opens the journal (``journal.db``, or
``training-journal.db`` for a training package, after ``device.training.check_unit``
has refused a unit holding the other kind of data) and attaches the
upstream outbox before anything is appended. Simulated parts are chosen by name
only; in simulation it also builds the ``SimControls`` a person uses to play
the station (scan, drop, open the lid, cut the link).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.appliance import Appliance
from device.config import Config
from device.hardware.interfaces import Clock
from device.package import StationPackage
from device.store.journal import Journal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from device.hardware.scanners.simcamera import SimCamera
    from device.signing import Signer
    from device.upstream.service import Upstream
    from device.upstream.uplink import Uplink


def build_appliance(config: Config, *, clock: Clock | None = None) -> Appliance:
    """Build the station from its validated ``Config``: the one composition root."""
    from device.hardware.clock import SystemClock
    from device.hardware.registry import build_box, build_scanner
    from device.identity import Identity, load_list_key, rules_from_package
    from device.package import load_package, public_key_from_b64
    from device.signing import load_signer
    from device.software import SystemIdentity
    from device.training import check_unit, journal_path
    from device.updates import build_updater

    own_clock = clock is None  # an injected clock means the caller drives every timer
    clock = clock or SystemClock()
    package = load_package(config.station_package, public_key_from_b64(config.cec_public_key),
                           config.election_id, clock.wall())
    config.data_dir.mkdir(parents=True, exist_ok=True)
    check_unit(config.data_dir, training=package.training)  # live and training data never on one unit
    list_key = load_list_key(config.data_dir / "list.key", package)  # refused if it does not open this list
    identity = Identity(list_key=list_key, rules=rules_from_package(package.payload))
    box = build_box(config, clock=clock, delays=config.delays, timers=own_clock)
    scanner = build_scanner(config, clock=clock)
    signer = load_signer(config.data_dir, config.key.store, config.key.tcti)  # a moved card or cleared TPM stops here
    _check_signer(config, package, signer)
    from device.keystate import KeyWatch
    key = KeyWatch(config.data_dir, signer, config.key.store, config.cec_public_key)
    journal = Journal(journal_path(config.data_dir, package.training), package.station_id)
    updater = build_updater(config.update.backend, system_conf=Path(config.update.system_conf),
                            data_dir=config.data_dir, production=not config.simulation)
    upstream, link = _build_upstream(config, package, journal, clock, signer, SystemIdentity(updater))
    sim = None
    if config.simulation:
        from device.hardware.sim.controls import SimControls
        camera = _CameraOnDemand(lambda: _sim_camera(config))
        sim = SimControls(box=box, scanner=scanner, camera=camera, link=link if config.uplink == "sim" else None)
    app = Appliance(package=package, journal=journal, box=box, scanner=scanner, identity=identity, clock=clock,
                    delays=config.delays, data_dir=config.data_dir, mode=config.mode, upstream=upstream, sim=sim,
                    backup_dir=config.backup_dir, unit_sync=_build_unit_sync(config, package, clock, signer),
                    updater=updater, key_watch=key)
    if sim is not None:
        sim.attach(app)
    return app


def _build_upstream(config: Config, package: StationPackage, journal: Journal,
                    clock: Clock, signer: Signer, software: Mapping[str, str]) -> tuple[Upstream, Uplink]:
    """The outbox and uplink; attached to the journal before anything is appended. ``software`` is what the
    reports say runs (``device/software.py``)."""
    from device.package import PackageError, public_key_from_b64
    from device.sync.units import upstream_unit
    from device.upstream.service import Upstream
    from device.upstream.switchable import SwitchableUplink
    from device.upstream.uplink import HttpUplink

    unit = upstream_unit(package.payload, config.unit_id)  # "" unless a unit other than the station's main one
    http = HttpUplink.from_package(package.payload, station=package.station_id, mode=config.mode, unit=unit)
    link = SwitchableUplink(http, mode=config.mode) if config.uplink == "sim" else http
    try:
        receiver_key = public_key_from_b64(str(package.payload.get("receiver", {}).get("public_key", "")))
    except PackageError:
        raise PackageError("the package's receiver.public_key is not a base64 Ed25519 key; "
                           "the unit could not verify the CEC's receipts") from None
    upstream = Upstream(journal=journal, key=signer, station_id=package.station_id,
                        receiver_public_key=receiver_key, uplink=link, clock=clock, delays=config.delays,
                        probe_every=config.delays.uplink_probe_every, software=software, unit=unit)
    upstream.attach()
    return upstream, link


def _check_signer(config: Config, package: StationPackage, signer: Signer) -> None:
    """A unit of a station of several units holds the key the package enrolled for it, a key file's (Ed25519)
    or its TPM's (P-256), and the package names that key's algorithm; refused before the journal opens."""
    from device.package import PackageError
    from device.sync.units import station_units

    if package.payload.get("units") is None and not config.unit_id:
        return
    try:
        station_units(package.payload, package.voters, config.unit_id, signer.public_key())
    except PackageError:
        signer.close()
        raise


def _build_unit_sync(config: Config, package: StationPackage, clock: Clock, signer: Signer) -> Any:
    """The sync with the station's other units, when its package lists several (``device/sync/``)."""
    from device.sync.service import UnitSync
    from device.sync.units import station_units

    own = config.unit_id
    if package.payload.get("units") is None and not own:
        return None
    units = station_units(package.payload, package.voters, own, signer.public_key())
    if units is None:
        return None
    return UnitSync(units=units, key=signer, wall=clock.wall, delays=config.delays,
                    listen=config.unit_listen, simulation=config.simulation, discovery=config.unit_discovery)


def _sim_camera(config: Config) -> SimCamera:
    from device.hardware.registry import build_decoder
    from device.hardware.scanners.simcamera import SimCamera
    return SimCamera(decoder=build_decoder(config))


class _CameraOnDemand:
    """The simulated camera, built the first time a document is shown to it.

    Its decoder libraries (zxing-cpp, NumPy, Pillow) cost about 20 MB of memory;
    a simulated station that is only scanned by hand never loads them.
    """

    def __init__(self, build: Any) -> None:
        self._build = build
        self._camera: Any = None
        self._callbacks: tuple[Any, Any] | None = None

    def start(self, on_read: Any, on_state: Any) -> None:
        self._callbacks = (on_read, on_state)

    def feed_image(self, path: Path) -> Any:
        if self._camera is None:
            self._camera = self._build()
            if self._callbacks is not None:
                self._camera.start(*self._callbacks)
        return self._camera.feed_image(path)

    def stop(self) -> None:
        if self._camera is not None:
            self._camera.stop()
