"""The OS image recipe: assembled anywhere, its stage script run into a scratch root, then checked.

What is checked here: shellcheck on every shell script; the recipe assembles
with the election's trust anchor; the stage's file-copy script builds a root
tree with the right files, modes and enabled units; the station config in the
image is a valid production config; and ``systemd-analyze verify`` accepts
every unit against that root. Building the image itself (pi-gen, arm64) is
not done here.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from device.config import load_config

IMAGE = Path(__file__).resolve().parents[2] / "provisioning" / "image"
KEY = base64.b64encode(bytes(range(32))).decode()
UNITS = ("pollbox.service", "pollbox-kiosk.service", "pollbox-firstboot.service", "pollbox-data-setup.service",
         "var-lib-pollbox.mount")
PACKAGE_BINARIES = ("opt/pollbox/bin/pollbox", "opt/pollbox/bin/pollbox-provision", "usr/bin/cage",
                    "usr/bin/chromium-browser")
"""Binaries the chroot step installs from packages (pip, apt); stood in for by stubs in the scratch root."""


def shell_scripts() -> list[Path]:
    return sorted(p for p in IMAGE.rglob("*") if p.is_file() and p.read_bytes()[:2] == b"#!"
                  and p.read_bytes().split(b"\n", 1)[0].endswith((b"/sh", b"/bash")))


def test_every_shell_script_passes_shellcheck() -> None:
    scripts = shell_scripts()
    assert len(scripts) >= 7
    done = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recipe")
    subprocess.run(["bash", str(IMAGE / "build.sh"), "assemble", "--out", str(out), "--election-id", "kg-2026-test",
                    "--cec-public-key", KEY], check=True, capture_output=True)
    root = out / "rootfs"
    (root / "boot/firmware").mkdir(parents=True)
    (root / "boot/firmware/cmdline.txt").write_text(
        "console=tty1 root=ROOTDEV rootfstype=ext4 fsck.repair=yes rootwait init=/usr/lib/raspberrypi-sys-mods/firstboot\n")
    env = {**os.environ, "ROOTFS_DIR": str(root)}
    for _ in range(2):  # the stage script must be safe to run twice
        subprocess.run(["bash", str(out / "stage-pollbox/00-install/01-run.sh")], check=True, env=env,
                       capture_output=True)
    return root


def test_assembled_config_names_the_stage_and_the_election(rootfs: Path) -> None:
    config = (rootfs.parent / "config").read_text()
    assert 'STAGE_LIST="stage0 stage1 stage2 stage-pollbox"' in config
    assert "IMG_NAME=pollbox-kg-2026-test" in config and "ENABLE_SSH=0" in config
    assert (rootfs.parent / "stage-pollbox/EXPORT_IMAGE").exists()


def test_image_config_is_a_valid_production_config(rootfs: Path) -> None:
    config = load_config(rootfs / "etc/pollbox/station.toml")
    assert config.mode == "production" and config.cec_public_key == KEY and config.election_id == "kg-2026-test"
    assert config.data_dir == Path("/var/lib/pollbox") and config.web_host == "127.0.0.1"


def test_files_and_modes(rootfs: Path) -> None:
    for script in ("pollbox-firstboot", "pollbox-data-setup"):
        assert (rootfs / "usr/local/sbin" / script).stat().st_mode & 0o777 == 0o755
    for unit in UNITS:
        assert (rootfs / "etc/systemd/system" / unit).stat().st_mode & 0o777 == 0o644


def test_units_are_enabled(rootfs: Path) -> None:
    system = rootfs / "etc/systemd/system"
    for wants, unit in (("multi-user.target.wants", "pollbox.service"),
                        ("multi-user.target.wants", "pollbox-firstboot.service"),
                        ("graphical.target.wants", "pollbox-kiosk.service"),
                        ("local-fs.target.wants", "var-lib-pollbox.mount"),
                        ("local-fs-pre.target.wants", "pollbox-data-setup.service")):
        link = system / wants / unit
        assert link.is_symlink() and link.resolve() == (system / unit).resolve()
    assert os.readlink(system / "getty@tty1.service") == "/dev/null"


def test_appliance_unit_settings(rootfs: Path) -> None:
    text = (rootfs / "etc/systemd/system/pollbox.service").read_text()
    for line in ("Type=notify", "WatchdogSec=10s", "Restart=on-failure", "ReadWritePaths=/var/lib/pollbox",
                 "ExecStopPost=/opt/pollbox/bin/pollbox --config /etc/pollbox/station.toml box lock"):
        assert line in text.splitlines()
    kiosk = (rootfs / "etc/systemd/system/pollbox-kiosk.service").read_text()
    assert "/usr/bin/cage" in kiosk and "--kiosk" in kiosk and "http://127.0.0.1:8080/" in kiosk


def test_read_only_root_watchdog_and_pins(rootfs: Path) -> None:
    fstab = [line.split() for line in (rootfs / "etc/fstab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    root = next(f for f in fstab if f[1] == "/")
    assert "ro" in root[3].split(",")
    assert {f[1] for f in fstab if f[0] == "tmpfs"} >= {"/tmp", "/var/log", "/var/tmp"}
    cmdline = (rootfs / "boot/firmware/cmdline.txt").read_text()
    assert " ro" in cmdline and "firstboot" not in cmdline
    boot = (rootfs / "boot/firmware/config.txt").read_text()
    assert boot.count("# pollbox begin") == 1
    assert "dtparam=watchdog=on" in boot and "gpio=17=op,dl" in boot
    assert "RuntimeWatchdogSec=15s" in (rootfs / "etc/systemd/system.conf.d/pollbox-watchdog.conf").read_text()
    mount = (rootfs / "etc/systemd/system/var-lib-pollbox.mount").read_text()
    assert "What=/dev/disk/by-label/POLLBOXDATA" in mount and "noexec" in mount


def test_units_pass_systemd_analyze_verify(rootfs: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(rootfs, root, symlinks=True)
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for binary in PACKAGE_BINARIES:
        stub = root / binary
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    units = [str(root / "etc/systemd/system" / u) for u in UNITS]
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}", *units],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pollbox" not in done.stderr, done.stderr
    (root / "usr/bin/cage").unlink()
    missing = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}",
                              units[1]], capture_output=True, text=True)
    assert missing.returncode != 0 and "cage" in missing.stderr


def test_build_refuses_politely_on_other_hosts(tmp_path: Path) -> None:
    if os.uname().machine in ("aarch64", "arm64"):
        pytest.skip("this host could build the image")
    done = subprocess.run(["bash", str(IMAGE / "build.sh"), "image", "--out", str(tmp_path), "--election-id", "x",
                           "--cec-public-key", KEY], capture_output=True, text=True)
    assert done.returncode == 3 and "arm64" in done.stderr and "Traceback" not in done.stderr
