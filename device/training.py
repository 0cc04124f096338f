"""Training mode on the unit: which journal a station package writes, and which data a unit may not mix.

A training package (``pollbox-provision cec package --training``) is signed by
the CEC like any other, with ``"training": true`` in its payload and a station
id behind ``protocol.training.TRAINING_PREFIX``. The unit then runs the same
screens and rules, but:

- it keeps its own journal file, ``training-journal.db`` (and its mark
  ``training-journal.mark``) beside the live ``journal.db``: live and
  training records never share a file (``journal_path``);
- its upstream records carry the signed ``training`` flag (the outbox reads
  it from the station id), so the CEC's receiver stores them apart and never
  counts them;
- every screen, the observer view and the reports show a TRAINING banner.

A unit holds either kind of data, never both (``check_unit``): a live package
is refused while the unit holds training data (the training journal, or an
installed training package) and a training package while it holds live data
(an installed live package, or a live journal not yet zeroized). Zeroize
(``pollbox-provision unit zeroize``) wipes the training journal with the keys;
a live journal stays after zeroize as the station's evidence, and the live
zeroize record (``zeroize-record.json``; a training unit's is
``training-zeroize-record.json``) tells that it was closed out. Not covered:
a live package deleted by hand after an earlier live zeroize, without a new
one; the live journal is then taken as closed out (it is still never written
by training).

Wiring: ``device/compose.py`` calls ``check_unit`` and ``journal_path`` before
the journal opens; ``provisioning/install.py`` calls ``check_unit`` before it
copies anything; ``provisioning/zeroize.py`` wipes ``training_files``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protocol.errors import UserError
from protocol.training import is_training_station

LIVE_JOURNAL = "journal.db"
TRAINING_JOURNAL = "training-journal.db"
ZEROIZE_RECORD = "zeroize-record.json"
TRAINING_ZEROIZE_RECORD = "training-zeroize-record.json"
SQLITE_SIDE_FILES = ("-wal", "-shm")
ZEROIZE_HINT = "pollbox-provision unit zeroize"


class TrainingRefused(UserError):
    """A package of one kind (live or training) on a unit holding data of the other; the message says what to do."""


def package_is_training(payload: dict[str, Any]) -> bool:
    """Whether a station package's payload is a training package (``"training": true``)."""
    return payload.get("training") is True


def training_problem(payload: dict[str, Any]) -> str | None:
    """Why a package's training flag and its station id disagree; None when they agree."""
    station = str(payload.get("station", {}).get("id", ""))
    training = payload.get("training", False)
    if not isinstance(training, bool):
        return "the package's training flag must be true or false"
    if training and not is_training_station(station):
        return f"a training package must be for a training station id (TRAINING-...), not {station}"
    if not training and is_training_station(station):
        return f"the station {station} is a training station, but the package is not marked for training"
    return None


def journal_name(training: bool) -> str:
    return TRAINING_JOURNAL if training else LIVE_JOURNAL


def journal_path(data_dir: Path, training: bool) -> Path:
    """The journal a unit with a training (or live) package writes: never the other kind's file."""
    return data_dir / journal_name(training)


def journal_files(data_dir: Path, training: bool) -> list[Path]:
    """The journal of that kind with its SQLite side files and its mark (``device/store/mark.py``)."""
    path = journal_path(data_dir, training)
    return [path, *(path.with_name(path.name + side) for side in SQLITE_SIDE_FILES), path.with_suffix(".mark")]


def training_files(data_dir: Path) -> list[Path]:
    """What zeroize wipes besides the keys on a training unit: the training journal, its side files, its mark."""
    return journal_files(data_dir, True)


def holds_journal(data_dir: Path, training: bool) -> bool:
    """Whether the unit holds a journal of that kind (its file or its mark: a deleted journal still counts)."""
    return any(p.exists() for p in journal_files(data_dir, training))


def installed_package_training(path: Path) -> bool | None:
    """Whether the package installed at ``path`` is a training one; None when there is none (or it is unreadable).

    Read without checking the signature: this only asks which kind of data the unit holds.
    """
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    payload = doc.get("payload") if isinstance(doc, dict) else None
    return package_is_training(payload) if isinstance(payload, dict) else None


def live_zeroized(data_dir: Path) -> bool:
    """Whether the live unit was zeroized: its zeroize record is there (a training unit's has another name)."""
    return (data_dir / ZEROIZE_RECORD).is_file()


def zeroize_record_name(training: bool) -> str:
    """Where zeroize writes its signed record: a training unit's never stands for a live one's."""
    return TRAINING_ZEROIZE_RECORD if training else ZEROIZE_RECORD


def check_unit(data_dir: Path, *, training: bool, installed: bool | None = None) -> None:
    """Refuse a package of kind ``training`` on a unit holding data of the other kind.

    ``installed`` is the kind of the package already installed (``installed_package_training``), if any.
    """
    if training:
        if installed is False:
            raise TrainingRefused(
                "this unit is set up for a live election (a live station package is installed); a training "
                f"package is refused. Zeroize it first ('{ZEROIZE_HINT}'), once the CEC has every record")
        if holds_journal(data_dir, False) and not live_zeroized(data_dir):
            raise TrainingRefused(
                f"this unit holds live election data ({LIVE_JOURNAL}); a training package is refused. "
                f"Zeroize it first ('{ZEROIZE_HINT}'), once the CEC has every record")
        return
    if installed is True or holds_journal(data_dir, True):
        raise TrainingRefused(
            f"this unit holds training data ({TRAINING_JOURNAL} or a training package); a live package is "
            f"refused until the unit is zeroized ('{ZEROIZE_HINT}'), which wipes the training data")
