"""Writing a ``pollbox-export/1`` file to the USB stick (the format is ``protocol/export.py``).

``Upstream.export`` streams the file's lines (``protocol.export.export_chunks``)
from the outbox; this module puts them on the stick so that a pulled stick, a
power cut or a record refused half way leaves either no file or the whole
file, never half of one: the lines go to ``<name>.part``, which is synced,
read back by the caller's ``check``, and only then renamed to ``<name>``.
A ``.part`` file that cannot be finished is removed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from device.files import sync_path
from protocol.export import ExportError


def write_export(target: Path, data: bytes | Iterable[bytes], *,
                 check: Callable[[Path], None] | None = None) -> None:
    """Write ``data`` (bytes, or chunks of bytes) to ``target`` through a synced temporary file.

    ``check`` is called with the temporary file's path after it is synced and
    before it is renamed; whatever it raises leaves no file at ``target`` (nor the
    temporary one) and is raised again.
    """
    tmp = target.with_name(target.name + ".part")
    try:
        try:
            with open(tmp, "wb", buffering=1 << 20) as fh:
                for chunk in [data] if isinstance(data, bytes) else data:
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if check is not None:
                check(tmp)
            os.replace(tmp, target)
        except Exception:  # not a stop (KeyboardInterrupt, a kill): its .part is removed by the next export
            with contextlib.suppress(OSError):  # a pulled stick: the error worth telling is the first one
                tmp.unlink(missing_ok=True)
            raise
        sync_path(target.parent)
    except OSError as exc:
        raise ExportError("malformed", f"could not write the export file {target}: {exc.strerror or exc}") from None
