"""The test agent's channel into a booted test copy of the image, and its absence from the image itself.

Every kernel-interface test (``test_kernel_*``) acts inside the unit through ``guest.Guest``; this
module checks that channel once, and that the built image, the one a station gets, has no agent.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .guest import AGENT_PATH, UNIT_NAME, ProbedUnit, boot_probed_unit, host_can_boot
from .vm import build_image, partitions, run

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbedUnit]:
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    probed = boot_probed_unit(tmp_path_factory.mktemp("guest"))
    try:
        yield probed
    finally:
        probed.stop()


def test_commands_run_as_root_in_the_guest_and_files_move_both_ways(unit: ProbedUnit) -> None:
    guest = unit.guest
    assert guest.check("id -u; findmnt -no OPTIONS /").split("\n")[:1] == ["0"]
    assert "ro" in guest.check("findmnt -no OPTIONS /").split(","), "the test copy's root is read-only too"
    assert guest.run("echo out; echo err >&2; exit 3") == (3, "out\n") and guest.last_stderr == "err\n"
    blob = bytes(range(256)) * 1000
    guest.push(blob, "/tmp/blob", 0o600)
    assert guest.check("stat -c %a /tmp/blob").strip() == "600"
    assert guest.pull("/tmp/blob") == blob


def test_the_built_image_has_no_agent(tmp_path: Path) -> None:
    image = build_image("amd64")
    start, end = partitions(image)["root"]
    root = tmp_path / "root.img"
    run(["dd", f"if={image}", f"of={root}", "bs=1M", f"skip={start}", f"count={end - start}",
         "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
    for path in (AGENT_PATH, f"/etc/systemd/system/{UNIT_NAME}", "/etc/systemd/system/multi-user.target.wants"):
        said = subprocess.run(["debugfs", "-R", f"stat {path}", str(root)], capture_output=True, text=True)
        found = "Inode:" in said.stdout
        assert found == path.endswith(".wants"), f"{path} in the built image: {said.stdout[:300]} {said.stderr[:300]}"
    wants = subprocess.run(["debugfs", "-R", "ls -l /etc/systemd/system/multi-user.target.wants", str(root)],
                           capture_output=True, text=True).stdout
    assert "pollbox.service" in wants and UNIT_NAME not in wants
