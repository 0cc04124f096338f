"""The station's config file: one TOML file per unit, validated at start-up.

Every problem is collected and reported at once, each with its key and a hint
("did you mean ...?" for misspelt keys). Paths are resolved relative to the
config file. Secrets never appear in ``describe()``: they show as ``********``.

Wiring: ``device.cli`` calls ``load_config``; the composition root
(``device.appliance.build_appliance``) takes the resulting ``Config``.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device.core.delays import Delays

MODES = ("simulation", "production")
SCANNERS = ("sim", "simcamera", "camera", "picamera", "keyboard", "serial")
DECODERS = ("zxing", "zbar")
BOXES = ("sim", "gpio", "smartbox")
UPLINKS = ("https", "sim")
SECRET_KEYS = {"cec_public_key"}


class ConfigError(Exception):
    """The config has problems; ``problems`` lists each as 'key: what is wrong (hint)'."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the station config:\n{lines}")


@dataclass(frozen=True)
class Config:
    path: Path
    mode: str
    election_id: str
    cec_public_key: str
    station_package: Path
    data_dir: Path
    scanner: str = "sim"
    decoder: str = "zxing"
    ballot_box: str = "sim"
    uplink: str = "https"
    hardware: dict[str, Any] = field(default_factory=dict)
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    log_level: str = "INFO"
    backup_dir: Path | None = None
    delays: Delays = field(default_factory=Delays)

    @property
    def simulation(self) -> bool:
        return self.mode == "simulation"

    def describe(self) -> dict[str, Any]:
        """The config as shown to operators, secrets masked."""
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "delays"}
        out["delays"] = self.delays.__dict__
        return {k: ("********" if k in SECRET_KEYS else v) for k, v in out.items()}


Check = Callable[[Any], str | None]


def _one_of(options: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(options)}"
    return check


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def _port(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535
    return None if ok else "must be a TCP port number from 1 to 65535"


def _level(v: Any) -> str | None:
    return None if v in ("DEBUG", "INFO", "WARNING", "ERROR") else "must be DEBUG, INFO, WARNING or ERROR"


# key -> (required, check, hint)
TOP: dict[str, tuple[bool, Check, str]] = {
    "mode": (True, _one_of(MODES), 'use "production" on a station unit, "simulation" for demos and tests'),
    "election_id": (True, _text, "the election id printed on the station package, e.g. kg-2026-presidential"),
    "cec_public_key": (True, _text, "base64 of the CEC's 32-byte Ed25519 package key, from the technician kit"),
    "station_package": (True, _text, "path of the CEC-signed station package file"),
    "data_dir": (True, _text, "directory for the journal and keys, on the writable data partition"),
}
SECTIONS: dict[str, dict[str, tuple[bool, Check, str]]] = {
    "hardware": {
        "scanner": (False, _one_of(SCANNERS), "which document reader is attached"),
        "decoder": (False, _one_of(DECODERS), "zxing reads QR, Code128, DataMatrix and PDF417; zbar no PDF417"),
        "ballot_box": (False, _one_of(BOXES), "gpio for a box wired to the Pi header, smartbox for a Pico unit"),
    },
    "uplink": {"transport": (False, _one_of(UPLINKS), "https to the CEC receiver; sim only in simulation")},
    "web": {"host": (False, _text, "the chair's screen listens here; keep 127.0.0.1"), "port": (False, _port, "")},
    "log": {"level": (False, _level, "")},
    "backup": {"directory": (False, _text, "where the journal is copied every backup_every seconds: a USB stick "
                             "kept in the unit, so a replacement unit can carry on")},
}
OPEN_TABLES = ("keyboard", "serial", "camera", "pins", "smartbox", "simcamera")


def _unknown(key: str, known: list[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else f" (known keys: {', '.join(sorted(known))})"
    return f"{key}: unknown key{hint}"


def _check_table(prefix: str, table: dict[str, Any], schema: dict[str, tuple[bool, Check, str]],
                 extra: tuple[str, ...], problems: list[str]) -> None:
    for key, value in table.items():
        if key in schema:
            why = schema[key][1](value)
            if why:
                hint = f" ({schema[key][2]})" if schema[key][2] else ""
                problems.append(f"{prefix}{key}: {why}, got {value!r}{hint}")
        elif key not in extra:
            problems.append(prefix + _unknown(key, list(schema) + list(extra)))
    for key, (required, _, hint) in schema.items():
        if required and key not in table:
            problems.append(f"{prefix}{key}: missing ({hint})")


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


def parse_config(path: Path, doc: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; raises ConfigError with every problem."""
    problems: list[str] = []
    _check_table("", doc, TOP, tuple(SECTIONS) + ("delays",), problems)
    sections: dict[str, dict[str, Any]] = {}
    for name, schema in SECTIONS.items():
        table = doc.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name}: must be a table ([{name}])")
            table = {}
        _check_table(f"{name}.", table, schema, OPEN_TABLES if name == "hardware" else (), problems)
        sections[name] = table
    delays = _delays(doc.get("delays", {}), problems)
    hw, up = sections["hardware"], sections["uplink"]
    if doc.get("mode") == "production":
        for part, default in (("scanner", "sim"), ("ballot_box", "sim")):
            if hw.get(part, default) == "sim" or hw.get(part) == "simcamera":
                problems.append(f"hardware.{part}: simulated hardware is refused in production mode "
                                f"(name the real {part.replace('_', ' ')} backend)")
        if up.get("transport", "https") == "sim":
            problems.append("uplink.transport: the simulated uplink is refused in production mode (use https)")
    if problems:
        raise ConfigError(path, problems)
    base = path.parent
    return Config(
        path=path, mode=doc["mode"], election_id=doc["election_id"], cec_public_key=doc["cec_public_key"],
        station_package=(base / doc["station_package"]).resolve(), data_dir=(base / doc["data_dir"]).resolve(),
        scanner=hw.get("scanner", "sim"), decoder=hw.get("decoder", "zxing"), ballot_box=hw.get("ballot_box", "sim"),
        uplink=up.get("transport", "https"),
        hardware={k: v for k, v in hw.items() if k in OPEN_TABLES},
        web_host=sections["web"].get("host", "127.0.0.1"), web_port=sections["web"].get("port", 8080),
        log_level=sections["log"].get("level", "INFO"), delays=delays,
        backup_dir=(base / sections["backup"]["directory"]).resolve() if "directory" in sections["backup"] else None,
    )


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
