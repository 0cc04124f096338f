"""The journal backup folder, set by the technician on the unit's data partition.

A unit's station config (``/etc/pollbox/station.toml``) is on the read-only
root, so ``[backup] directory`` cannot be added there on site. ``unit backup``
writes the setting to ``DATA_DIR/backup.toml`` instead (temporary file, then
rename), which ``device.config`` reads when the station config names no backup
folder itself (the station config's own setting wins). The appliance reads it
at start: the service is restarted after a change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from device.config import BACKUP_SETTING, Config

from .errors import ProvisionError


def setting_path(config: Config) -> Path:
    return config.data_dir / BACKUP_SETTING


def set_backup(config: Config, directory: Path) -> Path:
    """Write ``directory`` as the backup folder; refuses a relative path, a file, or a setting that would not apply."""
    if not directory.is_absolute():
        raise ProvisionError("E003", f"--directory {directory}: give the absolute path where the backup stick is "
                                     "mounted, e.g. /media/pollbox-backup")
    if directory.exists() and not directory.is_dir():
        raise ProvisionError("E003", f"--directory {directory} is a file, not a folder")
    _not_overridden(config)
    path = setting_path(config)
    text = ("# set by 'pollbox-provision unit backup'; read by pollbox at start\n"
            f"[backup]\ndirectory = {json.dumps(str(directory))}\n")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def clear_backup(config: Config) -> bool:
    """Remove the setting; whether there was one."""
    _not_overridden(config)
    try:
        setting_path(config).unlink()
    except FileNotFoundError:
        return False
    return True


def _not_overridden(config: Config) -> None:
    if config.backup_dir is not None and not setting_path(config).exists():
        raise ProvisionError("E003", f"{config.path} itself sets [backup] directory = {config.backup_dir}; "
                                     "that setting wins, so one on the data partition would have no effect")
