"""The TPM-held record key in the booted image, against a software TPM attached to QEMU as a TPM TIS chip.

A host-side ``swtpm`` (Debian ``swtpm``) speaks to QEMU over a Unix socket and QEMU shows the guest a
TPM 2.0 on the TIS interface (``tpm-tis``), as a Pi shows an SPI TPM module: the guest's kernel makes
``/dev/tpmrm0``, which ``tpm-udev``'s rule gives to the ``tss`` group, and the image's ``pollbox`` user
is in that group. Each unit has its own swtpm state folder (a fresh folder is a new chip).

The station's stick says ``[key] store = "tpm"`` and carries no key file, so the unit's first boot makes
the key in the TPM (the station import's key step, ``device/firstboot_key.py``) and writes its
enrollment request onto the stick (a FAT image); the chair's screen says the key is not enrolled yet.
With the unit powered off, the CEC enrolls the request on the host and its certificate is written back
onto the stick; at the next boot ``pollbox-enrollment.service`` takes it and the screen says the key is
enrolled by the CEC, and the appliance's journal records ``device_key_enrolled`` once. From there:

- the stick pulled out and plugged in again (QMP) while the unit runs, its certificate file removed from the
  card meanwhile: first with the udev rule masked for that boot (an empty file bound over it, udev restarted),
  when systemd queues no job for the step and it does not run (and ``udevadm test`` shows the rules give the
  stick no ``SYSTEMD_WANTS`` for it, which they give with the rule back); then with
  the rule, when it starts ``pollbox-enrollment.service``: once with the stick's mount made to fail (its mount
  point taken by a file), a failed take that the running appliance journals (``device_key_enrollment_failed``,
  with mount's reason) and shows as not valid; then as it is, when the step takes the certificate again and the
  running appliance shows the key enrolled without a restart; the journal still holds one
  ``device_key_enrolled`` (the same certificate);

- every record the unit signs over a short day (open, three voters, close) is taken off the unit and
  verified on the host with the enrolled public key: ``"alg":"p256"``, that key's id, an unbroken chain;
- the key file on the card holds the TPM's wrapped blob, whose public area says it was made in the TPM
  and cannot leave it (``fixedTPM``, ``fixedParent``, ``sensitiveDataOrigin``); no ``device.key``;
- the card (the whole disk) copied into another unit with a fresh swtpm: the appliance refuses to start,
  saying why on the console and in the system journal, and signs nothing;
- the unit's TPM cleared (``TPM2_Clear`` from the guest, as the firmware's "clear TPM" does): the
  appliance refuses to start with the technician's procedure, and signs nothing.

It also measures the record signing rate with the TPM key against the software key file in the same
run inside the guest (written to ``signing-rates.json`` in the test's folder and printed). swtpm is
not a bound for a real chip: here every TPM command also crosses QEMU's emulated TIS registers and a
socket to swtpm on the host, under software emulation; a discrete SPI TPM is slower per signature.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from device.demo import STATION, demo_pins
from protocol.chain import check_chain
from protocol.envelope import parse_line
from protocol.keys import P256, decode_any_public_key, key_id
from provisioning.enrollment import enroll
from receiver.registry import Registry

from .guest import (
    EMULATION_WATCHDOG,
    PORT_NAME,
    WATCHDOG_DROP_IN,
    Guest,
    host_can_boot,
    make_test_copy,
)
from .vm import (
    BOOT_DEADLINE,
    IMAGE_TEST_TIMEOUT,
    STICK_FILES,
    TEST_CEC,
    VirtualMachine,
    build_image,
    demo_station,
    run,
    wait_for,
    write_stick,
)

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]

DATA = "/var/lib/pollbox/station/data"
PYTHON = "/opt/pollbox/bin/python"
SWTPM_LISTENING = 20.0
"""Seconds for swtpm to create its control socket."""
STARTED = 300.0
"""How long the appliance may take to start (or to refuse) after a restart, in a loaded emulated guest."""
SIGNING_SPAN = 5.0
"""Seconds each key signs records for in the guest's rate measurement."""
OUTBOX_DUMP = f"""import json, sqlite3
c = sqlite3.connect("file:{DATA}/journal.db?mode=ro", uri=True)
print(json.dumps({{"lines": [r[0] for r in c.execute("SELECT line FROM outbox ORDER BY seq")],
                  "events": c.execute("SELECT COUNT(*) FROM events").fetchone()[0]}}))
"""
"""Run as root by the guest's python3: every signed upstream record on the unit, and how many events."""
ENROLLMENT_DUMP = f"""import json, sqlite3
c = sqlite3.connect("file:{DATA}/journal.db?mode=ro", uri=True)
print(json.dumps([[k, json.loads(b)] for k, b in
                  c.execute("SELECT kind, body FROM events WHERE kind LIKE 'device_key_%' ORDER BY seq")]))
"""
"""Run as root by the guest's python3: the journal's enrollment events (kind, body)."""
STICK_GONE = 120.0
"""Seconds the guest has to drop the stick's device after QEMU unplugs it."""
ENROLLMENT_RULE = "/etc/udev/rules.d/61-pollbox-enrollment.rules"
"""The image's udev rule that starts pollbox-enrollment.service when the technician's stick is plugged in."""
ENROLLMENT_MOUNT = "/run/pollbox-enrollment"
"""Where the image's pollbox-enrollment mounts the stick."""
NO_RULE = "/run/pollbox-test-no-enrollment-rule"
"""An empty file the plug-in test binds over that rule for one boot (a same-named file in /run/udev/rules.d would
not mask it: of two files of one name, udev takes the one in /etc)."""
RESTART_UDEV = "systemctl restart systemd-udevd.service"
"""udev runs in a mount namespace of its own (the unit's PrivateMounts): restarted, it sees the rule's file as
bound or unbound now, and reads its rules afresh."""
UDEV_SEES = 'nsenter -t "$(systemctl show -p MainPID --value systemd-udevd.service)" -m cat ' + ENROLLMENT_RULE
"""The rule's file as udev itself sees it."""
CLEAR_TPM = """from tpm2_pytss import ESAPI
from tpm2_pytss.constants import ESYS_TR
tpm = ESAPI("device:/dev/tpmrm0")
tpm.clear(ESYS_TR.LOCKOUT)
tpm.close()
"""
"""TPM2_Clear with the (empty) lockout authorization: a new owner seed, as the firmware's "clear TPM"."""
SIGNING_RATES = f"""import json, tempfile, time
from pathlib import Path
from device.signing import create_signer, load_signer
from protocol.envelope import make_record

def rate(signer):
    count, start = 0, time.perf_counter()
    while True:
        make_record(key=signer, station="{STATION}", seq=count + 1, prev="0" * 64, at=time.time(),
                    type_="voter_admitted", body={{"admitted": count + 1, "ballots": count}})
        count += 1
        spent = time.perf_counter() - start
        if spent >= {SIGNING_SPAN}:
            return round(count / spent, 1)

tpm = load_signer(Path("{DATA}"), "tpm", "device:/dev/tpmrm0")
software = create_signer(Path(tempfile.mkdtemp()), "file")
print(json.dumps({{"tpm_p256": rate(tpm), "file_ed25519": rate(software)}}))
tpm.close()
"""
"""Run as the pollbox user with the appliance's Python: records signed per second by each key, same run."""


class QemuTpm:
    """One unit's TPM chip: ``swtpm socket --tpm2`` with its state in a folder, QEMU at its control socket."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.socket = state.with_name(state.name + ".sock")
        self.log = state.with_name(state.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def ensure_running(self) -> None:
        """Start swtpm unless it runs (it may end when a QEMU that used it is killed); the state stays."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.state.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state}",
             "--ctrl", f"type=unixio,path={self.socket}", "--log", f"file={self.log},level=1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"swtpm exited: {self.log.read_text(errors='replace')[-2000:]}")
            return self.socket.exists()
        wait_for(listening, "swtpm's control socket", SWTPM_LISTENING)

    def qemu_args(self) -> list[str]:
        """The QEMU arguments that show the guest this TPM on the TIS interface."""
        return ["-chardev", f"socket,id=chrtpm,path={self.socket}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
                "-device", "tpm-tis,tpmdev=tpm0"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None


@dataclass
class TpmUnit:
    """A booted test copy of the image with its own swtpm, and what the tests learnt from it."""

    vm: VirtualMachine
    tpm: QemuTpm
    guest: Guest | None = None
    facts: dict[str, object] = field(default_factory=dict)

    def boot(self) -> Guest:
        """Power on (with the test agent's port and the TPM) and connect to the agent."""
        self.tpm.ensure_running()
        self.vm.start()
        guest = Guest(self.vm.workdir / "agent.sock")
        guest.connect(BOOT_DEADLINE[self.vm.accel], self.vm)
        self.guest = guest
        return guest

    def ensure_booted(self) -> Guest:
        if self.guest is None or not self.vm.running():
            return self.boot()
        return self.guest

    def shut_down(self) -> None:
        if self.guest is not None:
            self.guest.close()
            self.guest = None
        if self.vm.running():
            self.vm.shut_down()

    def stop(self) -> None:
        if self.guest is not None:
            self.guest.close()
            self.guest = None
        self.vm.stop()
        self.tpm.stop()


class WritableStickMachine(VirtualMachine):
    """A unit whose station stick can be written, as a technician's is: its first boot writes the TPM key's
    enrollment request onto it (the other image tests give the stick read-only)."""

    def unit_devices(self) -> list[str]:
        return [arg.replace(",readonly=on,", ",") if arg.startswith("if=none,id=stick,")
                else arg + ",id=stickdev" if arg.startswith("usb-storage,drive=stick,") else arg
                for arg in super().unit_devices()]

    plugs = 0
    """How often the stick was plugged in again (each time as a new drive and device, named by this count)."""

    def replug_stick(self, guest: Guest) -> None:
        """Pull the stick out (QMP ``device_del``), wait until the guest has dropped it, plug it in again."""
        suffix = str(self.plugs + 1) if self.plugs else ""
        drive, device = f"stick{suffix}", f"stickdev{suffix}"
        self.plugs += 1
        self.qmp("device_del", id=device)
        wait_for(lambda: guest.run("test -e /dev/disk/by-label/POLLBOXUSB")[0] != 0, "the stick gone in the guest",
                 STICK_GONE)
        wait_for(lambda: drive not in [b["device"] for b in self.qmp("query-block")], "QEMU's stick drive gone "
                 "(it holds the image's write lock)", STICK_GONE)
        again = self.plugs + 1
        said = self.qmp("human-monitor-command", **{"command-line": f"drive_add 0 if=none,id=stick{again},"
                                                                    f"format=raw,file={self.stick}"})
        assert "OK" in str(said) or not str(said).strip(), f"drive_add: {said}"  # HMP answers errors as text
        self.qmp("device_add", driver="usb-storage", drive=f"stick{again}", id=f"stickdev{again}", removable=True)


def make_unit(workdir: Path, image: Path, stick: Path, station: Path) -> TpmUnit:
    """A unit (not yet powered on) booting ``image`` with the test agent's port and a swtpm of its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    vm = WritableStickMachine(workdir, image, stick, station)
    tpm = QemuTpm(workdir / "swtpm")
    vm.extra += [
        "-device", "virtio-serial-pci,id=vser0",
        "-chardev", f"socket,id=agent,path={workdir / 'agent.sock'},server=on,wait=off",
        "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={PORT_NAME}",
        *tpm.qemu_args(),
    ]
    return TpmUnit(vm, tpm)


def tpm_stick(workdir: Path) -> tuple[Path, Path]:
    """The demo station on a stick whose config keeps the record key in the TPM, with no key file on it."""
    station = demo_station(workdir)
    config = station / "station.toml"
    assert "[key]" not in config.read_text()
    config.write_text(config.read_text() + '\n[key]\nstore = "tpm"\n')
    names = tuple(n for n in STICK_FILES if n not in ("data/device.key", "data/device.pub"))
    return write_stick(workdir / "stick.img", station, names), station


def stick_names(stick: Path) -> list[str]:
    """The files in the top folder of a FAT stick image (mtools; the unit is powered off)."""
    return [line.removeprefix("::/") for line in run(["mdir", "-b", "-i", str(stick), "::/"]).split()
            if not line.endswith("/")]


def key_line(unit: TpmUnit) -> tuple[dict[str, object], str]:
    """The status's ``key`` and the details page (the station's language, Kyrgyz) of the running appliance."""
    status = wait_for(lambda: unit.vm.status(), "the appliance's status", STARTED)
    with urllib.request.urlopen(unit.vm.url("/details"), timeout=30) as answer:
        return dict(status["key"]), answer.read().decode()


def outbox(guest: Guest) -> dict[str, object]:
    """Every signed record on the unit (the outbox's lines, in order) and the journal's event count."""
    return dict(json.loads(guest.check(f"python3 -c {shlex.quote(OUTBOX_DUMP)}")))


def enrollment_events(guest: Guest) -> list[list[object]]:
    """The appliance journal's enrollment events on the unit, as [kind, body]."""
    return list(json.loads(guest.check(f"python3 -c {shlex.quote(ENROLLMENT_DUMP)}")))


def key_becomes(unit: TpmUnit, state: str) -> dict[str, object]:
    """The status's ``key`` once the running appliance says ``state``."""
    def shown() -> dict[str, object] | None:
        status = unit.vm.status()
        key = dict(status["key"]) if status else {}
        return key if key.get("enrollment") == state else None
    return wait_for(shown, f"the key line saying {state!r}", STARTED)


def appliance_journal(guest: Guest) -> str:
    """What pollbox.service said this boot (the system journal)."""
    return guest.check("journalctl -b -u pollbox.service --no-pager -o cat")


def restart_appliance(guest: Guest) -> None:
    """Restart pollbox.service under the raised watchdog of emulated guests, its failed starts forgotten."""
    guest.check(f"mkdir -p {WATCHDOG_DROP_IN.rsplit('/', 1)[0]}"
                f" && printf '[Service]\\nWatchdogSec={EMULATION_WATCHDOG}\\n' > {WATCHDOG_DROP_IN}"
                " && systemctl daemon-reload && systemctl reset-failed pollbox.service"
                " && systemctl restart --no-block pollbox.service", timeout=120)


def refused_with(unit: TpmUnit, said: str) -> str:
    """Until the appliance has refused to start saying ``said`` (system journal); that journal."""
    guest = unit.guest
    assert guest is not None

    def refused() -> str | None:
        assert guest is not None
        text = appliance_journal(guest)
        return text if said in text else None
    return wait_for(refused, f"pollbox.service refusing with {said!r}", STARTED)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    if shutil.which("swtpm") is None:
        pytest.skip("no swtpm (Debian package swtpm) to attach a TPM to the virtual machine")
    workdir = tmp_path_factory.mktemp("tpm")
    image = build_image("amd64")
    copy = make_test_copy(image, workdir / "test-copy" / image.name)
    stick, station = tpm_stick(workdir)
    first = make_unit(workdir / "unit", copy, stick, station)
    shutil.rmtree(copy.parent)
    made: dict[str, object] = {"workdir": workdir, "unit": first}
    try:
        enrolled_day(first, workdir)
        yield made
    finally:
        first.stop()
        other = made.get("other")
        if isinstance(other, TpmUnit):
            other.stop()


def enrolled_day(unit: TpmUnit, workdir: Path) -> None:
    """First boot (the key made in the TPM, its request on the stick), the CEC's certificate back onto the stick
    and taken at the next boot, then a short day; keep what was signed."""
    guest = unit.boot()
    facts = unit.facts
    facts["tpm_version"] = guest.check("cat /sys/class/tpm/tpm0/tpm_version_major").strip()
    facts["tpmrm0"] = guest.check("stat -c '%G %a' /dev/tpmrm0").strip()
    facts["pollbox_groups"] = guest.check("id -nG pollbox").split()
    facts["import"] = guest.run(f"runuser -u pollbox -- {PYTHON} -c 'import tpm2_pytss; print(tpm2_pytss.__file__)'")
    unit.vm.wait_until_ready()  # the first boot made the key: the appliance starts with it
    facts["first_boot"] = guest.check("journalctl -b -u pollbox-station-import.service --no-pager -o cat")
    facts["card"] = guest.check(f"ls -A {DATA}").split()
    facts["device.tpm"] = json.loads(guest.pull(f"{DATA}/device.tpm"))
    facts["before_enrollment"] = key_line(unit)
    unit.shut_down()
    # At the CEC: the request from the stick enrolled (its signature made by the key in the TPM checked), the
    # certificate written back onto the stick.
    stick = unit.vm.stick
    facts["stick_after_first_boot"] = names = stick_names(stick)
    requests = [n for n in names if n.startswith("enrollment-request-")]
    assert len(requests) == 1, names
    request = workdir / requests[0]
    run(["mcopy", "-i", str(stick), f"::/{requests[0]}", str(request)])
    facts["request"] = json.loads(request.read_text())
    (workdir / "certs").mkdir()
    [certificate] = enroll([request], workdir / "registry.json", TEST_CEC, workdir / "certs", 1.7e9)
    Registry.load(workdir / "registry.json", TEST_CEC.public_key())  # the CEC's signature holds
    facts["registry"] = json.loads((workdir / "registry.json").read_text())
    run(["mcopy", "-i", str(stick), str(certificate), f"::/{certificate.name}"])
    # The next boot takes it.
    guest = unit.boot()
    unit.vm.wait_until_ready()
    facts["enrollment_taken"] = guest.check("journalctl -b -u pollbox-enrollment.service --no-pager -o cat")
    facts["after_enrollment"] = key_line(unit)
    facts["enrollment_events"] = enrollment_events(guest)
    guest.control({"cmd": "open"})
    for pin in demo_pins(3):
        assert guest.control({"cmd": "manual", "number": pin})["decision"]["outcome"] == "admitted"
        guest.control({"cmd": "drop"})
    guest.control({"cmd": "close"})
    facts["day"] = outbox(guest)
    rc, rates = guest.run(f"cd / && runuser -u pollbox -- {PYTHON} -c {shlex.quote(SIGNING_RATES)}", 300)
    assert rc == 0, guest.last_stderr[-2000:]
    facts["rates"] = json.loads(rates)
    (workdir / "signing-rates.json").write_text(json.dumps(facts["rates"]))
    print(f"record signing in the guest, same run: {facts['rates']}")


def test_the_booted_unit_reaches_its_tpm(rig: dict[str, object]) -> None:
    facts = rig["unit"].facts  # type: ignore[attr-defined]
    assert facts["tpm_version"] == "2"
    assert facts["tpmrm0"] == "tss 660", "the TPM's resource manager is not the tss group's"
    assert "tss" in facts["pollbox_groups"], facts["pollbox_groups"]
    rc, where = facts["import"]
    assert rc == 0 and where.startswith("/opt/pollbox/lib/"), where


def test_the_first_boot_makes_the_key_and_the_next_boot_takes_the_cec_s_certificate(rig: dict[str, object]) -> None:
    facts = rig["unit"].facts  # type: ignore[attr-defined]
    request = facts["request"]
    said = facts["first_boot"]
    assert f"device key {request['key_id']} made inside this unit's TPM" in said, said[-2000:]
    assert "take the USB stick to the CEC" in said, said[-2000:]
    assert request["station"] == STATION and request["alg"] == P256
    key, page = facts["before_enrollment"]
    assert (key["id"], key["alg"], key["store"], key["enrollment"]) == (request["key_id"], P256, "tpm", "requested")
    assert 'data-key="requested"' in page and "азырынча каттай элек" in page
    assert "enrollment.json" not in facts["card"]
    taken = facts["enrollment_taken"]
    assert f"device key {request['key_id']} enrolled by the CEC" in taken, taken[-2000:]
    key, page = facts["after_enrollment"]
    assert key["enrollment"] == "enrolled" and key["enrolled_at"], key
    assert 'data-key="enrolled"' in page and "БШК каттаган" in page
    [[kind, body]] = facts["enrollment_events"]
    assert kind == "device_key_enrolled" and body["key_id"] == request["key_id"] and body["store"] == "tpm", body


def enrollment_invocation(guest: Guest) -> str:
    """The id of pollbox-enrollment.service's last start (systemd gives each start a new one)."""
    return guest.check("systemctl show -p InvocationID --value pollbox-enrollment.service").strip()


def stick_plugged_in(guest: Guest) -> None:
    """Until udev has handled the plugged stick and systemd holds its device unit (at which moment systemd queues
    whatever the device's ``SYSTEMD_WANTS`` names)."""
    wait_for(lambda: guest.run('udevadm settle && systemctl is-active --quiet '
                               '"$(systemd-escape -p --suffix=device /dev/disk/by-label/POLLBOXUSB)"')[0] == 0,
             "the plugged stick's device unit active", STICK_GONE)


def rules_for_the_stick(guest: Guest) -> str:
    """What udev's rules, as they are now, give the stick's device for an ``add`` (``udevadm test``: the rules are
    run, nothing is done)."""
    return guest.check('udevadm test --action=add "/sys$(udevadm info -q path -n /dev/disk/by-label/POLLBOXUSB)"'
                       " 2>&1", timeout=120)


def test_a_stick_plugged_into_the_running_unit_gives_it_its_certificate(rig: dict[str, object]) -> None:
    unit: TpmUnit = rig["unit"]  # type: ignore[assignment]
    guest = unit.ensure_booted()
    unit.vm.wait_until_ready()
    guest.check(f"rm {DATA}/enrollment.json")  # as if the certificate had not been taken at boot
    key_becomes(unit, "requested")
    assert isinstance(unit.vm, WritableStickMachine)
    # Without the udev rule the stick plugged in starts nothing. The root is read-only, so the rule is masked
    # for this boot by an empty file bound over it, and udev reads its rules again.
    before = enrollment_invocation(guest)
    guest.check(f": > {NO_RULE} && mount --bind {NO_RULE} {ENROLLMENT_RULE} && {RESTART_UDEV}", timeout=120)
    assert guest.check(UDEV_SEES) == "", "udev still sees the rule"
    try:
        unit.vm.replug_stick(guest)
        stick_plugged_in(guest)
        jobs = guest.check("systemctl list-jobs --no-legend")
        assert "pollbox-enrollment" not in jobs, jobs
        assert enrollment_invocation(guest) == before, "the enrollment step ran without the udev rule"
        status = unit.vm.status()
        assert status is not None and dict(status["key"])["enrollment"] == "requested", status
        masked = rules_for_the_stick(guest)
        assert "ID_FS_LABEL=POLLBOXUSB" in masked and "SYSTEMD_WANTS=pollbox-enrollment.service" not in masked, \
            masked[-3000:]
    finally:
        guest.check(f"umount {ENROLLMENT_RULE} && rm {NO_RULE} && {RESTART_UDEV}", timeout=120)
    assert "pollbox-enrollment.service" in guest.check(UDEV_SEES), "udev does not see the rule again"
    assert "SYSTEMD_WANTS=pollbox-enrollment.service" in rules_for_the_stick(guest)
    # With the rule the stick plugged in starts the step. First its mount fails (the mount point is taken by a
    # file): a failed take, which the running appliance journals with mount's reason and shows as not valid.
    guest.check(f"rmdir {ENROLLMENT_MOUNT} 2>/dev/null; : > {ENROLLMENT_MOUNT}")
    try:
        unit.vm.replug_stick(guest)
        failed = key_becomes(unit, "invalid")
        assert "could not be mounted" in str(failed["problem"]), failed
        assert enrollment_invocation(guest) != before
    finally:
        guest.check(f"rm -f {ENROLLMENT_MOUNT}")
    [kind, body] = enrollment_events(guest)[-1]
    assert kind == "device_key_enrollment_failed" and isinstance(body, dict) and "could not be mounted" in body["reason"], body
    # Then the same stick plugged in again: the step takes the certificate.
    unit.vm.replug_stick(guest)
    key = key_becomes(unit, "enrolled")  # no restart of the appliance
    assert key["id"] == unit.facts["request"]["key_id"], key  # type: ignore[index]
    said = guest.check("journalctl -b -u pollbox-enrollment.service --no-pager -o cat")
    assert said.count("enrolled by the CEC") >= 2, said[-3000:]  # at boot, and at the insertion
    assert guest.check(f"stat -c %U {DATA}/enrollment.json").strip() == "pollbox"
    kinds = [kind for kind, _ in enrollment_events(guest)]
    assert kinds == ["device_key_enrolled", "device_key_enrollment_failed"], kinds  # the same certificate: once


def test_the_key_is_made_in_the_tpm_and_signs_every_record(rig: dict[str, object]) -> None:
    from tpm2_pytss import TPM2B_PUBLIC
    from tpm2_pytss.constants import TPMA_OBJECT

    facts = rig["unit"].facts  # type: ignore[attr-defined]
    request = facts["request"]
    assert request["alg"] == P256
    public = decode_any_public_key(request["public_key"], P256)  # a 65-byte uncompressed P-256 point
    assert key_id(public) == request["key_id"]
    entries = [e for e in facts["registry"]["devices"] if e["key_id"] == request["key_id"]]
    assert len(entries) == 1 and entries[0]["alg"] == P256 and entries[0]["public_key"] == request["public_key"]
    # On the card: the TPM's wrapped blob and the public key, no private key file.
    assert "device.tpm" in facts["card"] and "device.key" not in facts["card"], facts["card"]
    blob = facts["device.tpm"]
    assert blob["public_key"] == request["public_key"]
    area, _ = TPM2B_PUBLIC.unmarshal(base64.b64decode(blob["public"]))
    attributes = area.publicArea.objectAttributes
    for made_inside in (TPMA_OBJECT.FIXEDTPM, TPMA_OBJECT.FIXEDPARENT, TPMA_OBJECT.SENSITIVEDATAORIGIN):
        assert attributes & made_inside, f"the key's public area lacks {made_inside!r}"
    # Every record the unit signed, checked on the host against the enrolled key.
    lines = [parse_line(line) for line in facts["day"]["lines"]]
    # the opening, the close report and what came between (voters are counted in them, never sent one by one)
    assert [r.type for r in lines][0] == "polls_opened" and [r.type for r in lines][-1] == "polls_closed", \
        [r.type for r in lines]
    for record in lines:
        assert record.alg == P256 and record.key == request["key_id"] and record.station == STATION
        record.verify(public)  # raises EnvelopeError("bad_signature") otherwise
    check_chain(lines)
    rates = facts["rates"]
    assert rates["tpm_p256"] > 0 and rates["file_ed25519"] > 0


def test_a_cleared_tpm_is_detected_at_start(rig: dict[str, object]) -> None:
    unit: TpmUnit = rig["unit"]  # type: ignore[assignment]
    guest = unit.ensure_booted()
    guest.check("systemctl stop pollbox.service", timeout=120)
    before = outbox(guest)
    guest.check(f"{PYTHON} -c {shlex.quote(CLEAR_TPM)}")
    restart_appliance(guest)
    said = refused_with(unit, "TPM was cleared")
    assert "docs/keys.md, 'The TPM was cleared'" in said and "Technician:" in said, said[-2000:]
    assert "TPM was cleared" in unit.vm.console(), "the console does not show why the unit did not start"
    rc, _ = guest.run("systemctl is-active pollbox.service")
    assert rc != 0
    assert outbox(guest) == before, "records were signed or events written after the TPM was cleared"


def test_a_card_copied_into_another_unit_cannot_sign(rig: dict[str, object]) -> None:
    first: TpmUnit = rig["unit"]  # type: ignore[assignment]
    workdir: Path = rig["workdir"]  # type: ignore[assignment]
    # The card as its own unit leaves it: the appliance stopped, what it signed read, the unit powered off.
    guest = first.ensure_booted()
    guest.check("systemctl stop pollbox.service", timeout=120)
    card = outbox(guest)
    first.shut_down()
    other = make_unit(workdir / "other", first.vm.image, first.vm.stick, first.vm.station)
    rig["other"] = other
    shutil.copyfile(first.vm.disk, other.vm.disk)  # the card, bit for bit (its backing image is the same)
    guest = other.boot()
    said = refused_with(other, "was made by another TPM")
    assert "The device key is not on the card, so this unit cannot sign records" in said, said[-2000:]
    assert "made by another TPM" in other.vm.console(), "the console does not show why the unit did not start"
    guest.check("systemctl stop pollbox.service", timeout=120)
    left = outbox(guest)
    assert len(card["lines"]) >= len(first.facts["day"]["lines"]) > 0  # type: ignore[arg-type,index]
    assert left == card, "the unit holding the copied card signed records or wrote events"
