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

The same boot then switches the camera to 1280x720 (pollbox.service stopped, vivid loaded afresh at that
size, the service restarted with it) and a personal number admits its voter at that size too. Both sizes
run at vivid's 60 frames a second DV timings (640x480 has only 59.94; 1280x720 also has 24 to 50), so the
two are compared at one frame rate.

What this does not show: a real camera's optics, exposure and focus (the frames are clean), and a
camera's own frame rate (vivid's HDMI input runs at its timings' rate, whatever OpenCV asks for).
``bench/bench_kernel_camera.py`` times this rig (frame to decision, the idle loop's CPU).
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
from .vm import IMAGE_TEST_TIMEOUT, wait_for

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]
"""The first test also waits for the image build (minutes after a change) and the boot in software emulation."""

HELPER = Path(__file__).with_name("v4l2_guest.py")
TEST_DIR = "/run/pollbox-test"
PYTHON = "/opt/pollbox/bin/python"
"""The appliance's interpreter in the image (it has OpenCV and numpy; the guest's python3 has not)."""
WIDTH, HEIGHT = 640, 480
HD = (1280, 720)
"""The larger camera mode the appliance supports (``hardware.camera.width``/``height``)."""
RATE = 60.0
"""The frame rate of the DV timings chosen for both sizes (vivid: 59.94 at 640x480, 60 at 1280x720)."""
FPS = 5
"""Frames a second the helper writes (a camera gives 15; fewer keep the emulated guest responsive)."""
SHOWN_FOR = 90.0
"""How long one document is held in front of the camera."""
SERVICE_STARTS = 240.0
"""How long pollbox.service may take to restart with the camera in software emulation."""
DECISION_FOLLOWS = 120.0
"""How long a decision may take to show after the first frame (an emulated, shared CPU decoding frames)."""


class CameraRig:
    """vivid loaded in a booted test copy, the appliance's camera on its capture node at ``size``."""

    def __init__(self, unit: ProbedUnit, nodes: dict[str, str], frames: Path) -> None:
        self.unit, self.guest, self.nodes, self.frames = unit, unit.guest, nodes, frames
        self.voters = iter(demo_pins(50)[5:])
        self.size: tuple[int, int] | None = None
        self.rate = 0.0

    def use(self, width: int, height: int) -> None:
        """The camera at ``width`` x ``height``: vivid's timings set (pollbox.service stopped while they change)
        and the appliance restarted with that size, its camera open."""
        if self.size == (width, height):
            return
        self.guest.check("systemctl stop pollbox.service", timeout=SERVICE_STARTS)
        # each size starts from a freshly loaded module, so nothing of the other size's state remains
        if self.size is not None:
            self.guest.check(f"modprobe -r vivid && {VIVID}", timeout=120)
        nodes = json.loads(self.guest.check(f"{PYTHON} {TEST_DIR}/v4l2_guest.py setup {width} {height} {RATE}",
                                            timeout=180))
        self.rate = float(nodes.pop("rate"))
        self.nodes = nodes
        restart_appliance_with(self.guest, "scanner", "camera",
                               {"device": nodes["capture"], "width": width, "height": height, "fps": 15},
                               timeout=SERVICE_STARTS)
        self.size = (width, height)
        wait_for(lambda: self.scanner_state() == "connected", f"the camera opened by the appliance at "
                 f"{width}x{height}", SERVICE_STARTS)

    def vivid_crashed(self) -> str:
        """The kernel's report if vivid's capture thread has crashed (an oops in the kernel log), else ''."""
        said = self.guest.run("dmesg | grep -A 30 'BUG: '")[1]
        return said.strip()

    def frame(self, symbol: object) -> object:
        """``symbol`` on a frame of the camera's current size."""
        assert self.size is not None
        return place(symbol, self.size[1], self.size[0])

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

    def push_frame(self, name: str, frame: object) -> str:
        """``frame`` as a PNG in the guest; its path there."""
        local = self.frames / f"{name}.png"
        Image.fromarray(frame).save(local)  # type: ignore[arg-type]
        remote = f"{TEST_DIR}/{name}.png"
        self.guest.push(local, remote)
        return remote

    def show(self, name: str, frame: object, *more: object, fps: float = FPS, seconds: float = SHOWN_FOR) -> int:
        """Hold ``frame`` in front of the camera (in the background; with ``more``, the frames in turn, a scene
        that moves) at ``fps`` frames a second for ``seconds``; the helper's process id."""
        remote = [self.push_frame(name if i == 0 else f"{name}-{i}", f) for i, f in enumerate((frame, *more))]
        self.guest.run(f"rm -f {TEST_DIR}/show-{name}.log")
        return self.guest.spawn(f"{PYTHON} {TEST_DIR}/v4l2_guest.py show {self.nodes['output']} "
                                f"{self.nodes['capture']} {fps} {seconds} {' '.join(map(shlex.quote, remote))}",
                                log=f"{TEST_DIR}/show-{name}.log")

    def shown_log(self, name: str) -> str:
        return self.guest.run(f"cat {TEST_DIR}/show-{name}.log")[1]

    def streaming_since(self, name: str) -> float:
        """The guest's wall time at which the helper showing ``name`` queued its first frame (once it has)."""
        def started() -> float | None:
            for line in self.shown_log(name).splitlines():
                if line.startswith('{"streaming"'):
                    return float(json.loads(line)["streaming"])
            return None
        return wait_for(started, f"the helper streaming {name}", DECISION_FOLLOWS)

    def decided_at(self) -> float:
        """The guest's wall time of the decision on the document in view: the last decision's, or for a
        read of it again, the first read's."""
        decision: dict[str, object] = self.status()["last_decision"]  # type: ignore[assignment]
        at = decision["at"] if decision["outcome"] != "duplicate_read" else decision["first_at"]
        assert isinstance(at, float), decision
        return at

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


VIVID = ("modprobe vivid n_devs=1 node_types=0x101 num_inputs=1 input_types=0x3 num_outputs=1 output_types=0x1"
         " ccs_cap_mode=0 ccs_out_mode=0")
"""vivid with one capture node with an HDMI input and one output node with an HDMI output, neither cropping,
composing nor scaling (``ccs_*_mode=0``), so the loop copies each output frame as it is. With vivid's
default (all three under user control) the loop at 1280x720 crashed its capture thread at the first looped
frame in Debian 12's kernel (6.1.0-50: a page fault in ``memcpy`` from ``vivid_copy_buffer``'s
``scale_line``, reading past the output buffer), twice, after 640x480 and with a module loaded afresh;
640x480 looped without it."""

def load_vivid(unit: ProbedUnit) -> None:
    """The test helper in the guest and vivid loaded (``VIVID``)."""
    unit.guest.check(f"mkdir -p {TEST_DIR}")
    unit.guest.push(HELPER, f"{TEST_DIR}/v4l2_guest.py")
    unit.guest.check(VIVID, timeout=120)


def start_camera(unit: ProbedUnit, frames: Path, width: int = WIDTH, height: int = HEIGHT) -> CameraRig:
    """In a booted, ready unit: vivid loaded, the appliance's camera on it at ``width`` x ``height``, the polls
    open (if they were not)."""
    load_vivid(unit)
    made = CameraRig(unit, {}, frames)
    made.use(width, height)
    if made.status()["poll"] != "open":
        unit.guest.control({"cmd": "open"})
    return made


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CameraRig]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("camera")
    unit = boot_probed_unit(workdir)
    try:
        unit.vm.wait_until_ready()
        yield start_camera(unit, workdir)
    finally:
        unit.stop()


def test_a_personal_number_shown_to_a_v4l2_camera_admits_the_voter(rig: CameraRig) -> None:
    rig.use(WIDTH, HEIGHT)
    rig.admits("pin", rig.frame(render("code128", next(rig.voters), 3)))


def test_a_td1_mrz_in_a_datamatrix_shown_to_the_camera_admits_the_voter(rig: CameraRig) -> None:
    rig.use(WIDTH, HEIGHT)
    rig.admits("td1", rig.frame(render("datamatrix", make_td1(pin=next(rig.voters)), 3)))


def test_at_1280x720_a_personal_number_shown_to_the_camera_admits_the_voter(rig: CameraRig) -> None:
    rig.use(*HD)
    assert rig.guest.check(f"{PYTHON} -c {shlex.quote(CAPTURE_SIZE)} {rig.nodes['capture']}").split() == \
        ["1280", "720"]  # what the capture node is set to while the appliance streams from it
    rig.admits("pin-hd", rig.frame(render("code128", next(rig.voters), 3)))


CAPTURE_SIZE = f"""import os, sys
sys.path.insert(0, {TEST_DIR!r})
import v4l2_guest as v
fd = os.open(sys.argv[1], os.O_RDWR)
print(*v._format(fd, v.CAPTURE)[:2])
"""
"""Prints the width and height the capture node's format has (G_FMT, allowed while another process streams)."""
