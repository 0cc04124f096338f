"""The image's RAUC boot backend (``rauc-bootloader``) on folders standing for the ESP and the two slots.

The script is run as RAUC runs it (``set-state``, ``set-primary``, ``get-primary``,
``get-state``), on a folder laid out as build.sh lays out the ESP; the slots'
file systems are folders (``POLLBOX_SLOTS``) instead of mounted partitions. What
systemd-boot does at boot (count a try down, prefer entries with tries left) is
played by ``boot_once`` here, after systemd's boot-counting rules; the real
systemd-boot and systemd-bless-boot run in ``tests/image/test_update.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "provisioning/image/debian/rauc/usr/lib/pollbox/rauc-bootloader"
OPTIONS = "root=PARTLABEL=root ro rootfstype=ext4 rauc.slot=A console=ttyS0,115200"


@pytest.fixture
def esp(tmp_path: Path) -> Path:
    esp = tmp_path / "esp"
    (esp / "loader" / "entries").mkdir(parents=True)
    (esp / "a").mkdir()
    (esp / "loader" / "loader.conf").write_text("default pollbox-*\ntimeout 0\neditor no\n")
    (esp / "loader" / "entries" / "pollbox-a.conf").write_text(
        f"title pollbox (slot A)\nsort-key pollbox-1\nlinux /a/vmlinuz\ninitrd /a/initrd.img\noptions {OPTIONS}\n")
    for slot in ("A", "B"):
        boot = tmp_path / "slots" / slot / "boot"
        boot.mkdir(parents=True)
        (boot / "vmlinuz-6.1.0-1-amd64").write_text(f"kernel {slot} old")
        (boot / "vmlinuz-6.1.0-9-amd64").write_text(f"kernel {slot}")
        (boot / "initrd.img-6.1.0-9-amd64").write_text(f"initrd {slot}")
    return esp


def backend(esp: Path, *words: str) -> str:
    done = subprocess.run(["sh", str(SCRIPT), *words], capture_output=True, text=True, check=False,
                          env={**os.environ, "POLLBOX_ESP": str(esp), "POLLBOX_SLOTS": str(esp.parent / "slots")})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def entries(esp: Path) -> list[str]:
    return sorted(p.name for p in (esp / "loader" / "entries").iterdir())


def boot_once(esp: Path) -> str:
    """systemd-boot's choice: entries with tries left first, then by sort-key; a counted entry loses a try."""
    found = []
    for path in (esp / "loader" / "entries").glob("pollbox-*.conf"):
        m = re.fullmatch(r"(pollbox-[ab])(?:\+(\d+)(?:-(\d+))?)?\.conf", path.name)
        assert m, path.name
        left = None if m.group(2) is None else int(m.group(2))
        key = re.search(r"^sort-key (.*)$", path.read_text(), re.M)
        found.append((left == 0, key.group(1) if key else "~", path, m, left))
    found.sort(key=lambda f: (f[0], f[1]))
    _, _, path, m, left = found[0]
    slot = re.search(r"rauc\.slot=(\w)", path.read_text())
    assert slot is not None
    if left is not None:
        path.rename(path.with_name(f"{m.group(1)}+{left - 1}-{int(m.group(3) or 0) + 1}.conf"))
    return slot.group(1)


def test_an_update_to_b_boots_it_once_and_keeps_it_when_blessed(esp: Path) -> None:
    assert (backend(esp, "get-primary"), backend(esp, "get-state", "B")) == ("A", "bad")
    backend(esp, "set-state", "B", "bad")  # RAUC marks the target bad before writing it
    backend(esp, "set-primary", "B")
    assert entries(esp) == ["pollbox-a.conf", "pollbox-b+1.conf"]
    b = (esp / "loader" / "entries" / "pollbox-b+1.conf").read_text()
    assert "sort-key pollbox-1" in b and "linux /b/vmlinuz" in b
    assert "root=PARTLABEL=root-b" in b and "rauc.slot=B" in b and "console=ttyS0,115200" in b
    assert "sort-key pollbox-2" in (esp / "loader" / "entries" / "pollbox-a.conf").read_text()
    assert (esp / "b" / "vmlinuz").read_text() == "kernel B" and (esp / "b" / "initrd.img").read_text() == "initrd B"
    assert (backend(esp, "get-primary"), backend(esp, "get-state", "B")) == ("B", "good")
    assert boot_once(esp) == "B"  # the trial boot
    assert entries(esp) == ["pollbox-a.conf", "pollbox-b+0-1.conf"]
    backend(esp, "set-state", "B", "good")  # what systemd-bless-boot does once the appliance is ready
    assert entries(esp) == ["pollbox-a.conf", "pollbox-b.conf"]
    assert boot_once(esp) == "B" and boot_once(esp) == "B"


def test_a_trial_that_is_never_blessed_falls_back_to_a(esp: Path) -> None:
    backend(esp, "set-state", "B", "bad")
    backend(esp, "set-primary", "B")
    assert boot_once(esp) == "B"
    assert backend(esp, "get-state", "B") == "bad" and backend(esp, "get-primary") == "A"
    assert boot_once(esp) == "A" and boot_once(esp) == "A"  # never ready: the restart comes back on A
    assert entries(esp) == ["pollbox-a.conf", "pollbox-b+0-1.conf"]
    backend(esp, "set-state", "B", "bad")  # the next update's write: B stays out of the boot order
    backend(esp, "set-primary", "B")
    assert entries(esp) == ["pollbox-a.conf", "pollbox-b+1.conf"]


def test_updating_back_into_a_from_b(esp: Path) -> None:
    backend(esp, "set-primary", "B")
    boot_once(esp)
    backend(esp, "set-state", "B", "good")
    backend(esp, "set-state", "A", "bad")
    assert entries(esp) == ["pollbox-a+0.conf", "pollbox-b.conf"] and backend(esp, "get-primary") == "B"
    backend(esp, "set-primary", "A")
    a = (esp / "loader" / "entries" / "pollbox-a+1.conf").read_text()
    assert "root=PARTLABEL=root " in a and "rauc.slot=A" in a and "sort-key pollbox-1" in a
    assert boot_once(esp) == "A"


def test_refuses_an_unknown_slot_or_state(esp: Path) -> None:
    for words in (["set-primary", "C"], ["set-state", "A", "maybe"], ["frobnicate"]):
        done = subprocess.run(["sh", str(SCRIPT), *words], capture_output=True, text=True, check=False,
                              env={**os.environ, "POLLBOX_ESP": str(esp)})
        assert done.returncode != 0 and "rauc-bootloader:" in done.stderr
    assert entries(esp) == ["pollbox-a.conf"]
