"""Signed A/B updates in the booted image: a good update, a refused bundle, a trial that rolls back.

The image is built with the tests' update CA as its keyring (``update-ca/``: a CA and a signer made
for these tests only) into its own folder, then a test copy with the test agent is booted. The
bundles are made from that copy's root partition (so a slot written by an update still carries the
agent) and reach the unit on a second, read-only virtual disk. Everything the technician does goes
through ``pollbox update`` as the appliance's user; RAUC, systemd-boot's boot counting and
systemd-bless-boot are the image's own.

One machine, in order (each step needs the one before):

0. the unit as flashed names its system: at its first boot ``pollbox-slot-status.service`` recorded
   slot A in RAUC's status with the root's version and the slot's SHA-256 computed in the unit, which
   equals the hash of the copy's root partition computed here; the hashing began only after the
   appliance was ready, the running appliance names the system once RAUC (restarted by the script)
   has the entry, and the readiness report signs the three (the boot waits for the entry first);
1. a bundle signed by another key is refused, and slot B is untouched (no entry, its first MiB zero);
2. a good bundle is installed into slot B (install time measured), the unit restarts, boots B on
   trial, and B is kept once the appliance is ready (entry blessed, RAUC says B good); RAUC's detailed
   status names B with the bundle's version and its root image's SHA-256 (what the reports sign), and
   the appliance journaled ``update_booted``;
3. a bundle whose appliance never becomes ready is installed into slot A, the unit restarts into it
   on trial, the trial timeout restarts it, and it comes back on B by itself (rollback time measured),
   where the appliance journals ``update_rolled_back``;
4. the power is cut while RAUC writes slot A: the unit boots B again and A stays bad.

The never-ready bundle carries, in its own root, a drop-in that makes ``pollbox.service`` fail and
one that shortens the trial timeout from 10 minutes to ``TRIAL_TIMEOUT``; the 10-minute default is
not waited for here. Times go to ``update-times.json`` in the work folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.updates import RunningSlot
from device.updates.rauc import booted_slot
from protocol.envelope import parse_line
from provisioning.bundle import make_bundle, root_from_image
from tests.image.guest import (
    EMULATION_WATCHDOG,
    PORT_NAME,
    WATCHDOG_DROP_IN,
    Guest,
    host_can_boot,
    make_test_copy,
)
from tests.image.vm import (
    BOOT_DEADLINE,
    BUILD,
    IMAGE_DIR,
    IMAGE_TEST_TIMEOUT,
    VirtualMachine,
    make_stick,
    run,
    wait_for,
)
from tests.image.vm import test_image_settings as image_settings

UPDATE_CA = Path(__file__).with_name("update-ca")
UPDATE_IMAGE_DIR = IMAGE_DIR / "update-test"
"""The update tests' image: the tests' image settings plus the tests' update CA as RAUC's keyring."""
TRIAL_TIMEOUT = "150s"
"""The never-ready bundle's trial timeout (the image's is 10 minutes)."""
INSTALL_DEADLINE = 1800.0
"""Seconds an install may take in an emulated unit (RAUC writes and dm-verity checks the whole slot)."""
STATION = "/var/lib/pollbox/station/station.toml"
POLLBOX = f"runuser -u pollbox -- /opt/pollbox/bin/pollbox --config {STATION}"
READINESS = f"cd / && runuser -u pollbox -- /opt/pollbox/bin/pollbox-provision unit readiness --config {STATION}"
READINESS_TAKES = 900.0
"""Seconds the technician's readiness self-test may take in an emulated unit (it starts the appliance)."""
SLOT_HASH_DEADLINE = 1800.0
"""Seconds after the appliance is ready that the first boot's hashing of slot A may take in an emulated
unit (441 s at normal priority under load; it now runs at idle CPU and disk priority beside the kiosk)."""
IDENTITY_DEADLINE = 300.0
"""Seconds the running appliance may take to name the system once the slot is hashed (it asks every 30 s)."""
OUTBOX_LINES = """import json, sqlite3
c = sqlite3.connect("file:/var/lib/pollbox/station/data/journal.db?mode=ro", uri=True)
print(json.dumps([r[0] for r in c.execute("SELECT line FROM outbox ORDER BY seq")]))
"""
"""Run as root by the guest's python3: every signed upstream record on the unit."""
NEVER_READY = {
    "/etc/systemd/system/pollbox.service.d/never-ready.conf": "[Service]\nExecStart=\nExecStart=/bin/false\n",
    "/etc/systemd/system/pollbox-trial-timeout.timer.d/test.conf": f"[Timer]\nOnBootSec=\nOnBootSec={TRIAL_TIMEOUT}\n",
}

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(IMAGE_TEST_TIMEOUT * 3)]


def build_update_image(out: Path = UPDATE_IMAGE_DIR) -> Path:
    """The update image (the tests' image settings, the tests' update CA as RAUC's keyring) built into
    ``out``, or taken from the build cache when the same sources were built already; its path."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHON": sys.executable, **image_settings(),
           "POLLBOX_UPDATE_KEYRING": str(UPDATE_CA / "ca.cert.pem")}
    done = subprocess.run(["bash", str(BUILD), "amd64", str(out)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise AssertionError(f"the image build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return out / "pollbox-amd64.img"


def debugfs_write(filesystem: Path, files: dict[str, str], work: Path) -> None:
    """Write ``files`` (path -> text) into an ext4 image without mounting it."""
    commands = []
    for i, (path, text) in enumerate(files.items()):
        local = work / f"file-{i}"
        local.write_text(text)
        commands += [f"mkdir {os.path.dirname(path)}", f"write {local} {path}"]
    done = subprocess.run(["debugfs", "-w", "-f", "-", str(filesystem)], input="\n".join(commands) + "\n",
                          text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def make_bundles(copy: Path, work: Path) -> tuple[Path, str]:
    """The good, never-ready and impostor-signed bundles, on an ext4 disk image labelled POLLBOXUPD; and the
    SHA-256 of the good bundle's root file system image (what RAUC records for the slot it writes)."""
    folder = work / "bundles"
    folder.mkdir()
    root = root_from_image(copy, work / "root.ext4")
    good_root = sha256_of(root)
    cert, key = UPDATE_CA / "signer.cert.pem", UPDATE_CA / "signer.key.pem"
    lz4 = "-comp lz4"
    make_bundle(root=root, compatible="pollbox-amd64", version="0.2.0+good", cert=cert, key=key,
                out=folder / "good.raucb", keyring=UPDATE_CA / "ca.cert.pem", mksquashfs_args=lz4)
    impostor = work / "impostor"
    impostor.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "key.pem", "-out", "cert.pem", "-days", "30", "-subj", "/CN=pollbox update"],
                   cwd=impostor, capture_output=True, check=True)
    subprocess.run(["rauc", "resign", "--no-verify", "--keyring", str(impostor / "cert.pem"),
                    "--cert", str(impostor / "cert.pem"), "--key",
                    str(impostor / "key.pem"), str(folder / "good.raucb"), str(folder / "foreign.raucb")],
                   capture_output=True, check=True)
    debugfs_write(root, NEVER_READY, work)
    make_bundle(root=root, compatible="pollbox-amd64", version="0.2.1+never-ready", cert=cert, key=key,
                out=folder / "never-ready.raucb", keyring=UPDATE_CA / "ca.cert.pem", mksquashfs_args=lz4)
    root.unlink()
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) * 11 // 10 // (1 << 20) + 64  # ext4's own blocks
    disk = work / "bundles.img"
    run(["mke2fs", "-q", "-t", "ext4", "-L", "POLLBOXUPD", "-d", str(folder), str(disk), f"{size_mb}M"])
    shutil.rmtree(folder)
    return disk, good_root


class UpdateUnit:
    """The booted test copy with the bundles' disk, and the agent's channel (reconnected after each restart)."""

    def __init__(self, work: Path, image_dir: Path = UPDATE_IMAGE_DIR) -> None:
        image = build_update_image(image_dir)
        copy = make_test_copy(image, work / "test-copy" / image.name)
        self.bundles, self.good_root = make_bundles(copy, work)
        stick, station = make_stick(work, voters=30)
        self.vm = VirtualMachine(work, copy, stick, station)
        shutil.rmtree(copy.parent)
        self.agent = work / "agent.sock"
        self.vm.extra += [
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=agent,path={self.agent},server=on,wait=off",
            "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={PORT_NAME}",
            "-drive", f"if=virtio,format=raw,readonly=on,file={self.bundles}",
        ]
        self.guest = Guest(self.agent)
        self.times: dict[str, float] = {}
        self.boot_id = ""
        self.work = work

    def boot(self) -> None:
        self.vm.start()
        self.guest.connect(BOOT_DEADLINE[self.vm.accel], self.vm)
        self.vm.wait_until_ready()
        self.guest.check("mkdir -p /run/updates && mount -o ro LABEL=POLLBOXUPD /run/updates")
        start = time.monotonic()
        self.wait_for_slot_status()
        self.times["first_boot_slot_hash_after_ready_s"] = round(time.monotonic() - start, 1)

    def wait_for_slot_status(self) -> None:
        """Until ``pollbox-slot-status.service`` has ended well (it hashes slot A beside the running appliance
        at the first boot, and restarts RAUC once the entry is written); an update needs RAUC to know slot A."""
        def ended() -> bool | None:
            state = self.guest.check("systemctl show -p SubState --value pollbox-slot-status.service").strip()
            if state == "failed":
                raise AssertionError("pollbox-slot-status.service failed: " + self.guest.check(
                    "journalctl -b -u pollbox-slot-status.service --no-pager -o cat"))
            return state == "exited" or None
        wait_for(ended, "the first boot's slot hash recorded for RAUC", SLOT_HASH_DEADLINE)

    def update(self, name: str) -> tuple[int, str]:
        rc, out = self.guest.run(f"{POLLBOX} update /run/updates/{name}.raucb", timeout=INSTALL_DEADLINE)
        return rc, out + self.guest.last_stderr

    def booted(self) -> tuple[str, str] | None:
        """(boot id, slot) of the running system, or None while the agent does not answer."""
        try:
            self.guest.connect(5)
            rc, out = self.guest.run("cat /proc/sys/kernel/random/boot_id; "
                                     "sed -n 's/.*rauc\\.slot=\\([AB]\\).*/\\1/p' /proc/cmdline", timeout=30)
        except (OSError, TimeoutError, AssertionError):
            self.guest.close()
            return None
        words = out.split()
        return (words[0], words[1]) if rc == 0 and len(words) == 2 else None

    def booted_slot(self) -> str | None:
        now = self.booted()
        return now[1] if now else None

    def wait_for_boot(self, slot: str, after: str, deadline: float) -> str:
        """Until a boot other than ``after`` runs ``slot``; its boot id."""
        def running() -> str | None:
            if not self.vm.running():
                raise AssertionError(self.vm.stopped_report())
            now = self.booted()
            return now[0] if now and now[0] != after and now[1] == slot else None
        return wait_for(running, f"the unit running slot {slot} in a new boot", deadline)

    def restart_into(self, slot: str, *, ready: bool, deadline: float) -> float:
        """``systemctl reboot`` in the guest; seconds until it runs ``slot`` (with the appliance ready, and for
        a trial the slot blessed, when ``ready``)."""
        now = self.booted()
        assert now is not None, "the test agent does not answer"
        start = time.monotonic()
        self.guest.spawn("sleep 1; systemctl reboot")
        self.guest.close()
        self.boot_id = self.wait_for_boot(slot, now[0], deadline)
        if ready:
            wait_for(lambda: self.vm.status(), "the chair's screen answering", deadline)
            self.guest.check("mkdir -p /run/updates && mount -o ro LABEL=POLLBOXUPD /run/updates || true")
        return round(time.monotonic() - start, 1)

    def entries(self) -> list[str]:
        """The boot entries on the ESP (once it is mounted: early in a boot the agent answers before it is)."""
        wait_for(lambda: self.guest.run("mountpoint -q /boot/efi", timeout=30)[0] == 0 or None,
                 "the ESP mounted at /boot/efi", BOOT_DEADLINE[self.vm.accel])
        return sorted(self.guest.check("ls /boot/efi/loader/entries").split())

    def rauc_status(self) -> dict[str, object]:
        return dict(json.loads(self.guest.check("rauc status --output-format=json", timeout=120)))

    def last_update(self) -> dict[str, str]:
        """The appliance's last update outcome as its status says it (the journal's fold)."""
        status = wait_for(lambda: self.vm.status(), "the appliance's status", BOOT_DEADLINE[self.vm.accel])
        return dict(status["update"]["last"] or {})

    def slot_state(self, slot: str) -> str:
        return self.guest.check(f"/usr/lib/pollbox/rauc-bootloader get-state {slot}").strip()

    def stop(self) -> None:
        self.guest.close()
        self.vm.stop()
        (self.work / "update-times.json").write_text(json.dumps(self.times, indent=1))


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpdateUnit]:
    why = host_can_boot()
    if why:
        pytest.skip(why)
    made = UpdateUnit(tmp_path_factory.mktemp("update-unit"))
    made.boot()
    try:
        yield made
    finally:
        made.stop()


def test_0_the_unit_as_flashed_names_its_system_and_signs_it(unit: UpdateUnit) -> None:
    """Before any update, slot A (written by flashing, never by RAUC) is named with the root's version and the
    slot's SHA-256 computed in the unit at its first boot, which is the hash of the root partition computed
    here from outside (``good_root``: the copy's root partition, taken before the unit booted); the
    technician's readiness self-test signs the three into its report."""
    assert unit.booted_slot() == "A"
    version = unit.guest.check("cat /usr/lib/pollbox/system-version").strip()
    assert version.startswith("0.") and "+image." in version, version
    said = unit.guest.check("journalctl -b -u pollbox-slot-status.service --no-pager -o cat")
    assert f"sha256 {unit.good_root}" in said, said
    # the hashing did not hold the appliance back: it began only once pollbox.service was started (READY=1)
    ready_at = int(unit.guest.check("systemctl show -p ActiveEnterTimestampMonotonic --value pollbox.service"))
    hashing_at = int(unit.guest.check(
        "systemctl show -p ExecMainStartTimestampMonotonic --value pollbox-slot-status.service"))
    assert 0 < ready_at <= hashing_at, (ready_at, hashing_at)
    unit.times["first_boot_hash_started_after_ready_s"] = round((hashing_at - ready_at) / 1e6, 1)
    # RAUC, restarted once the entry was written, names slot A; the running appliance then names it too
    detailed = json.loads(unit.guest.check("rauc status --detailed --output-format=json", timeout=120))
    assert booted_slot(detailed) == RunningSlot("A", version, unit.good_root), detailed
    appliance_log = "journalctl -b -u pollbox.service --no-pager -o cat | grep -F 'running system'"
    wait_for(lambda: "hashed now" in unit.guest.run(appliance_log, timeout=60)[1] or None,
             "the running appliance naming the system once slot A is hashed", IDENTITY_DEADLINE)
    said = unit.guest.run(appliance_log, timeout=60)[1]
    assert "not yet hashed" in said and f"sha256 {unit.good_root}" in said, said
    unit.guest.check("systemctl stop pollbox.service", timeout=180)
    unit.guest.run(READINESS, timeout=READINESS_TAKES)  # some checks fail in the rig (no receiver): the report is made
    lines = json.loads(unit.guest.check(f"python3 -c {shlex.quote(OUTBOX_LINES)}"))
    reports = [r.fields["body"] for r in map(parse_line, lines)
               if r.fields["type"] == "annotation" and r.fields["body"].get("topic") == "readiness"]
    assert reports, f"no readiness report among {len(lines)} records"
    assert (reports[-1].get("system_slot"), reports[-1].get("system_version"), reports[-1].get("system_hash")) == \
        ("A", version, unit.good_root), reports[-1]
    unit.guest.check(f"mkdir -p {os.path.dirname(WATCHDOG_DROP_IN)}"
                     f" && printf '[Service]\\nWatchdogSec={EMULATION_WATCHDOG}\\n' > {WATCHDOG_DROP_IN}"
                     " && systemctl daemon-reload && systemctl reset-failed pollbox.service"
                     " && systemctl start --no-block pollbox.service", timeout=120)
    wait_for(lambda: unit.vm.status(), "the chair's screen answering again", BOOT_DEADLINE[unit.vm.accel])


def test_1_a_bundle_signed_by_another_key_is_refused_and_nothing_is_written(unit: UpdateUnit) -> None:
    assert unit.booted_slot() == "A" and unit.entries() == ["pollbox-a.conf"]
    rc, said = unit.update("foreign")
    assert rc == 2 and "update refused (bad_signature)" in said and "nothing was written" in said, said
    assert unit.entries() == ["pollbox-a.conf"]
    unit.guest.check("cmp -n 1048576 /dev/zero /dev/disk/by-partlabel/root-b")  # slot B: still empty
    rc, _ = unit.guest.run("runuser -u pollbox-kiosk -- rauc status", timeout=120)  # the browser's user
    assert rc != 0 and "Rejected send message" in unit.guest.last_stderr, unit.guest.last_stderr


def test_2_a_good_update_boots_on_trial_and_is_kept_once_ready(unit: UpdateUnit) -> None:
    start = time.monotonic()
    rc, said = unit.update("good")
    unit.times["install_s"] = round(time.monotonic() - start, 1)
    assert rc == 0 and "installed into slot B" in said, said
    assert unit.entries() == ["pollbox-a.conf", "pollbox-b+1.conf"]
    unit.times["restart_to_trial_ready_s"] = unit.restart_into("B", ready=True, deadline=BOOT_DEADLINE[unit.vm.accel])
    blessed = wait_for(lambda: unit.entries() if "pollbox-b.conf" in unit.entries() else None,
                       "slot B's entry blessed after the appliance became ready", 300)
    assert blessed == ["pollbox-a.conf", "pollbox-b.conf"]
    status = unit.rauc_status()
    assert status["booted"] == "B", status
    assert unit.slot_state("B") == "good"
    detailed = json.loads(unit.guest.check("rauc status --detailed --output-format=json", timeout=120))
    assert booted_slot(detailed) == RunningSlot("B", "0.2.0+good", unit.good_root), detailed
    last = unit.last_update()
    assert (last["what"], last["version"], last["slot"]) == ("booted", "0.2.0+good", "B"), last


def test_3_an_update_that_never_becomes_ready_rolls_back_by_itself(unit: UpdateUnit) -> None:
    start = time.monotonic()
    rc, said = unit.update("never-ready")
    unit.times["install_never_ready_s"] = round(time.monotonic() - start, 1)
    assert rc == 0 and "installed into slot A" in said, said
    assert unit.entries() == ["pollbox-a+1.conf", "pollbox-b.conf"]
    deadline = BOOT_DEADLINE[unit.vm.accel] * 2 + 600
    start = time.monotonic()
    unit.times["restart_to_trial_s"] = unit.restart_into("A", ready=False, deadline=deadline)  # the trial boot
    assert unit.entries() == ["pollbox-a+0-1.conf", "pollbox-b.conf"]  # systemd-boot took A's one try
    # the appliance fails; the trial timeout restarts the unit, and systemd-boot boots B (A has no tries left)
    unit.wait_for_boot("B", unit.boot_id, deadline)
    wait_for(lambda: unit.vm.status(), "the chair's screen answering on slot B", BOOT_DEADLINE[unit.vm.accel])
    unit.times["rollback_s"] = round(time.monotonic() - start, 1)
    assert unit.entries() == ["pollbox-a+0-1.conf", "pollbox-b.conf"]
    assert unit.slot_state("A") == "bad" and unit.slot_state("B") == "good"
    assert "the appliance never became ready: restarting into the other slot" in unit.vm.console()
    last = unit.last_update()  # the appliance on B saw the install into A never stay: journaled, sent upstream
    assert (last["what"], last["version"], last["slot"]) == ("rolled_back", "0.2.1+never-ready", "B"), last


def test_4_a_power_cut_during_the_install_leaves_the_unit_on_its_slot(unit: UpdateUnit) -> None:
    """RAUC marks the target slot bad before writing it: a unit whose power is cut mid-install boots the slot
    it ran, and the next update starts again."""
    assert unit.booted_slot() == "B"
    unit.guest.check("mkdir -p /run/updates && (mountpoint -q /run/updates || mount -o ro LABEL=POLLBOXUPD "
                     "/run/updates)")  # the rollback's boot came up without the test mounting the bundles
    unit.guest.spawn(f"{POLLBOX} update /run/updates/good.raucb", log="/run/update.log")

    def writing() -> bool:  # RAUC marks the target bad right before it writes it
        said = unit.guest.run("cat /run/update.log", timeout=30)[1]
        if "refused" in said or "failed" in said:
            raise AssertionError(f"the update did not start writing: {said}")
        return unit.entries()[0] == "pollbox-a+0.conf"  # it was pollbox-a+0-1.conf after the rollback
    wait_for(writing, "RAUC marking slot A bad to write it", 600)
    unit.guest.close()
    unit.vm.power_cut()
    start = time.monotonic()
    unit.vm.start()
    unit.guest.connect(BOOT_DEADLINE[unit.vm.accel], unit.vm)
    assert unit.booted_slot() == "B"
    unit.vm.wait_until_ready()
    unit.times["power_cut_to_ready_s"] = round(time.monotonic() - start, 1)
    assert unit.slot_state("A") == "bad" and unit.slot_state("B") == "good"
    assert unit.entries() == ["pollbox-a+0.conf", "pollbox-b.conf"]
    last = unit.last_update()  # the journal says the install was cut short, and the screen says it failed
    assert (last["what"], last["version"]) == ("failed", "0.2.0+good"), last
