"""The V4L2 camera through the kernel, in the booted image: vivid's output looped into its capture.

A test copy of the image boots; the test loads the kernel's ``vivid`` module (a virtual V4L2 device,
shipped in Debian's kernel) with one capture and one output node, an HDMI input and an HDMI output, and
``v4l2_guest.py`` sets both to 640x480 progressive with vivid's "Loop Video" on. The image's own
``pollbox.service`` is switched to ``scanner = "camera"`` on the capture node: the real OpenCV V4L2
source (``device/hardware/scanners/camera.py``) opens it, sets 640x480 and chooses the pixel format.
The helper then writes frames of our corpus (a voter's personal number in Code 128 and a TD1 MRZ in a
DataMatrix, as ``samples.write_samples`` draws them) into the output node at a camera's pace, vivid
copies each into the capture, and the appliance decodes it: the voter is admitted, as the chair's
screen shows from outside the unit.

What this does not show: a real camera's optics, exposure and focus (the frames are clean), and the
1280x720 mode (not run yet).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from device.demo import demo_pins
from device.demo_documents import make_td1
from device.hardware.scanners.imagefeed import place
from device.hardware.scanners.samples import render

from .guest import ProbedUnit, boot_probed_unit, host_can_boot, restart_appliance_with
from .vm import wait_for

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]
"""The first test also waits for the image build (minutes after a change) and the boot in software emulation."""

HELPER = Path(__file__).with_name("v4l2_guest.py")
TEST_DIR = "/run/pollbox-test"
PYTHON = "/opt/pollbox/bin/python"
"""The appliance's interpreter in the image (it has OpenCV and numpy; the guest's python3 has not)."""
WIDTH, HEIGHT = 640, 480
FPS = 5
"""Frames a second the helper writes (a camera gives 15; fewer keep the emulated guest responsive)."""
SHOWN_FOR = 90.0
"""How long one document is held in front of the camera."""
SERVICE_STARTS = 240.0
"""How long pollbox.service may take to restart with the camera in software emulation."""
DECISION_FOLLOWS = 120.0
"""How long a decision may take to show after the first frame (an emulated, shared CPU decoding frames)."""


class CameraRig:
    def __init__(self, unit: ProbedUnit, nodes: dict[str, str], frames: Path) -> None:
        self.unit, self.guest, self.nodes, self.frames = unit, unit.guest, nodes, frames
        self.voters = iter(demo_pins(50)[5:])

    def status(self) -> dict[str, object]:
        return self.guest.control({"cmd": "status"})

    def scanner_state(self) -> str | None:
        try:
            return str(self.status()["scanner"].get("state"))  # type: ignore[attr-defined]
        except AssertionError:
            return None

    def identified(self) -> int:
        status = wait_for(self.unit.vm.status, "the chair's screen answering", DECISION_FOLLOWS)
        return int(status["counters"]["identified"])

    def show(self, name: str, frame: object) -> int:
        """Hold ``frame`` in front of the camera (in the background); the helper's process id."""
        local = self.frames / f"{name}.png"
        Image.fromarray(frame).save(local)  # type: ignore[arg-type]
        remote = f"{TEST_DIR}/{name}.png"
        self.guest.push(local, remote)
        return self.guest.spawn(f"{PYTHON} {TEST_DIR}/v4l2_guest.py show {self.nodes['output']} "
                                f"{self.nodes['capture']} {FPS} {SHOWN_FOR} {shlex.quote(remote)}",
                                log=f"{TEST_DIR}/show-{name}.log")

    def shown_log(self, name: str) -> str:
        return self.guest.run(f"cat {TEST_DIR}/show-{name}.log")[1]

    def admits(self, name: str, frame: object) -> None:
        before = self.identified()
        pid = self.show(name, frame)
        try:
            wait_for(lambda: self.identified() > before, f"the voter on {name} admitted through the camera",
                     DECISION_FOLLOWS)
        except AssertionError as exc:
            said = self.guest.check("journalctl -u pollbox.service -n 30 --no-pager -o cat")
            kernel = self.guest.run("dmesg | tail -n 15")[1]
            raise AssertionError(f"{exc}\nhelper: {self.shown_log(name)}\nkernel:\n{kernel}\nappliance:\n{said}") from exc
        finally:
            self.guest.run(f"kill -- -{pid}")
        # the camera keeps seeing the document: later frames are the same read again, counted once
        decision: dict[str, str] = self.status()["last_decision"]  # type: ignore[assignment]
        assert decision["outcome"] == "admitted" or (
            decision["outcome"] == "duplicate_read" and "(admitted)" in decision["reason"]), decision
        assert self.identified() == before + 1


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CameraRig]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("camera")
    unit = boot_probed_unit(workdir)
    try:
        unit.vm.wait_until_ready()
        unit.guest.check(f"mkdir -p {TEST_DIR}")
        unit.guest.push(HELPER, f"{TEST_DIR}/v4l2_guest.py")
        unit.guest.check("modprobe vivid n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3"
                         " num_outputs=1 output_types=0x1", timeout=120)
        nodes = json.loads(unit.guest.check(f"{PYTHON} {TEST_DIR}/v4l2_guest.py setup {WIDTH} {HEIGHT}",
                                            timeout=180))
        restart_appliance_with(unit.guest, "scanner", "camera",
                               {"device": nodes["capture"], "width": WIDTH, "height": HEIGHT, "fps": 15},
                               timeout=SERVICE_STARTS)
        made = CameraRig(unit, nodes, workdir)
        wait_for(lambda: made.scanner_state() == "connected", "the camera opened by the appliance", SERVICE_STARTS)
        unit.guest.control({"cmd": "open"})
        yield made
    finally:
        unit.stop()


def test_a_personal_number_shown_to_a_v4l2_camera_admits_the_voter(rig: CameraRig) -> None:
    rig.admits("pin", place(render("code128", next(rig.voters), 3), HEIGHT, WIDTH))


def test_a_td1_mrz_in_a_datamatrix_shown_to_the_camera_admits_the_voter(rig: CameraRig) -> None:
    rig.admits("td1", place(render("datamatrix", make_td1(pin=next(rig.voters)), 3), HEIGHT, WIDTH))
