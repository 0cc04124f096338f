"""What every ``pollbox`` command shares: where the config is, the sentence for an error, the logs.

``CommandError`` is a command's own refusal; ``sentence`` turns an error from
the environment (a file, a port, the journal database) into one line.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sqlite3
from pathlib import Path
from typing import Any

from device.config import load_config
from protocol.errors import UserError

DEMO_DIR = Path("var/demo")


class CommandError(UserError):
    """A command cannot do what it was asked; the message is the sentence to print."""


def default_config() -> Path:
    if os.environ.get("POLLBOX_CONFIG"):
        return Path(os.environ["POLLBOX_CONFIG"])
    system = Path("/etc/pollbox/station.toml")
    return system if system.exists() else DEMO_DIR / "station.toml"


def user_errors() -> tuple[type[BaseException], ...]:
    """What the command line prints as one sentence: every ``UserError``, and a refused connection."""
    return (UserError, ConnectionError)


def sentence(exc: BaseException) -> str:
    """One line for an error from the environment (a file, a port, the journal database)."""
    if isinstance(exc, sqlite3.Error):
        return f"the journal database cannot be used: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror[0].lower()}{exc.strerror[1:]}{where}"
    return str(exc) or type(exc).__name__


def load_station_config(args: argparse.Namespace) -> Any:
    """The station's config; ``load_config`` checks the data directory as this process finds it."""
    return load_config(args.config)


def setup_logging(level: str, data_dir: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if data_dir is not None and data_dir.exists():
        handlers.append(logging.handlers.RotatingFileHandler(data_dir / "pollbox.log", maxBytes=5_000_000,
                                                             backupCount=5))
    logging.basicConfig(level=level, handlers=handlers, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
