"""Training packages on the CEC side: ``cec package --training`` and ``cec packages --training``.

A training package is an ordinary signed station package for the same plan,
the same screens and rules, with two differences in its payload: the station
id is the training id (``TRAINING-KG-0001`` for ``KG-0001``,
``protocol.training.training_station_id``) and ``"training": true``. A unit
given one keeps a separate journal, signs the training flag into every record
and shows a TRAINING banner (``device/training.py``); the receiver keeps its
records apart and never counts them. The voter list is read as for the live
station (its rows name the plan's station id: a practice list from ``cec
sample-list``), and the unit enrolls under the training id
(``pollbox-provision unit enroll-request --station TRAINING-KG-0001``).

Wiring: ``package.build_station`` calls ``training_payload`` when asked for a
training package; ``bulk.py`` passes the order's ``training`` on.
"""

from __future__ import annotations

from typing import Any

from protocol.envelope import MAX_STATION
from protocol.training import TRAINING_PREFIX, is_training_station, training_station_id

from .errors import ProvisionError


def training_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The training package payload of a live one: the training station id and ``"training": true``."""
    station = str(payload["station"]["id"])
    if is_training_station(station):
        raise ProvisionError("E021", f"station {station}: a live station id must not start with {TRAINING_PREFIX} "
                                     "(that prefix is kept for training packages)")
    training_id = training_station_id(station)
    if len(training_id) > MAX_STATION:
        raise ProvisionError("E021", f"station {station}: its training id {training_id} would be longer than "
                                     f"{MAX_STATION} characters; use a shorter station id for training")
    return {**payload, "station": {**payload["station"], "id": training_id}, "training": True}


def package_station_id(station_id: str, training: bool) -> str:
    """The station id a package for the plan's ``station_id`` carries (and its unit enrolls under)."""
    return training_station_id(station_id) if training else station_id
