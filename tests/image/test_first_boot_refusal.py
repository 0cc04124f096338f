"""The image's first boot refuses a bad station stick: the reason on the console (the system journal's
copy) and on the chair's screen in Kyrgyz, Russian and English, and nothing on the data partition.

Each case is a fresh unit (its own overlay of the tests' image) booted with one bad stick from
``sticks.py``. The tampered stick runs with the image tests; the other bad sticks (one boot each)
run in the slow suite. The screen is read through the port QEMU forwards to the unit's screen port;
the data partition is read off the stopped disk.
"""

from __future__ import annotations

import html
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from device.firstboot_screen import TEXT
from tests.web.test_no_english import visible_words

from .sticks import BAD_STICKS, bad_station
from .vm import BOOT_DEADLINE, IMAGE_TEST_TIMEOUT, VirtualMachine, build_image, data_listing, wait_for, write_stick

pytestmark = [pytest.mark.image, pytest.mark.timeout(IMAGE_TEST_TIMEOUT)]
QUICK = "tampered"
"""The bad stick checked with the image tests; the others are in the slow suite."""


def fetch(vm: VirtualMachine, path: str) -> str | None:
    try:
        with urllib.request.urlopen(vm.url(path), timeout=5) as answer:
            return str(answer.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def refused_screen(vm: VirtualMachine) -> dict[str, Any] | None:
    if not vm.running():
        raise AssertionError(vm.stopped_report())
    answer = fetch(vm, "/api/firstboot")
    if answer is None:
        return None
    try:
        doc = json.loads(answer)
    except ValueError:
        return None  # the appliance's own screen answered: the stick was taken
    return doc if doc.get("refused") else None


def boot_with_bad_stick(kind: str, workdir: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("no qemu-system-x86_64 (make image-deps installs it)")
    image = build_image("amd64")
    station, names = bad_station(kind, workdir)
    stick = write_stick(workdir / "stick.img", station, names)
    vm = VirtualMachine(workdir, image, stick, station)
    vm.start()
    try:
        found = wait_for(lambda: refused_screen(vm), f"the first-boot screen showing the refusal ({kind})",
                         BOOT_DEADLINE[vm.accel])
        assert found["kind"] == kind, found
        console = vm.console()
        assert f"pollbox-station-import: refused ({kind})" in console and "nothing installed" in console, console[-3000:]
        assert "Started pollbox.service" not in console
        for lang in ("ky", "ru", "en"):
            page = fetch(vm, f"/?lang={lang}")
            assert page is not None
            assert html.escape(TEXT["title"][lang]) in page and html.escape(TEXT["nothing"][lang]) in page
            assert html.escape(TEXT[kind][lang].split(" (")[0].split("{")[0]) in page, (lang, page)
            if lang != "en":
                # the election ids named on the wrong-election page are codes, not English
                assert visible_words(page) - {"USB", "English", "kg", "other", "demo"} == set(), (lang, page)
    finally:
        vm.stop()
    assert "station" not in data_listing(vm.disk, workdir), "a refused stick left a station on the data partition"


def test_a_tampered_package_is_refused_on_the_screen_and_nothing_installed(tmp_path: Path) -> None:
    boot_with_bad_stick(QUICK, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in BAD_STICKS if k != QUICK])
def test_every_bad_stick_is_refused_at_first_boot(kind: str, tmp_path: Path) -> None:
    boot_with_bad_stick(kind, tmp_path)
