"""The station's config file: one TOML file per unit, validated at start-up.

The schema is typed: each table of the file is a frozen dataclass whose fields
carry their own check and hint (``_setting``), and each hardware backend has
its own settings dataclass (``CameraSettings``, ``KeyboardSettings``,
``SerialSettings``, ``SmartBoxSettings``, the ``PinMap`` of the GPIO box).
Every problem in the file is collected and reported at once, each with its key
and a hint ("did you mean ...?" for misspelt keys), including the keys of the
backend tables. Paths are resolved relative to the config file. Secrets never
appear in ``describe()``: they show as ``********``. docs/configuration.md
lists every key.

Wiring: ``device.cli`` calls ``load_config``; the composition root
(``device.appliance.build_appliance``) takes the resulting ``Config`` and
``device.hardware.registry`` builds the named backends from its settings.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from device.core.delays import Delays
from device.hardware.boxes.pins import DEFAULT_PINS, PinMap
from device.hardware.decoders import DEFAULT_FORMATS, FORMATS
from device.hardware.scanners.keymaps import LAYOUTS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MODES = ("simulation", "production")
SCANNERS = ("sim", "simcamera", "camera", "picamera", "keyboard", "serial")
DECODERS = ("zxing", "zbar")
BOXES = ("sim", "gpio", "smartbox")
UPLINKS = ("https", "sim")
SIMULATED = {"scanner": ("sim", "simcamera"), "ballot_box": ("sim",)}
"""Backends that only simulate hardware: chosen by name, refused in production mode."""
SECRET_KEYS = {"cec_public_key"}
SECRET_KEY_BYTES = 32
"""The least length of the chair screen's session signing key (``web_ui.secret.KEY_BYTES``)."""
LOOPBACK_NAMES = ("localhost",)
FIRST_CAMERA: int | str = 0
"""The default V4L2 camera: /dev/video0."""

T = TypeVar("T")
S = TypeVar("S", bound="DataclassInstance")
Parse = Callable[[Any], T]
"""Turns a raw TOML value into a setting, or raises ValueError('must be ...')."""


class ConfigError(Exception):
    """The config has problems; ``problems`` lists each as 'key: what is wrong (hint)'."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the station config:\n{lines}")


# Value checks -------------------------------------------------------------------------

class _Wrong(ValueError):
    """A value that is not one of the known names; ``near`` is the likeliest meant, if any."""

    def __init__(self, message: str, given: str, known: tuple[str, ...]) -> None:
        super().__init__(message)
        matches = difflib.get_close_matches(given, known, n=1)
        self.near = matches[0] if matches else None


def _one_of(options: tuple[str, ...]) -> Parse[str]:
    def parse(v: Any) -> str:
        if v not in options:
            raise _Wrong(f"must be one of {', '.join(options)}", v if isinstance(v, str) else "", options)
        return str(v)
    return parse


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


def _int_from(low: int, high: int, what: str) -> Parse[int]:
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValueError(f"must be {what} from {low} to {high}")
        return v
    return parse


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _level(v: Any) -> str:
    if v not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return str(v)


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def _host(v: Any) -> str:
    text = _text(v)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOSTNAME.fullmatch(text) or len(text) > 253:
            raise ValueError("must be an IP address or a host name") from None
    return text


def _video_device(v: Any) -> int | str:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str) and v.strip():
        return v
    raise ValueError("must be a camera index (0 for /dev/video0) or a device path")


def _layout(v: Any) -> str:
    return _one_of(tuple(LAYOUTS))(v)


def _formats(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise ValueError(f"must be a non-empty list of barcode formats ({', '.join(FORMATS)})")
    for name in v:
        if name not in FORMATS:
            raise _Wrong(f"lists {name!r}, not one of the barcode formats {', '.join(FORMATS)}", name, FORMATS)
    return tuple(dict.fromkeys(v))


def _pins(v: Any) -> PinMap:
    return PinMap.from_config(v)  # its ValueError names the key at fault


def _setting(default: T, parse: Parse[T], hint: str = "", *, names_key: bool = False) -> T:
    """A field of a settings table: its default, its check and the hint shown with a problem.

    ``names_key`` says the check's ValueError already names the key (a nested table parsed whole).
    """
    return field(default=default, metadata={"parse": parse, "hint": hint, "names_key": names_key})


def _required(parse: Parse[T], hint: str) -> T:
    """A key every file must have."""
    required: T = field(metadata={"parse": parse, "hint": hint, "names_key": False})
    return required


def _table(cls: type[S], hint: str = "") -> S:
    """A sub-table read with its own typed schema."""
    return field(default_factory=cls, metadata={"table": cls, "hint": hint})


# The schema ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CameraSettings:
    """``[hardware.camera]``: the V4L2 camera (``camera``) or the Pi camera (``picamera``), and
    the barcode formats the decoder looks for in its frames (every camera, the simulated one too)."""

    device: int | str = _setting(FIRST_CAMERA, _video_device, "the V4L2 camera: an index or /dev/video path")
    width: int = _setting(640, _int_from(160, 4096, "a width in pixels"))
    height: int = _setting(480, _int_from(120, 4096, "a height in pixels"))
    fps: int = _setting(15, _int_from(1, 60, "frames per second"))
    formats: tuple[str, ...] = _setting(DEFAULT_FORMATS, _formats, "the barcodes the station expects")


@dataclass(frozen=True)
class KeyboardSettings:
    """``[hardware.keyboard]``: a handheld scanner in keyboard mode (evdev, grabbed)."""

    device: str = _setting("", _text, "a /dev/input/by-id path or part of the scanner's device name")
    layout: str = _setting("us", _layout, "the keyboard layout the scanner is set to")


@dataclass(frozen=True)
class SerialSettings:
    """``[hardware.serial]``: a handheld scanner in serial mode (USB CDC-ACM or UART)."""

    port: str = _setting("/dev/ttyACM0", _text, "the scanner's serial device")
    baudrate: int = _setting(9600, _int_from(300, 4_000_000, "a baud rate"))


@dataclass(frozen=True)
class SmartBoxSettings:
    """``[hardware.smartbox]``: the Pico ballot box unit on the Pi's UART."""

    port: str = _setting("/dev/serial0", _text, "the UART wired to the smart box")
    baudrate: int = _setting(115200, _int_from(300, 4_000_000, "a baud rate"), "the firmware speaks 115200")


@dataclass(frozen=True)
class HardwareSettings:
    """``[hardware]``: which backend drives each part, and each backend's own table."""

    scanner: str = _setting("sim", _one_of(SCANNERS), "which document reader is attached")
    decoder: str = _setting("zxing", _one_of(DECODERS),
                            "zxing reads QR, Code128, DataMatrix and PDF417; zbar no PDF417")
    ballot_box: str = _setting("sim", _one_of(BOXES),
                               "gpio for a box wired to the Pi header, smartbox for a Pico unit")
    camera: CameraSettings = _table(CameraSettings)
    keyboard: KeyboardSettings = _table(KeyboardSettings)
    serial: SerialSettings = _table(SerialSettings)
    smartbox: SmartBoxSettings = _table(SmartBoxSettings)
    pins: PinMap = _setting(DEFAULT_PINS, _pins, names_key=True)


@dataclass(frozen=True)
class UplinkSettings:
    transport: str = _setting("https", _one_of(UPLINKS), "https to the CEC receiver; sim only in simulation")


@dataclass(frozen=True)
class WebSettings:
    host: str = _setting("127.0.0.1", _host, "the chair's screen listens here; keep 127.0.0.1")
    port: int = _setting(8080, _int_from(1, 65535, "a TCP port number"))
    allow_remote: bool = _setting(False, _flag, "true lets the screen listen beyond the unit itself")


@dataclass(frozen=True)
class LogSettings:
    level: str = _setting("INFO", _level)


@dataclass(frozen=True)
class BackupSettings:
    directory: str = _setting("", _text, "where the journal is copied every backup_every seconds: a USB stick "
                              "kept in the unit, so a replacement unit can carry on")


@dataclass(frozen=True)
class _File:
    """The whole file: the required keys, then one table per section."""

    mode: str = _required(_one_of(MODES), 'use "production" on a station unit, "simulation" for demos and tests')
    election_id: str = _required(_text, "the election id printed on the station package, e.g. kg-2026-presidential")
    cec_public_key: str = _required(_text, "base64 of the CEC's 32-byte Ed25519 package key, from the technician kit")
    station_package: str = _required(_text, "path of the CEC-signed station package file")
    data_dir: str = _required(_text, "directory for the journal and keys, on the writable data partition")
    hardware: HardwareSettings = _table(HardwareSettings)
    uplink: UplinkSettings = _table(UplinkSettings)
    web: WebSettings = _table(WebSettings)
    log: LogSettings = _table(LogSettings)
    backup: BackupSettings = _table(BackupSettings)
    delays: Delays = field(default_factory=Delays, metadata={"read": "delays"})


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

    def describe(self) -> dict[str, Any]:
        """The config as shown to operators (plain JSON values), secrets masked."""
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        return {k: ("********" if k in SECRET_KEYS else v) for k, v in out.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


# Reading ------------------------------------------------------------------------------

def _unknown(key: str, known: list[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else f" (known keys: {', '.join(sorted(known))})"
    return f"{key}: unknown key{hint}"


def _values(cls: type[S], prefix: str, table: Any, problems: list[str]) -> dict[str, Any]:
    """The good values of ``table`` by key, read with ``cls``'s schema; each problem appended."""
    if not isinstance(table, dict):
        problems.append(f"{prefix.rstrip('.')}: must be a table ([{prefix.rstrip('.')}])")
        return {}
    schema = {f.name: f for f in fields(cls)}
    good: dict[str, Any] = {}
    for key, raw in table.items():
        if key in schema:
            _read_one(schema[key], prefix + key, raw, good, problems)
        else:
            problems.append(prefix + _unknown(key, list(schema)))
    for f in schema.values():
        if f.default is MISSING and f.default_factory is MISSING and f.name not in table:
            problems.append(f"{prefix}{f.name}: missing ({f.metadata['hint']})")
    return good


def _read_one(f: Field[Any], key: str, raw: Any, good: dict[str, Any], problems: list[str]) -> None:
    meta: Mapping[str, Any] = f.metadata
    if "table" in meta:
        good[f.name] = meta["table"](**_values(meta["table"], key + ".", raw, problems))
    elif "read" in meta:
        good[f.name] = _delays(raw, problems)
    else:
        try:
            good[f.name] = meta["parse"](raw)
        except ValueError as exc:
            near = getattr(exc, "near", None)
            hint = f" (did you mean {near!r}?)" if near else f" ({meta['hint']})" if meta["hint"] else ""
            problems.append(str(exc) if meta["names_key"] else f"{key}: {exc}, got {raw!r}{hint}")


def _delays(table: Any, problems: list[str]) -> Delays:
    if not isinstance(table, dict):
        problems.append("delays: must be a table of named delays in seconds")
        return Delays()
    known = list(Delays.names())
    good = {}
    for key, value in table.items():
        if key not in known:
            problems.append("delays." + _unknown(key, known))
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            problems.append(f"delays.{key}: must be a positive number of seconds, got {value!r}")
        else:
            good[key] = float(value)
    return Delays(**good)


# Checks across keys and against the disk -----------------------------------------------

def _production(doc: _File, problems: list[str]) -> None:
    """Simulated parts and the simulated uplink are refused on a station unit."""
    for part, names in SIMULATED.items():
        if getattr(doc.hardware, part) in names:
            problems.append(f"hardware.{part}: simulated hardware is refused in production mode "
                            f"(name the real {part.replace('_', ' ')} backend)")
    if doc.uplink.transport == "sim":
        problems.append("uplink.transport: the simulated uplink is refused in production mode (use https)")


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _web(web: WebSettings, problems: list[str]) -> None:
    """The chair's screen is for the unit's own touchscreen: remote listening only when asked for."""
    if not web.allow_remote and not _is_loopback(web.host):
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


def parse_config(path: Path, doc: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; raises ConfigError with every problem."""
    problems: list[str] = []
    good = _values(_File, "", doc, problems)
    missing = {f.name: "" for f in fields(_File) if f.default is MISSING and f.default_factory is MISSING}
    read = _File(**{**missing, **good})  # a missing key is reported; "" stands in for the checks below
    base = path.parent
    data_dir = (base / read.data_dir).resolve()
    backup_dir = (base / read.backup.directory).resolve() if read.backup.directory else None
    if read.mode == "production":
        _production(read, problems)
    _web(read.web, problems)
    if "data_dir" in good and _a_directory("data_dir", data_dir, problems):
        _secret_key(data_dir / "web", problems)
    if backup_dir is not None:
        _a_directory("backup.directory", backup_dir, problems)
    if problems:
        raise ConfigError(path, problems)
    return Config(
        path=path, mode=read.mode, election_id=read.election_id, cec_public_key=read.cec_public_key,
        station_package=(base / read.station_package).resolve(), data_dir=data_dir, hardware=read.hardware,
        uplink=read.uplink.transport, web_host=read.web.host, web_port=read.web.port,
        web_allow_remote=read.web.allow_remote, log_level=read.log.level, backup_dir=backup_dir,
        delays=read.delays)


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
