"""Training stations: how a record, a station id and a package say "this is practice, it never counts".

A unit set up from a training package (``pollbox-provision cec package
--training``) signs every upstream record with the envelope field
``"training": true``. The flag is inside the signed bytes, so it can neither be
stripped nor added nor flipped without breaking the signature
(``bad_signature`` at the receiver). A live record has no such field (a
``false`` is read as live too, but a unit never writes it).

A training station's id is its live id behind ``TRAINING_PREFIX``
(``KG-0001`` trains as ``TRAINING-KG-0001``): live and training stations
never share an id, so their chains, receipts and enrolled keys never meet at
the receiver. The two go together: a record whose flag and station id
disagree is refused (``training_mismatch``, ``record_training_problem``).

Both ends import this module: the unit (``device/training.py``, the outbox),
the provisioning tools and the receiver (the ``training`` column of its
``stations`` and ``records`` tables; ``is_training`` is the one test of a
record).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRAINING_FIELD = "training"
"""The envelope field of a training record (``docs/protocol.md`` section 2)."""
TRAINING_PREFIX = "TRAINING-"
"""What a training station's id starts with."""


def is_training(fields: Mapping[str, Any]) -> bool:
    """Whether a record (its parsed envelope fields) is a training record: ``"training": true`` in its signed bytes."""
    return fields.get(TRAINING_FIELD) is True


def is_training_station(station: str) -> bool:
    """Whether ``station`` is a training station's id (it starts with ``TRAINING_PREFIX``)."""
    return station.startswith(TRAINING_PREFIX)


def training_station_id(station: str) -> str:
    """The training id of the live station ``station`` (unchanged if it already is one)."""
    return station if is_training_station(station) else TRAINING_PREFIX + station


def live_station_id(station: str) -> str:
    """The live station a training id stands for (``station`` itself when it is a live id)."""
    return station.removeprefix(TRAINING_PREFIX)


def record_training_problem(fields: Mapping[str, Any]) -> str | None:
    """Why a record's training flag and its station id disagree, in one phrase; None when they agree."""
    station = str(fields.get("station", ""))
    if is_training(fields) and not is_training_station(station):
        return f"a training record for station {station}, whose id does not start with {TRAINING_PREFIX}"
    if not is_training(fields) and is_training_station(station):
        return f"a record without the training flag for the training station {station}"
    return None
