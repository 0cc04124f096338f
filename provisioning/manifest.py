"""The package manifest of a ``cec packages`` run: ``OUTDIR/manifest.json``, one entry per complete station.

A re-run reads it to skip stations whose package is complete and unchanged;
an entry whose folder no longer holds the listed package is dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device.files import write_private

from .errors import ProvisionError
from .package import PACKAGE_FILE, BuiltStation

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "pollbox-package-manifest/1"
STICK_FOLDER = "pollbox"
"""The folder on each station's stick that holds its package."""

@dataclass
class Manifest:
    """``OUTDIR/manifest.json``: the election id and one entry per complete station folder."""

    path: Path
    election_id: str
    training: bool = False  # training packages only (``training.py``): never mixed with live ones in a folder
    stations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path, election_id: str, training: bool = False) -> Manifest:
        path = out / MANIFEST
        if not path.exists():
            return cls(path, election_id, training)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProvisionError("E074", f"{path}: not a package manifest ({exc}); move it away") from None
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("stations"),
                                                                                                    dict):
            raise ProvisionError("E074", f"{path}: not a package manifest ({MANIFEST_FORMAT}); move it away")
        if doc.get("election_id") != election_id:
            raise ProvisionError("E074", f"{out} holds packages of election {doc.get('election_id')!r}, not "
                                         f"{election_id!r}; use another output folder")
        if bool(doc.get("training", False)) != training:
            held, asked = ("training", "live") if doc.get("training") else ("live", "training")
            raise ProvisionError("E074", f"{out} holds {held} packages; {asked} packages go to another output folder")
        return cls(path, election_id, training, dict(doc["stations"]))

    def keep_complete(self, planned: Collection[str]) -> None:
        """Drop entries of stations no longer planned, or whose folder no longer holds the listed package."""
        def listed(sid: str) -> str | None:
            return sha256_of(self.path.parent / sid / STICK_FOLDER / PACKAGE_FILE)
        self.stations = {sid: e for sid, e in self.stations.items()
                         if sid in planned and listed(sid) == e.get("package_sha256")}

    def save(self) -> None:
        doc: dict[str, Any] = {"format": MANIFEST_FORMAT, "election_id": self.election_id,
                               "stations": dict(sorted(self.stations.items()))}
        if self.training:
            doc["training"] = True
        write_private(self.path, (json.dumps(doc, indent=1) + "\n").encode())


def manifest_entry(built: BuiltStation, voters_file_sha256: str | None) -> dict[str, Any]:
    return {"voters": built.voters, "package_sha256": built.sha256, "sealed": built.sealed_to is not None,
            "sealed_to": built.sealed_to, "built_at": built.built_at, "voters_file_sha256": voters_file_sha256}


def sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
