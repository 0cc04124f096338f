"""Which packages a unit takes: ``device.training.check_unit`` on every kind of data a unit can hold.

The same function guards installation (``provisioning/install.py``) and start
(``device/compose.py``); the process tests drive both ends, this table every case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.training import (
    LIVE_JOURNAL,
    TRAINING_JOURNAL,
    TRAINING_ZEROIZE_RECORD,
    ZEROIZE_RECORD,
    TrainingRefused,
    check_unit,
    installed_package_training,
    journal_files,
    journal_path,
)

LIVE_REFUSED = "holds training data"
TRAINING_REFUSED_PACKAGE = "set up for a live election"
TRAINING_REFUSED_JOURNAL = "holds live election data"


def unit(tmp_path: Path, *files: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in files:
        (data / name).write_text("{}")
    return data


@pytest.mark.parametrize("files, installed, live, training", [
    ((), None, None, None),                                              # a fresh unit takes either
    ((LIVE_JOURNAL,), None, None, TRAINING_REFUSED_JOURNAL),             # live data, not zeroized
    (("journal.mark",), None, None, TRAINING_REFUSED_JOURNAL),           # a deleted live journal still counts
    ((LIVE_JOURNAL, ZEROIZE_RECORD), None, None, None),                  # live data closed out by zeroize
    ((LIVE_JOURNAL, TRAINING_ZEROIZE_RECORD), None, None, TRAINING_REFUSED_JOURNAL),  # a training wipe is not one
    ((), False, None, TRAINING_REFUSED_PACKAGE),                         # a live package installed
    ((LIVE_JOURNAL, ZEROIZE_RECORD), False, None, TRAINING_REFUSED_PACKAGE),  # ... installed again since
    ((TRAINING_JOURNAL,), None, LIVE_REFUSED, None),                     # training data
    (("training-journal.mark",), None, LIVE_REFUSED, None),
    (("training-journal.db-wal",), None, LIVE_REFUSED, None),
    ((), True, LIVE_REFUSED, None),                                      # a training package installed
    ((TRAINING_ZEROIZE_RECORD,), None, None, None),                      # training wiped: takes a live one
])
def test_which_package_a_unit_takes(tmp_path: Path, files: tuple[str, ...], installed: bool | None,
                                    live: str | None, training: str | None) -> None:
    data = unit(tmp_path, *files)
    for kind, refusal in ((False, live), (True, training)):
        if refusal is None:
            check_unit(data, training=kind, installed=installed)
        else:
            with pytest.raises(TrainingRefused, match=refusal) as caught:
                check_unit(data, training=kind, installed=installed)
            assert "pollbox-provision unit zeroize" in str(caught.value)


def test_the_two_kinds_never_share_a_file(tmp_path: Path) -> None:
    live, training = journal_files(tmp_path, False), journal_files(tmp_path, True)
    assert not set(live) & set(training)
    assert journal_path(tmp_path, False).name == LIVE_JOURNAL and journal_path(tmp_path, True).name == TRAINING_JOURNAL
    assert journal_path(tmp_path, True).with_suffix(".mark") in training  # the mark beside it (store/mark.py)


def test_the_installed_package_kind_is_read_without_its_signature(tmp_path: Path) -> None:
    path = tmp_path / "station.pkg"
    assert installed_package_training(path) is None
    path.write_text(json.dumps({"payload": {"training": True}}))
    assert installed_package_training(path) is True
    path.write_text(json.dumps({"payload": {}}))
    assert installed_package_training(path) is False
    path.write_text("not json")
    assert installed_package_training(path) is None
