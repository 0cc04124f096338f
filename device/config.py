"""The station's config file: one TOML file per unit, validated at start-up.

The schema is typed (``device.configschema``): each table of the file is a
frozen dataclass whose fields carry their own check and hint, and each hardware
backend has
its own settings dataclass (``CameraSettings``, ``KeyboardSettings``,
``SerialSettings``, ``SmartBoxSettings``, the ``PinMap`` of the GPIO box).
Every problem in the file is collected and reported at once, each with its key
and a hint ("did you mean ...?" for misspelt keys), including the keys of the
backend tables. Paths are resolved relative to the config file.
docs/configuration.md lists every key.

Wiring: ``device.cli`` calls ``load_config``; the composition root
(``device.appliance.build_appliance``) takes the resulting ``Config`` and
``device.hardware.registry`` builds the named backends from its settings.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from device import configschema as cs
from device.core.delays import Delays
from device.hardware.boxes.pins import DEFAULT_PINS, PinMap
from device.hardware.decoders import DEFAULT_FORMATS, FORMATS
from device.hardware.scanners.keymaps import LAYOUTS
from device.signing import DEFAULT_TCTI
from device.signing import STORES as KEY_STORES
from device.updates import BACKENDS as UPDATERS
from device.updates import DEFAULT_SYSTEM_CONF
from device.updates import SIMULATED as SIMULATED_UPDATERS
from protocol.errors import UserError

MODES = ("simulation", "production")
SCANNERS = ("sim", "simcamera", "camera", "picamera", "keyboard", "serial")
DECODERS = ("zxing", "zbar")
BOXES = ("sim", "gpio", "smartbox")
UPLINKS = ("https", "sim")
GPIO_LIBRARIES = ("rpi-gpio", "rpi-lgpio")
"""The two implementations of the ``RPi.GPIO`` module the gpio ballot box runs on."""
CAMERAS = ("simcamera", "camera", "picamera")
"""Scanners that decode frames, so build the decoder (the simulation builds the simulated camera too)."""
ZBAR_READS = ("qr", "code128", "code39", "ean13", "itf")
"""The formats the zbar decoder reads (its module's table; a test keeps the two in step)."""
SIMULATED = {"scanner": ("sim", "simcamera"), "ballot_box": ("sim",)}
"""Backends that only simulate hardware: chosen by name, refused in production mode."""
SECRET_KEY_BYTES = 32
"""The least length of the chair screen's session signing key (``web_ui.secret.KEY_BYTES``)."""
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FIRST_CAMERA: int | str = 0
"""The default V4L2 camera: /dev/video0."""


class ConfigError(UserError):
    """The config has problems; ``problems`` lists each as 'key: what is wrong (hint)'."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the station config:\n{lines}")


def _video_device(v: Any) -> int | str:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str) and v.strip():
        return v
    raise ValueError("must be a camera index (0 for /dev/video0) or a device path")


def _pins(v: Any) -> PinMap:
    return PinMap.from_config(v)  # its ValueError names the key at fault


def _delays(key: str, table: Any, problems: list[str]) -> Delays:
    if not isinstance(table, dict):
        problems.append(f"{key}: must be a table of named delays in seconds")
        return Delays()
    known = list(Delays.names())
    good = {}
    for name, value in table.items():
        if name not in known:
            problems.append(f"{key}." + cs.unknown_key(name, known))
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"{key}.{name}: must be a positive number of seconds, got {value!r}")
        else:
            good[name] = float(value)
    return Delays(**good)


# The schema ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CameraSettings:
    """``[hardware.camera]``: the V4L2 camera (``camera``) or the Pi camera (``picamera``), and
    the barcode formats the decoder looks for in its frames (every camera, the simulated one too)."""

    device: int | str = cs.setting(FIRST_CAMERA, _video_device, "the V4L2 camera: an index or /dev/video path")
    width: int = cs.setting(640, cs.int_from(160, 4096, "a width in pixels"))
    height: int = cs.setting(480, cs.int_from(120, 4096, "a height in pixels"))
    fps: int = cs.setting(15, cs.int_from(1, 60, "frames per second"))
    formats: tuple[str, ...] = cs.setting(DEFAULT_FORMATS, cs.names_from(FORMATS, "barcode formats"))


@dataclass(frozen=True)
class KeyboardSettings:
    """``[hardware.keyboard]``: a handheld scanner in keyboard mode (evdev, grabbed)."""

    device: str = cs.setting("", cs.text, "a /dev/input/by-id path or part of the scanner's device name")
    layout: str = cs.setting("us", cs.one_of(tuple(LAYOUTS)), "the keyboard layout the scanner is set to")


@dataclass(frozen=True)
class SerialSettings:
    """``[hardware.serial]``: a handheld scanner in serial mode (USB CDC-ACM or UART)."""

    port: str = cs.setting("/dev/ttyACM0", cs.text, "the scanner's serial device")
    baudrate: int = cs.setting(9600, cs.int_from(300, 4_000_000, "a baud rate"))


@dataclass(frozen=True)
class SmartBoxSettings:
    """``[hardware.smartbox]``: the Pico ballot box unit on the Pi's UART."""

    port: str = cs.setting("/dev/serial0", cs.text, "the UART wired to the smart box")
    baudrate: int = cs.setting(115200, cs.int_from(300, 4_000_000, "a baud rate"), "the firmware speaks 115200")


@dataclass(frozen=True)
class GpioSettings:
    """``[hardware.gpio]``: which implementation of the ``RPi.GPIO`` module drives the header.

    ``rpi-gpio`` is the classic RPi.GPIO (Pi 3, 4, Zero 2: ``pollbox[pi]``); ``rpi-lgpio`` is the
    same module over the kernel's GPIO character device (any Pi, the Pi 5 included: ``pollbox[pi5]``).
    ``chip`` picks the /dev/gpiochipN rpi-lgpio opens; -1 leaves the choice to rpi-lgpio.
    """

    library: str = cs.setting("rpi-gpio", cs.one_of(GPIO_LIBRARIES),
                              "rpi-gpio on a Pi 3/4/Zero 2, rpi-lgpio on a Pi 5 (or any Pi)")
    chip: int = cs.setting(-1, cs.int_from(-1, 63, "a /dev/gpiochip number, or -1 for rpi-lgpio's choice"))


@dataclass(frozen=True)
class HardwareSettings:
    """``[hardware]``: which backend drives each part, and each backend's own table."""

    scanner: str = cs.setting("sim", cs.one_of(SCANNERS), "which document reader is attached")
    decoder: str = cs.setting("zxing", cs.one_of(DECODERS),
                              "zxing reads QR, Code128, DataMatrix and PDF417; zbar no PDF417")
    ballot_box: str = cs.setting("sim", cs.one_of(BOXES),
                                 "gpio for a box wired to the Pi header, smartbox for a Pico unit")
    camera: CameraSettings = cs.table(CameraSettings)
    keyboard: KeyboardSettings = cs.table(KeyboardSettings)
    serial: SerialSettings = cs.table(SerialSettings)
    smartbox: SmartBoxSettings = cs.table(SmartBoxSettings)
    pins: PinMap = cs.setting(DEFAULT_PINS, _pins, names_key=True)
    gpio: GpioSettings = cs.table(GpioSettings)


@dataclass(frozen=True)
class UplinkSettings:
    transport: str = cs.setting("https", cs.one_of(UPLINKS), "https to the CEC receiver; sim only in simulation")


@dataclass(frozen=True)
class WebSettings:
    host: str = cs.setting("127.0.0.1", cs.host, "the chair's screen listens here; keep 127.0.0.1")
    port: int = cs.setting(8080, cs.int_from(1, 65535, "a TCP port number"))
    allow_remote: bool = cs.setting(False, cs.flag, "true lets the screen listen beyond the unit itself")


@dataclass(frozen=True)
class LogSettings:
    level: str = cs.setting("INFO", cs.one_of(LEVELS))


@dataclass(frozen=True)
class BackupSettings:
    directory: str = cs.setting("", cs.text, "where the journal is copied every backup_every seconds: a USB stick "
                                "kept in the unit, so a replacement unit can carry on")


@dataclass(frozen=True)
class UnitSettings:
    """``[unit]``: which of the station's units this is, for a station whose package lists several."""

    id: str = cs.setting("", cs.text, "this unit's id as the station package lists it, e.g. desk-2")
    listen: str = cs.setting("", cs.text, "host:port of this unit's sync server on the station LAN "
                             "(default: the address the package gives this unit)")
    discovery: str = cs.setting("static", cs.one_of(("static", "mdns")),
                                'mdns: also announce this unit and find the others by multicast DNS (zeroconf); '
                                "static: the package's addresses only")


@dataclass(frozen=True)
class KeySettings:
    """``[key]``: where the unit's record key is kept (``device/signing``, docs/keys.md)."""

    store: str = cs.setting("file", cs.one_of(KEY_STORES), 'file: the Ed25519 key file on the data partition; '
                            'tpm: a P-256 key made inside the unit\'s TPM 2.0')
    tcti: str = cs.setting(DEFAULT_TCTI, cs.text, "how the TPM is reached (store = \"tpm\"), e.g. "
                           "device:/dev/tpmrm0")


@dataclass(frozen=True)
class UpdateSettings:
    """``[update]``: the software updater (``device/updates``, docs/updates.md)."""

    backend: str = cs.setting("rauc", cs.one_of(UPDATERS), "rauc: signed bundles into the other root slot; "
                              "sim: a simulated updater (simulation only)")
    system_conf: str = cs.setting(DEFAULT_SYSTEM_CONF, cs.text, "the RAUC config naming the slots, the keyring "
                                  "and the unit's compatible")


@dataclass(frozen=True)
class _File:
    """The whole file: the required keys, then one table per section."""

    mode: str = cs.required(cs.one_of(MODES), 'use "production" on a station unit, "simulation" for demos and tests')
    election_id: str = cs.required(cs.text, "the election id printed on the station package, e.g. kg-2026-presidential")
    cec_public_key: str = cs.required(cs.text,
                                      "base64 of the CEC's 32-byte Ed25519 package key, from the technician kit")
    station_package: str = cs.required(cs.text, "path of the CEC-signed station package file")
    data_dir: str = cs.required(cs.text, "directory for the journal and keys, on the writable data partition")
    hardware: HardwareSettings = cs.table(HardwareSettings)
    uplink: UplinkSettings = cs.table(UplinkSettings)
    web: WebSettings = cs.table(WebSettings)
    log: LogSettings = cs.table(LogSettings)
    backup: BackupSettings = cs.table(BackupSettings)
    unit: UnitSettings = cs.table(UnitSettings)
    key: KeySettings = cs.table(KeySettings)
    update: UpdateSettings = cs.table(UpdateSettings)
    delays: Delays = cs.custom(Delays, _delays)


@dataclass(frozen=True)
class Config:
    path: Path
    mode: str
    election_id: str
    cec_public_key: str
    station_package: Path
    data_dir: Path
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    uplink: str = "https"
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_allow_remote: bool = False
    log_level: str = "INFO"
    backup_dir: Path | None = None
    delays: Delays = field(default_factory=Delays)
    unit_id: str = ""
    """``[unit] id``: this unit's id among the station's units ("" for a one-unit station)."""
    unit_listen: str = ""
    unit_discovery: str = "static"
    """``[unit] discovery``: ``static`` (the package's addresses) or ``mdns`` (those, then mDNS; docs/units.md)."""
    key: KeySettings = field(default_factory=KeySettings)
    """``[key]``: the record key's backend (``file`` or ``tpm``) and the TPM's TCTI."""
    update: UpdateSettings = field(default_factory=UpdateSettings)
    """``[update]``: the updater's backend (``rauc`` or ``sim``) and RAUC's config."""

    @property
    def simulation(self) -> bool:
        return self.mode == "simulation"

    @property
    def scanner(self) -> str:
        """``hardware.scanner``: the document source's backend name."""
        return self.hardware.scanner

    @property
    def decoder(self) -> str:
        """``hardware.decoder``: the barcode decoder's backend name."""
        return self.hardware.decoder

    @property
    def ballot_box(self) -> str:
        """``hardware.ballot_box``: the ballot box unit's backend name."""
        return self.hardware.ballot_box

    @property
    def web_dir(self) -> Path:
        """The chair screen's instance folder: its session key and the chair PIN."""
        return self.data_dir / "web"



# Checks across keys and against the disk -----------------------------------------------

def _production(doc: _File, problems: list[str]) -> None:
    """Simulated parts and the simulated uplink are refused on a station unit.

    A key already reported (misspelt backend name, a section that is not a table) stands at its
    default, which is simulated: it is not reported twice.
    """
    reported = {p.split(":")[0] for p in problems}
    checks = [(f"hardware.{part}", getattr(doc.hardware, part) in names,
               f"simulated hardware is refused in production mode (name the real {part.replace('_', ' ')} backend)")
              for part, names in SIMULATED.items()]
    checks.append(("uplink.transport", doc.uplink.transport == "sim",
                   "the simulated uplink is refused in production mode (use https)"))
    checks.append(("update.backend", doc.update.backend in SIMULATED_UPDATERS,
                   "the simulated updater is refused in production mode (use rauc)"))
    for key, simulated, why in checks:
        if simulated and key not in reported and key.split(".")[0] not in reported:
            problems.append(f"{key}: {why}")


def _decoder(doc: _File, problems: list[str]) -> None:
    """zbar cannot read every format; said here, with the rest, when a camera will use the decoder."""
    hw = doc.hardware
    if hw.decoder != "zbar" or (hw.scanner not in CAMERAS and doc.mode != "simulation"):
        return
    cannot = [f for f in hw.camera.formats if f not in ZBAR_READS]
    if cannot:
        problems.append(f"hardware.camera.formats: the zbar decoder cannot read {', '.join(cannot)} (the default "
                        f"formats include them); use decoder = \"zxing\", or list formats from {', '.join(ZBAR_READS)}")


def _web(web: WebSettings, problems: list[str]) -> None:
    """The chair's screen is for the unit's own touchscreen: remote listening only when asked for."""
    if not web.allow_remote and not cs.is_loopback(web.host):
        problems.append(f"web.host: {web.host!r} would let other machines reach the chair's screen; "
                        "use 127.0.0.1, or set web.allow_remote = true if the network is trusted")


def _a_directory(key: str, path: Path, problems: list[str]) -> bool:
    """Whether ``path`` is a directory, or can be made one (no file on the way to it); if not, says so."""
    for part in (path, *path.parents):
        if part.exists():
            if part.is_dir():
                return True
            what = "is a file" if part == path else f"is under {part}, which is a file"
            problems.append(f"{key}: {path} {what}, not a directory (name a directory, or move the file away)")
            return False
    return True


def _secret_key(web_dir: Path, problems: list[str]) -> None:
    """A session key left short (copied by hand, cut by a full disk) would make the chair's login guessable."""
    path = web_dir / "secret_key"
    try:
        size = len(path.read_bytes())
    except FileNotFoundError:
        return  # made at first start
    except OSError as exc:
        problems.append(f"data_dir: the screen's session key {path} cannot be read ({exc.strerror})")
        return
    if size < SECRET_KEY_BYTES:
        problems.append(f"data_dir: the screen's session key {path} is {size} bytes, shorter than the "
                        f"{SECRET_KEY_BYTES} it must have; delete the file and pollbox makes a new one at start "
                        "(the chair logs in again)")


BACKUP_SETTING = "backup.toml"
"""On the data partition: ``[backup] directory``, set by ``pollbox-provision unit backup`` on a unit whose
station config is on the read-only root. A ``[backup] directory`` in the station config takes precedence."""


def _backup_on_data(data_dir: Path, problems: list[str]) -> Path | None:
    path = data_dir / BACKUP_SETTING
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{path}: the backup setting cannot be read ({exc}); set it again with "
                        "'pollbox-provision unit backup'")
        return None
    directory = doc.get("backup", {}).get("directory") if isinstance(doc.get("backup"), dict) else None
    if not isinstance(directory, str) or not directory.startswith("/"):
        problems.append(f"{path}: [backup] directory must be an absolute path; set it again with "
                        "'pollbox-provision unit backup'")
        return None
    return Path(directory)


def parse_config(path: Path, doc: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; raises ConfigError with every problem."""
    problems: list[str] = []
    good = cs.read_table(_File, "", doc, problems)
    missing = {f.name: "" for f in fields(_File) if cs.is_required(f)}
    read = _File(**{**missing, **good})  # a missing key is reported; "" stands in for the checks below
    base = path.parent
    data_dir = (base / read.data_dir).resolve()
    backup_dir = (base / read.backup.directory).resolve() if read.backup.directory else None
    if read.mode == "production":
        _production(read, problems)
    _decoder(read, problems)
    _web(read.web, problems)
    if "data_dir" in good and _a_directory("data_dir", data_dir, problems):
        _secret_key(data_dir / "web", problems)
        if backup_dir is None:
            backup_dir = _backup_on_data(data_dir, problems)
    if backup_dir is not None:
        _a_directory("backup.directory", backup_dir, problems)
    if problems:
        raise ConfigError(path, problems)
    return Config(
        path=path, mode=read.mode, election_id=read.election_id, cec_public_key=read.cec_public_key,
        station_package=(base / read.station_package).resolve(), data_dir=data_dir, hardware=read.hardware,
        uplink=read.uplink.transport, web_host=read.web.host, web_port=read.web.port,
        web_allow_remote=read.web.allow_remote, log_level=read.log.level, backup_dir=backup_dir,
        delays=read.delays, unit_id=read.unit.id, unit_listen=read.unit.listen, key=read.key,
        update=read.update, unit_discovery=read.unit.discovery)


def load_config(path: Path) -> Config:
    """Read and validate the station config at ``path``."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["file not found (pass --config PATH, or run 'make run' for a demo station)"]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, ["the file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    return parse_config(path, doc)
