"""Writing a ``pollbox-export/1`` file to the USB stick (the format is ``protocol/export.py``).

``Outbox.export`` renders the file with ``protocol.export.render_export``;
this module puts the bytes on the stick so that a pulled stick or a power cut
leaves either no file or the whole file, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

from device.files import sync_path
from protocol.export import ExportError


def write_export(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file, synced and renamed."""
    tmp = target.with_name(target.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        sync_path(target.parent)
    except OSError as exc:
        raise ExportError("malformed", f"could not write the export file {target}: {exc.strerror or exc}") from None
