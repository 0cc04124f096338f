"""The image's enrollment step as systemd and udev see it: ``pollbox-enrollment.service`` runs only on a unit whose
key is in its TPM and which holds no certificate yet, at boot and when the technician's stick is plugged in
(``61-pollbox-enrollment.rules``); ``systemd-analyze verify`` accepts the unit against a scratch root."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOTFS = Path(__file__).resolve().parents[2] / "provisioning" / "image" / "debian" / "rootfs"
SERVICE = ROOTFS / "etc/systemd/system/pollbox-enrollment.service"
RULE = ROOTFS / "etc/udev/rules.d/61-pollbox-enrollment.rules"
DATA = "/var/lib/pollbox/station/data"


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of a systemd unit file, in order (keys may repeat, as systemd allows)."""
    out, section = [], ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def rule_lines(path: Path) -> list[list[tuple[str, str, str]]]:
    """Each udev rule as its (key, operator, value) triples."""
    pattern = re.compile(r'\s*([A-Za-z_]+(?:\{[^}]*\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*,?')
    rules = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts, at = [], 0
        while at < len(line):
            m = pattern.match(line, at)
            assert m is not None, f"cannot read the rule at {line[at:]!r}"
            parts.append((m.group(1), m.group(2), m.group(3)))
            at = m.end()
        rules.append(parts)
    return rules


def test_the_step_runs_only_for_a_tpm_held_key_not_yet_enrolled() -> None:
    conditions = [v for s, k, v in unit_entries(SERVICE) if s == "Unit" and k == "ConditionPathExists"]
    assert f"{DATA}/device.tpm" in conditions, "a key-file unit must not run the step (nor say anything)"
    assert f"!{DATA}/enrollment.json" in conditions
    assert ("Unit", "Before", "pollbox.service") in unit_entries(SERVICE)
    assert ("Service", "Type", "oneshot") in unit_entries(SERVICE)  # may run again at the next insertion
    assert not any(k == "RemainAfterExit" for _, k, _ in unit_entries(SERVICE))
    assert ("Install", "WantedBy", "multi-user.target") in unit_entries(SERVICE)


def test_a_stick_plugged_in_starts_the_step() -> None:
    [rule] = rule_lines(RULE)
    assert ("ACTION", "==", "add") in rule and ("SUBSYSTEM", "==", "block") in rule
    assert ("ENV{ID_FS_LABEL}", "==", "POLLBOXUSB") in rule, "only the technician's stick"
    assert ("TAG", "+=", "systemd") in rule
    assert ("ENV{SYSTEMD_WANTS}", "+=", "pollbox-enrollment.service") in rule
    assert RULE.name > "60-persistent-storage.rules", "the label is read by 60-persistent-storage.rules first"


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze on this host")
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(SERVICE, root / "etc/systemd/system" / SERVICE.name)
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for name in ("pollbox.service", "pollbox-data-grow.service", "pollbox-station-import.service"):
        shutil.copy(ROOTFS / "etc/systemd/system" / name, root / "etc/systemd/system" / name)
    script = root / "usr/local/sbin/pollbox-enrollment"
    script.parent.mkdir(parents=True)
    shutil.copy(ROOTFS / "usr/local/sbin/pollbox-enrollment", script)
    script.chmod(0o755)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}",
                           str(root / "etc/systemd/system" / SERVICE.name)], capture_output=True, text=True)
    assert "pollbox-enrollment" not in done.stderr, done.stderr
