"""Putting each unit's enrollment certificate into its station's folder after ``cec packages``.

``cec enroll --out CERTS`` writes one ``<station>-<serial>.enrollment.json`` per
unit. A unit records its enrollment only from the stick it installs its
package from (``install.install_from``), so in the bulk path every station's
``OUTDIR/<station>/pollbox/`` must also carry its units' certificates:
``cec packages --enrollments-dir CERTS`` copies them there (temporary file,
then rename) for every station that is built or already complete, and names
the stations for which ``CERTS`` holds none.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ProvisionError
from .manifest import STICK_FOLDER

SUFFIX = ".enrollment.json"


@dataclass
class Copied:
    """Which certificates went where, and the stations that got none."""

    copied: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        files = sum(len(v) for v in self.copied.values())
        text = f"{files} enrollment certificate(s) copied into {len(self.copied)} station folder(s)"
        if self.missing:
            shown = ", ".join(self.missing[:20]) + (f" and {len(self.missing) - 20} more" if len(self.missing) > 20
                                                    else "")
            text += (f"; NO certificate for {shown}: enroll those units ('cec enroll') and run the same "
                     "command again, or their screens will say the unit is not enrolled")
        return text


def copy_certificates(certs: Path, out: Path, stations: Iterable[str]) -> Copied:
    """Copy ``CERTS/<station>-*.enrollment.json`` into ``OUT/<station>/pollbox/`` for each station given."""
    if not certs.is_dir():
        raise ProvisionError("E001", f"no enrollment certificate folder at {certs}")
    done = Copied()
    for station in stations:
        found = sorted(p for p in certs.glob(f"{station}-*{SUFFIX}") if p.is_file())
        if not found:
            done.missing.append(station)
            continue
        target = out / station / STICK_FOLDER
        for path in found:
            _copy(path, target / path.name)
        done.copied[station] = [p.name for p in found]
    return done


def _copy(source: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)
